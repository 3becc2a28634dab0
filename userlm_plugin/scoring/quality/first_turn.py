"""The simulated user's opening and how much of the intent each turn repeats (model-free): `first_turn_quality`
(diversity across the run, goal dumping, assistant-like openers) and `intent_decomposition` (arXiv 2510.06552
arXiv 2510.06552 §3 "first-turn diversity" and "intent decomposition"; our formulas and metric names: docs/metrics.md)."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from inspect_ai.scorer import Metric, SampleScore, Score, Scorer, Target, metric, scorer
from inspect_ai.solver import TaskState

from . import metrics as qm
from .reading import (
    NOT_APPLICABLE,
    conversation_to_score,
    first_turns,
    group_key,
    mean_metric,
    ratio_metric,
    sent_turns,
)


def _percent_of_first_turns(
    measure: Callable[[list[str]], float | None],
) -> Callable[[list[SampleScore]], float]:
    """A corpus measure (0..1) over the run's first user turns, in percent (NaN when it does not apply)."""

    def compute(scores: list[SampleScore]) -> float:
        value = measure(first_turns(scores))
        return NOT_APPLICABLE if value is None else value * 100

    return compute


@metric(name="distinct1_pct", scores="unreduced")
def first_turn_unique_unigram_pct() -> Metric:
    """First-turn diversity as pooled distinct-1 (docs/metrics.md, "% unique 1-grams"), in percent.

    Distinct unigrams / all unigrams over every first user turn of the run (all samples and epochs).
    Depends on corpus size: compare runs of equal size only. See `first_turn_pairwise_difference_pct`
    for the size-independent reading.
    """

    return _percent_of_first_turns(qm.distinct_unigram_ratio)


@metric(name="diversity_pct", scores="unreduced")
def first_turn_pairwise_difference_pct() -> Metric:
    """First-turn diversity as mean pairwise unigram Jaccard distance (docs/metrics.md), in percent.

    How different two first turns of the run are on average (100 = no word in common). The paper's
    "pairwise 1-gram Jaccard" reading; compare with its reference values (humans 94.01, UserLM-8b 94.55,
    GPT-4o 74.42) with care, the exact formula is unverified (docs/metrics.md).
    """

    return _percent_of_first_turns(qm.mean_pairwise_jaccard_distance)


@metric(name="goal_dump_pct", scores="unreduced")
def first_turn_intent_share_pct() -> Metric:
    """Share of the intent's content words already stated in the first turn, in percent (goal dumping).

    |I ∩ U1| / |I| with stopwords removed (docs/metrics.md applied to turn one): high when the
    simulated user pastes the whole goal into its opening message, a known complaint (docs/metrics.md, known complaints).
    """
    return mean_metric("first_turn_intent_share", 100.0)


@metric(name="ai_opener_pct", scores="unreduced")
def first_turn_assistant_opener_pct() -> Metric:
    """Percent of first turns that open like an assistant ("I", "You", "Here", "Sure", ...).

    A cheap naturalness signal in place of the paper's Pangram detector (docs/metrics.md); the
    first three openers are the ones UserLM's first-token guardrail forbids (Appendix D.1).
    """
    return mean_metric("assistant_opener", 100.0)


@metric(name="words", scores="unreduced")
def first_turn_mean_words() -> Metric:
    """Mean length of first user turns in words (real WildChat openers are short; docs/userlm.md, guardrails caps 3–25)."""
    return mean_metric("first_turn_words")


@scorer(
    name="first_turn",  # short: Inspect's terminal table cuts longer names (tests/test_metric_names.py)
    metrics=[
        first_turn_unique_unigram_pct(),
        first_turn_pairwise_difference_pct(),
        first_turn_intent_share_pct(),
        first_turn_assistant_opener_pct(),
        first_turn_mean_words(),
    ],
)
def first_turn_quality(probe: str | None = None) -> Scorer:
    """The simulated user's opening message: diversity across the run, goal dumping, assistant-like style."""

    async def score(state: TaskState, target: Target) -> Score | None:
        if (found := conversation_to_score(state, probe)) is None:
            return None
        conversation, intent = found
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


@metric(name="overlap_pct", scores="unreduced")
def intent_overlap_pct() -> Metric:
    """Intent decomposition (docs/metrics.md), in percent; lower = intent revealed gradually.

    Mean over all simulated user turns of the run of |I ∩ U| / |U|: the share of a turn's content words
    (stopwords removed) that also occur in the intent (its "You are a user chatting ... to" boilerplate
    removed). Pooled over turns, so long conversations weigh more. Paper: humans 1.68, UserLM-8b 2.69,
    GPT-4o 7.68 (unit unverified; see `intent_overlap_words_per_turn`).
    """
    return ratio_metric("overlap_sum", "turns_scored")


@metric(name="overlap_words", scores="unreduced")
def intent_overlap_words_per_turn() -> Metric:
    """Mean number of distinct intent content words repeated per user turn (|I ∩ U|, docs/metrics.md).

    The count reading of intent decomposition, reported beside the share because the paper's unit is not
    settled; lower = the user speaks in its own words.
    """
    return ratio_metric("overlap_words_sum", "turns_total", scale=1.0)


@scorer(name="intent_overlap", metrics=[intent_overlap_pct(), intent_overlap_words_per_turn()])
def intent_decomposition(probe: str | None = None) -> Scorer:
    """How much of the intent's wording each user turn repeats (model-free)."""

    async def score(state: TaskState, target: Target) -> Score | None:
        if (found := conversation_to_score(state, probe)) is None:
            return None
        conversation, intent = found
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
