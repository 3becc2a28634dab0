"""Simulation-quality scorers: how human-like were the simulated users of a run? (paper.md §2.6, §2.8)

Add them to any task that used `simulated_user` (`scorer=[*simulation_quality_scorers(), ...]`) or run them
on an existing log (`inspect score LOG --scorer userlm_plugin/termination`). Each scorer reads only the
sample's store (`Conversation`, userlm_plugin/records.py) and metadata, never live simulator objects.

How the Inspect pieces fit:
- A scorer returns one dict-valued `Score` per sample (per epoch) with the facts about that conversation;
  texts the corpus-level metrics need (first turn, all user turns) go in `Score.metadata`.
- Every metric here is declared `scores="unreduced"`: it receives one score per sample *per epoch*, so
  repeated simulations of one intent stay separate observations (length variance and lexical diversity
  are measured across them; grouping is by intent text, falling back to the sample id).
- Metric names are the column names in the results table; each says what it measures and its unit
  (`_pct` = percent 0..100).

Pure functions (tokenizer, overlaps, Jaccard, F1) are in `quality_metrics.py`; judge scorers in `judges.py`.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from inspect_ai.scorer import Metric, SampleScore, Score, Scorer, Target, metric, scorer
from inspect_ai.solver import TaskState

from ...records import Conversation, conversation_from_store
from ...turns import StopReason, TurnRecord
from . import metrics as qm

# ---------------------------------------------------------------------------------------------- helpers


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


def _values(scores: Sequence[SampleScore], key: str) -> list[float]:
    """Numeric values of `key` across scores, skipping None (not applicable to that sample)."""
    out: list[float] = []
    for s in scores:
        value = s.score.value
        if isinstance(value, dict) and value.get(key) is not None:
            out.append(float(value[key]))
    return out


NOT_APPLICABLE = float("nan")
"""What a scalar metric reports when no sample it applies to exists (Inspect metrics cannot return None)."""


def _mean(values: Sequence[float], scale: float = 1.0) -> float:
    return statistics.fmean(values) * scale if values else NOT_APPLICABLE


def _groups(scores: Sequence[SampleScore]) -> dict[str, list[SampleScore]]:
    grouped: dict[str, list[SampleScore]] = defaultdict(list)
    for s in scores:
        key = (s.score.metadata or {}).get("group") or f"sample:{s.sample_id}"
        grouped[key].append(s)
    return grouped


def _first_turns(scores: Sequence[SampleScore]) -> list[str]:
    """The first user turns the scorer put in `Score.metadata["first_turn"]` (samples without one skipped)."""
    return [t for s in scores if (t := (s.score.metadata or {}).get("first_turn"))]


def _mean_metric(key: str, scale: float = 1.0) -> Callable[[list[SampleScore]], float]:
    """Mean of `key` over the samples it applies to (None skipped), times `scale`."""

    def compute(scores: list[SampleScore]) -> float:
        return _mean(_values(scores, key), scale)

    return compute


def _ratio_metric(
    numerator: str, denominator: str, scale: float = 100.0
) -> Callable[[list[SampleScore]], float]:
    """Pooled ratio sum(numerator) / sum(denominator): every turn weighs the same, whatever its conversation."""

    def compute(scores: list[SampleScore]) -> float:
        den = sum(_values(scores, denominator))
        return sum(_values(scores, numerator)) / den * scale if den else NOT_APPLICABLE

    return compute


# ------------------------------------------------------------------------------------ first-turn quality


@metric(scores="unreduced")
def first_turn_unique_unigram_pct() -> Metric:
    """First-turn diversity as pooled distinct-1 (paper.md §2.6 metric 1, "% unique 1-grams"), in percent.

    Distinct unigrams / all unigrams over every first user turn of the run (all samples and epochs).
    Depends on corpus size: compare runs of equal size only. See `first_turn_pairwise_difference_pct`
    for the size-independent reading.
    """

    def compute(scores: list[SampleScore]) -> float:
        ratio = qm.distinct_unigram_ratio(_first_turns(scores))
        return NOT_APPLICABLE if ratio is None else ratio * 100

    return compute


@metric(scores="unreduced")
def first_turn_pairwise_difference_pct() -> Metric:
    """First-turn diversity as mean pairwise unigram Jaccard distance (paper.md §2.6 metric 1), in percent.

    How different two first turns of the run are on average (100 = no word in common). The paper's
    "pairwise 1-gram Jaccard" reading; compare with its reference values (humans 94.01, UserLM-8b 94.55,
    GPT-4o 74.42) with care, the exact formula is unverified (paper.md §7 Q5).
    """

    def compute(scores: list[SampleScore]) -> float:
        value = qm.mean_pairwise_jaccard_distance(_first_turns(scores))
        return NOT_APPLICABLE if value is None else value * 100

    return compute


@metric(scores="unreduced")
def first_turn_intent_share_pct() -> Metric:
    """Share of the intent's content words already stated in the first turn, in percent (goal dumping).

    |I ∩ U1| / |I| with stopwords removed (paper.md §2.6 metric 2 applied to turn one): high when the
    simulated user pastes the whole goal into its opening message, a known complaint (peers.md (c)).
    """
    return _mean_metric("first_turn_intent_share", 100.0)


@metric(scores="unreduced")
def first_turn_assistant_opener_pct() -> Metric:
    """Percent of first turns that open like an assistant ("I", "You", "Here", "Sure", ...).

    A cheap naturalness signal in place of the paper's Pangram detector (paper.md §2.6 metric 4); the
    first three openers are the ones UserLM's first-token guardrail forbids (§1.5).
    """
    return _mean_metric("assistant_opener", 100.0)


@metric(scores="unreduced")
def first_turn_mean_words() -> Metric:
    """Mean length of first user turns in words (real WildChat openers are short; paper.md §1.5 caps 3–25)."""
    return _mean_metric("first_turn_words")


@scorer(
    metrics=[
        first_turn_unique_unigram_pct(),
        first_turn_pairwise_difference_pct(),
        first_turn_intent_share_pct(),
        first_turn_assistant_opener_pct(),
        first_turn_mean_words(),
    ]
)
def first_turn_quality(probe: str | None = None) -> Scorer:
    """The simulated user's opening message: diversity across the run, goal dumping, assistant-like style."""

    async def score(state: TaskState, target: Target) -> Score | None:
        if skip_sample(state, probe):
            return None
        conversation = read_conversation(state)
        intent = conversation_intent(state, conversation)
        turns = sent_turns(conversation)
        first = turns[0].text if turns else None
        value: dict[str, Any] = {
            "first_turn_words": len(qm.tokenize(first)) if first else None,
            "first_turn_intent_share": qm.intent_share(intent, first) if first and intent else None,
            "assistant_opener": float(qm.starts_like_assistant(first)) if first else None,
        }
        return Score(
            value=value,
            answer=first,
            explanation=f"first user turn: {first!r}" if first else "no user turn was sent",
            metadata={"first_turn": first, "group": group_key(state, intent)},
        )

    return score


