"""What every simulation-quality scorer reads and how its metrics aggregate: the sample's `Conversation` record
(userlm_plugin/records.py), the intent, the probe filter, and the mean / pooled-ratio / per-intent-group rules.

Conventions (docs/metrics.md): a scorer returns one dict-valued `Score` per sample per epoch; every metric is
declared `scores="unreduced"`, so repeated simulations of one intent stay separate observations (grouped by intent
text, else the sample id); a value that does not apply to a sample is None and skipped; a metric with nothing to
aggregate reports NaN (Inspect metrics cannot return None).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence

from inspect_ai.scorer import SampleScore
from inspect_ai.solver import TaskState

from ...records import Conversation, conversation_from_store
from ...turns import TurnRecord


def read_conversation(state: TaskState) -> Conversation:
    """The sample's `Conversation` record (empty when the run did not use a simulated user)."""
    return conversation_from_store(state.store)


def sent_turns(conversation: Conversation) -> list[TurnRecord]:
    """The user turns that were actually sent (records with text; drops the final 'ended' record)."""
    return [t for t in conversation.turns if t.text is not None]


def conversation_intent(state: TaskState, conversation: Conversation) -> str:
    """The intent the user simulated: the store's copy, else sample metadata `intent`."""
    return conversation.intent or str((state.metadata or {}).get("intent") or "")


def group_key(state: TaskState, intent: str) -> str:
    """What identifies 'the same intent' across epochs and samples: the intent text, else the sample id."""
    return intent.strip() or f"sample:{state.sample_id}"


def skip_sample(state: TaskState, probe: str | None) -> bool:
    """True when a scorer restricted to `probe` meets a sample of another probe (left unscored: None)."""
    return probe is not None and (state.metadata or {}).get("probe") != probe


def values_of(scores: Sequence[SampleScore], key: str) -> list[float]:
    """Numeric values of `key` across scores, skipping None (not applicable to that sample)."""
    out: list[float] = []
    for s in scores:
        value = s.score.value
        if isinstance(value, dict) and value.get(key) is not None:
            out.append(float(value[key]))
    return out


NOT_APPLICABLE = float("nan")
"""What a scalar metric reports when no sample it applies to exists (Inspect metrics cannot return None)."""


def mean_or_nan(values: Sequence[float], scale: float = 1.0) -> float:
    return statistics.fmean(values) * scale if values else NOT_APPLICABLE


def by_group(scores: Sequence[SampleScore]) -> dict[str, list[SampleScore]]:
    grouped: dict[str, list[SampleScore]] = defaultdict(list)
    for s in scores:
        key = (s.score.metadata or {}).get("group") or f"sample:{s.sample_id}"
        grouped[key].append(s)
    return grouped


def first_turns(scores: Sequence[SampleScore]) -> list[str]:
    """The first user turns the scorer put in `Score.metadata["first_turn"]` (samples without one skipped)."""
    return [t for s in scores if (t := (s.score.metadata or {}).get("first_turn"))]


def mean_metric(key: str, scale: float = 1.0) -> Callable[[list[SampleScore]], float]:
    """Mean of `key` over the samples it applies to (None skipped), times `scale`."""

    def compute(scores: list[SampleScore]) -> float:
        return mean_or_nan(values_of(scores, key), scale)

    return compute


def ratio_metric(
    numerator: str, denominator: str, scale: float = 100.0
) -> Callable[[list[SampleScore]], float]:
    """Pooled ratio sum(numerator) / sum(denominator): every turn weighs the same, whatever its conversation."""

    def compute(scores: list[SampleScore]) -> float:
        den = sum(values_of(scores, denominator))
        return sum(values_of(scores, numerator)) / den * scale if den else NOT_APPLICABLE

    return compute


def conversation_to_score(state: TaskState, probe: str | None) -> tuple[Conversation, str] | None:
    """The opening every simulation-quality scorer shares: (record, intent) of the sample, or None when the
    scorer is restricted to another probe (the sample stays unscored)."""
    if skip_sample(state, probe):
        return None
    conversation = read_conversation(state)
    return conversation, conversation_intent(state, conversation)
