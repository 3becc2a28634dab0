"""Lost in Conversation's reliability metrics over epochs (LiC, arXiv 2505.06120 §4.2; docs/scoring.md).

Each instruction is simulated N times (Inspect epochs); with scores S_i in 0..100:
- P   = mean(S)            average performance
- A90 = p90(S)             aptitude (best case)
- U   = p90(S) - p10(S)    unreliability (U90_10); reliability R = 100 - U
Each is computed per instruction and then averaged over instructions, so the metrics read every epoch's
score (`@metric(scores="unreduced")`) instead of Inspect's per-sample reduction.

Percentiles are numpy's default (linear interpolation between order statistics). LiC's repository has no
percentile code; the paper defines the metrics, and numpy's default is the usual reading.

Metric names are short (`P`, `A90`, `U90_10`, the paper's own symbols) so they fit the viewer's header.

Also: `turns_used` (mean simulated user turns per conversation) and `ended_correct` (share of
conversations that stopped because the assistant's latest answer was correct).

Every metric leaves out conversations whose score records a LiC crash (`modes.LIC_CRASH`, `lic_exact` only):
LiC's driver logs nothing for a conversation its own code aborted, so its averages are over the others.
`lic_dropped` counts them, so a run that lost conversations says so in its results (0 under `corrected`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from inspect_ai.scorer import Metric, SampleScore, Value, metric

from ...errors import ConfigError
from .modes import LIC_CRASH

CORRECT = "correct"
TURNS = "turns"
ENDED_CORRECT = "ended_correct"


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), numpy's default linear interpolation."""
    import numpy as np  # a dependency of inspect_ai; imported here to keep the registry import light

    if not values:
        raise ConfigError("percentile of no values")
    if not 0 <= q <= 100:
        raise ConfigError(f"q must be in [0, 100], got {q}")
    return float(np.percentile(np.asarray(values, dtype=float), q))


def instruction_stats(scores: Sequence[float]) -> dict[str, float]:
    """P, A90 and U90_10 for one instruction's N simulation scores (each 0..100)."""
    p90, p10 = percentile(scores, 90), percentile(scores, 10)
    return {"P": sum(scores) / len(scores), "A90": p90, "U90_10": p90 - p10}


def corpus_stats(by_instruction: Mapping[object, Sequence[float]]) -> dict[str, float]:
    """Per-instruction P/A90/U averaged over instructions (LiC §4.2)."""
    if not by_instruction:
        return {"P": 0.0, "A90": 0.0, "U90_10": 0.0}
    per = [instruction_stats(s) for s in by_instruction.values()]
    return {key: sum(p[key] for p in per) / len(per) for key in ("P", "A90", "U90_10")}


def _value(score: SampleScore, key: str) -> float:
    value = score.score.value
    if isinstance(value, Mapping):
        return float(value.get(key, 0.0))
    if key == CORRECT:
        return score.score.as_float()
    raise ConfigError(f"score value has no {key!r}: {value!r}")


def counted(scores: Iterable[SampleScore]) -> list[SampleScore]:
    """The conversations LiC's results would hold: all but those its own code aborted (`lic_exact`)."""
    return [s for s in scores if LIC_CRASH not in (s.score.metadata or {})]


def _group(scores: Iterable[SampleScore]) -> dict[object, list[float]]:
    groups: dict[object, list[float]] = defaultdict(list)
    for s in counted(scores):
        groups[s.sample_id].append(100.0 * _value(s, CORRECT))
    return groups


def _corpus_metric(key: str) -> Metric:
    """The metric reporting `corpus_stats(...)[key]` over the unreduced epoch scores."""

    def compute(scores: list[SampleScore]) -> Value:
        return corpus_stats(_group(scores))[key]

    return compute


def _per_conversation_mean(key: str) -> Metric:
    """The metric reporting the mean of `key` over conversations (0.0 when there are none)."""

    def compute(scores: list[SampleScore]) -> Value:
        kept = counted(scores)
        return sum(_value(s, key) for s in kept) / len(kept) if kept else 0.0

    return compute


@metric(name="P", scores="unreduced")
def performance() -> Metric:
    """P: mean score (0-100) per instruction over epochs, averaged over instructions."""
    return _corpus_metric("P")


@metric(name="A90", scores="unreduced")
def aptitude() -> Metric:
    """A90: 90th percentile score (0-100) per instruction over epochs, averaged over instructions."""
    return _corpus_metric("A90")


@metric(name="U90_10", scores="unreduced")
def unreliability() -> Metric:
    """U90_10: p90 - p10 score per instruction over epochs, averaged over instructions (lower is better)."""
    return _corpus_metric("U90_10")


@metric(name="turns_used", scores="unreduced")
def turns_used() -> Metric:
    """Mean number of simulated user turns per conversation."""
    return _per_conversation_mean(TURNS)


@metric(name="ended_correct", scores="unreduced")
def ended_correct() -> Metric:
    """Share of conversations that ended because the assistant's latest answer was correct."""
    return _per_conversation_mean(ENDED_CORRECT)


@metric(name="lic_dropped", scores="unreduced")
def lic_dropped() -> Metric:
    """Conversations left out of the other metrics because LiC's own code raises on them (`lic_exact`)."""

    def compute(scores: list[SampleScore]) -> Value:
        return float(len(scores) - len(counted(scores)))

    return compute


def reliability_metrics() -> list[Metric]:
    """The metrics both sharded evals report, in results-table order."""
    return [performance(), aptitude(), unreliability(), turns_used(), ended_correct(), lic_dropped()]