# ----------------------------------------------------------------------------------- intent decomposition


@metric(scores="unreduced")
def intent_overlap_pct() -> Metric:
    """Intent decomposition (paper.md §2.6 metric 2), in percent; lower = intent revealed gradually.

    Mean over all simulated user turns of the run of |I ∩ U| / |U|: the share of a turn's content words
    (stopwords removed) that also occur in the intent (its "You are a user chatting ... to" boilerplate
    removed). Pooled over turns, so long conversations weigh more. Paper: humans 1.68, UserLM-8b 2.69,
    GPT-4o 7.68 (unit unverified; see `intent_overlap_words_per_turn`).
    """
    return _ratio_metric("overlap_sum", "turns_scored")


@metric(scores="unreduced")
def intent_overlap_words_per_turn() -> Metric:
    """Mean number of distinct intent content words repeated per user turn (|I ∩ U|, paper.md §2.6 metric 2).

    The count reading of intent decomposition, reported beside the share because the paper's unit is not
    settled; lower = the user speaks in its own words.
    """
    return _ratio_metric("overlap_words_sum", "turns_total", scale=1.0)


@scorer(metrics=[intent_overlap_pct(), intent_overlap_words_per_turn()])
def intent_decomposition(probe: str | None = None) -> Scorer:
    """How much of the intent's wording each user turn repeats (model-free)."""

    async def score(state: TaskState, target: Target) -> Score | None:
        if skip_sample(state, probe):
            return None
        conversation = read_conversation(state)
        intent = conversation_intent(state, conversation)
        texts = [t.text or "" for t in sent_turns(conversation)]
        overlaps = (
            [o for text in texts if (o := qm.intent_overlap(intent, text)) is not None] if intent else []
        )
        words = [qm.intent_overlap_count(intent, text) for text in texts] if intent else []
        value = {
            "overlap_sum": sum(overlaps),
            "turns_scored": len(overlaps),
            "overlap_words_sum": sum(words),
            "turns_total": len(words),
            "intent_overlap": statistics.fmean(overlaps) if overlaps else None,
        }
        explanation = (
            "no intent recorded: nothing to compare with"
            if not intent
            else f"per-turn overlap |I∩U|/|U|: {[round(o, 3) for o in overlaps]}"
        )
        return Score(value=value, explanation=explanation, metadata={"group": group_key(state, intent)})

    return score


# ------------------------------------------------------------------------ conversation length & variety


@metric(scores="unreduced")
def mean_user_turns() -> Metric:
    """Mean number of simulated user turns per conversation (paper.md §2.8, pace)."""
    return _mean_metric("user_turns")


@metric(scores="unreduced")
def turn_variance_within_intent() -> Metric:
    """Pace diversity (paper.md §2.8, Table 3 "turn variance"): population variance of the number of user
    turns across repeated simulations (epochs) of the same intent, averaged over intents with >= 2 runs.
    Paper: GPT-4o-mini 0.9, GPT-4o 0.6, UserLM-8b 2.8."""

    def compute(scores: list[SampleScore]) -> float:
        variances = []
        for group in _groups(scores).values():
            spread = qm.length_spread([int(v) for v in _values(group, "user_turns")])
            if spread is not None and len(group) >= 2:
                variances.append(spread[0])
        return _mean(variances)

    return compute


@metric(scores="unreduced")
def turn_range_within_intent() -> Metric:
    """Turn range (paper.md §2.8, Table 3 "turn range", e.g. UserLM-8b 2.1–6.7): for each intent, the min
    and max number of user turns across its repeats; reported as the mean min (`turn_range_min`) and mean
    max (`turn_range_max`) over intents. The paper's exact definition is unverified."""

    def compute(scores: list[SampleScore]) -> dict[str, float | None]:
        spreads = [
            qm.length_spread([int(v) for v in _values(g, "user_turns")]) for g in _groups(scores).values()
        ]
        spreads = [s for s in spreads if s is not None]
        if not spreads:
            return {"turn_range_min": None, "turn_range_max": None}
        return {
            "turn_range_min": statistics.fmean(s[1] for s in spreads),
            "turn_range_max": statistics.fmean(s[2] for s in spreads),
        }

    return compute


@metric(scores="unreduced")
def unigram_difference_within_intent() -> Metric:
    """Lexical diversity across repeated simulations of the same intent (paper.md §2.8, Table 3 "unigram
    difference"; GPT-4o-mini 0.43, GPT-4o 0.40, UserLM-8b 0.71). Per intent with >= 2 runs: mean pairwise
    Jaccard distance between the runs' sets of user-turn unigrams (`quality_metrics.unigram_difference`);
    then the mean over intents. 0..1, higher = repeats of one intent are worded more differently."""

    def compute(scores: list[SampleScore]) -> float:
        per_intent = [
            qm.unigram_difference([(s.score.metadata or {}).get("user_texts") or [] for s in group])
            for group in _groups(scores).values()
        ]
        return _mean([v for v in per_intent if v is not None])

    return compute


@scorer(
    metrics=[
        mean_user_turns(),
        turn_variance_within_intent(),
        turn_range_within_intent(),
        unigram_difference_within_intent(),
    ]
)
def conversation_variety(probe: str | None = None) -> Scorer:
    """Conversation length and wording across repeats of the same intent (run with `--epochs N`, N >= 2)."""

    async def score(state: TaskState, target: Target) -> Score | None:
        if skip_sample(state, probe):
            return None
        conversation = read_conversation(state)
        intent = conversation_intent(state, conversation)
        texts = [t.text or "" for t in sent_turns(conversation)]
        return Score(
            value={"user_turns": len(texts)},
            explanation=f"{len(texts)} user turns",
            metadata={"group": group_key(state, intent), "user_texts": texts},
        )

    return score


# ------------------------------------------------------------------------------------------ termination


@metric(scores="unreduced")
def ended_by_user_pct() -> Metric:
    """Percent of conversations the simulated user ended itself (stop reason `user_ended`; paper.md §2.6
    metric 3). Prompted assistants almost never end (paper: end F1 1–15 vs UserLM-8b 63.5)."""
    return _mean_metric("ended_by_user", 100.0)


@metric(scores="unreduced")
def hit_turn_cap_pct() -> Metric:
    """Percent of conversations stopped by the solver's turn cap (stop reason `max_turns`) rather than by
    the user, a `stop_when` check or a limit."""
    return _mean_metric("hit_turn_cap", 100.0)


@metric(scores="unreduced")
def end_decision_f1() -> Metric:
    """Dialogue termination F1 (paper.md §2.6 metric 3; UserLM-8b 63.54, GPT-4o 1.38), in percent, over the
    samples labelled with metadata `should_end` (true: the goal was met, the user should leave). Reports
    `end_precision`, `end_recall` and `end_f1`; absent when no sample carries a label."""

    def compute(scores: list[SampleScore]) -> dict[str, float | None]:
        labelled = [
            s.score.value
            for s in scores
            if isinstance(s.score.value, dict) and s.score.value.get("should_end") is not None
        ]
        if not labelled:
            return {"end_precision": None, "end_recall": None, "end_f1": None}
        p, r, f = qm.precision_recall_f1(
            [bool(v["ended_by_user"]) for v in labelled], [bool(v["should_end"]) for v in labelled]
        )
        return {"end_precision": p * 100, "end_recall": r * 100, "end_f1": f * 100}

    return compute


@scorer(metrics=[ended_by_user_pct(), hit_turn_cap_pct(), end_decision_f1()])
def termination(probe: str | None = None) -> Scorer:
    """Who ended each conversation: the simulated user, or the harness (cap, stop_when, limit, error)."""

    async def score(state: TaskState, target: Target) -> Score | None:
        if skip_sample(state, probe):
            return None
        conversation = read_conversation(state)
        should_end = (state.metadata or {}).get("should_end")
        stop = conversation.stop_reason
        value = {
            "ended_by_user": float(stop == StopReason.USER_ENDED),
            "hit_turn_cap": float(stop == StopReason.MAX_TURNS),
            "should_end": None if should_end is None else float(bool(should_end)),
        }
        # str(): a Conversation read back from a log holds these enums as plain strings
        explanation = f"stop_reason={str(stop) if stop else None}"
        if conversation.end_reason:
            explanation += f", end_reason={str(conversation.end_reason)}"
        if should_end is not None:
            explanation += f", should_end={bool(should_end)}"
        return Score(value=value, answer=str(stop) if stop else None, explanation=explanation)

    return score


# ------------------------------------------------------------------------------------- guardrails, roles


@metric(scores="unreduced")
def guardrail_intervention_pct() -> Metric:
    """Percent of simulated turns (including a final 'ended' decision) for which a guardrail or role/JSON
    check rejected at least one draft (paper.md §1.5, Appendix D.1). Pooled over all turns of the run."""
    return _ratio_metric("turns_with_rejections", "turn_records")


@metric(scores="unreduced")
def rejected_drafts_per_turn() -> Metric:
    """Mean number of rejected drafts (resamples) per simulated turn: the guardrails' cost in extra calls."""
    return _ratio_metric("rejected_drafts", "turn_records", scale=1.0)


@metric(scores="unreduced")
def guardrails_exhausted_pct() -> Metric:
    """Percent of simulated turns where every retry was rejected and the best draft was sent anyway."""
    return _ratio_metric("guardrails_exhausted", "turn_records")


@metric(scores="unreduced")
def role_break_pct() -> Metric:
    """Percent of sent user turns that still read as an assistant reply (`TurnRecord.role_break`): the
    simulator's own flag, the model-free counterpart of the role-adherence judge (paper.md §2.6 metric 5)."""
    return _ratio_metric("role_breaks", "sent_turns")


@scorer(
    metrics=[
        guardrail_intervention_pct(),
        rejected_drafts_per_turn(),
        guardrails_exhausted_pct(),
        role_break_pct(),
    ]
)
def guardrail_activity(probe: str | None = None) -> Scorer:
    """How often the simulator's drafts were rejected and resampled, and how often it slipped out of role."""

    async def score(state: TaskState, target: Target) -> Score | None:
        if skip_sample(state, probe):
            return None
        conversation = read_conversation(state)
        records = conversation.turns
        reasons: dict[str, int] = defaultdict(int)
        for record in records:
            for rejection in record.rejected:
                reasons[str(rejection.reason)] += 1
        value = {
            "turn_records": len(records),
            "sent_turns": sum(r.text is not None for r in records),
            "turns_with_rejections": sum(bool(r.rejected) for r in records),
            "rejected_drafts": sum(len(r.rejected) for r in records),
            "guardrails_exhausted": sum(r.guardrails_exhausted for r in records),
            "role_breaks": sum(r.role_break and r.text is not None for r in records),
        }
        explanation = (
            f"{value['rejected_drafts']} rejected drafts over {len(records)} turns"
            + (f" ({dict(reasons)})" if reasons else "")
            + f"; {value['role_breaks']} role breaks"
        )
        return Score(value=value, explanation=explanation, metadata={"rejections_by_reason": dict(reasons)})

    return score


# --------------------------------------------------------------------------------------------- bundles


def simulation_quality_scorers() -> list[Scorer]:
    """The model-free simulation-quality scorers, to append to any simulated-user task's `scorer=[...]`.

    The judge scorers (`role_adherence`, `intent_adherence`, and `intent_coverage` without shards) need a
    `judge` model role and are added explicitly.
    """
    return [
        first_turn_quality(),
        intent_decomposition(),
        conversation_variety(),
        termination(),
        guardrail_activity(),
    ]
