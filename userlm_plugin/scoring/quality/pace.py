"""How long conversations run and who ends them (model-free): `conversation_variety` (length and wording across
repeats of one intent, Table 3 of arXiv 2510.06552) and `termination` (the user ends when, and only when, done:
arXiv 2510.06552 §3 "dialogue termination"). Metric names and formulas: docs/metrics.md."""

from __future__ import annotations

import statistics

from inspect_ai.scorer import Metric, SampleScore, Score, Scorer, Target, metric, scorer
from inspect_ai.solver import TaskState

from ...turns import StopReason
from . import metrics as qm
from .reading import (
    by_group,
    conversation_to_score,
    group_key,
    mean_metric,
    mean_or_nan,
    sent_turns,
    values_of,
)


@metric(name="turns", scores="unreduced")
def mean_user_turns() -> Metric:
    """Mean number of simulated user turns per conversation (docs/metrics.md, pace)."""
    return mean_metric("user_turns")


@metric(name="turn_var", scores="unreduced")
def turn_variance_within_intent() -> Metric:
    """Pace diversity (docs/metrics.md, Table 3 "turn variance"): population variance of the number of user
    turns across repeated simulations (epochs) of the same intent, averaged over intents with >= 2 runs.
    Paper: GPT-4o-mini 0.9, GPT-4o 0.6, UserLM-8b 2.8."""

    def compute(scores: list[SampleScore]) -> float:
        variances = []
        for group in by_group(scores).values():
            spread = qm.length_spread([int(v) for v in values_of(group, "user_turns")])
            if spread is not None and len(group) >= 2:
                variances.append(spread[0])
        return mean_or_nan(variances)

    return compute


@metric(name="turn_range", scores="unreduced")
def turn_range_within_intent() -> Metric:
    """Turn range (docs/metrics.md, Table 3 "turn range", e.g. UserLM-8b 2.1–6.7): for each intent, the min
    and max number of user turns across its repeats; reported as the mean min (`turns_min`) and mean
    max (`turns_max`) over intents. The paper's exact definition is unverified."""

    def compute(scores: list[SampleScore]) -> dict[str, float | None]:
        spreads = [
            qm.length_spread([int(v) for v in values_of(g, "user_turns")]) for g in by_group(scores).values()
        ]
        spreads = [s for s in spreads if s is not None]
        if not spreads:
            return {"turns_min": None, "turns_max": None}
        return {
            "turns_min": statistics.fmean(s[1] for s in spreads),
            "turns_max": statistics.fmean(s[2] for s in spreads),
        }

    return compute


@metric(name="unigram_diff", scores="unreduced")
def unigram_difference_within_intent() -> Metric:
    """Lexical diversity across repeated simulations of the same intent (docs/metrics.md, Table 3 "unigram
    difference"; GPT-4o-mini 0.43, GPT-4o 0.40, UserLM-8b 0.71). Per intent with >= 2 runs: mean pairwise
    Jaccard distance between the runs' sets of user-turn unigrams (`metrics.unigram_difference`);
    then the mean over intents. 0..1, higher = repeats of one intent are worded more differently."""

    def compute(scores: list[SampleScore]) -> float:
        per_intent = [
            qm.unigram_difference([(s.score.metadata or {}).get("user_texts") or [] for s in group])
            for group in by_group(scores).values()
        ]
        return mean_or_nan([v for v in per_intent if v is not None])

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
        if (found := conversation_to_score(state, probe)) is None:
            return None
        conversation, intent = found
        texts = [t.text or "" for t in sent_turns(conversation)]
        return Score(
            value={"user_turns": len(texts)},
            explanation=f"{len(texts)} user turns",
            metadata={"group": group_key(state, intent), "user_texts": texts},
        )

    return score


@metric(name="user_ended_pct", scores="unreduced")
def ended_by_user_pct() -> Metric:
    """Percent of conversations the simulated user ended itself (stop reason `user_ended`; docs/metrics.md
    metric 3). Prompted assistants almost never end (paper: end F1 1–15 vs UserLM-8b 63.5)."""
    return mean_metric("ended_by_user", 100.0)


@metric(name="turn_cap_pct", scores="unreduced")
def hit_turn_cap_pct() -> Metric:
    """Percent of conversations stopped by the solver's turn cap (stop reason `max_turns`) rather than by
    the user, a `stop_when` check or a limit."""
    return mean_metric("hit_turn_cap", 100.0)


@metric(name="end_f1", scores="unreduced")
def end_decision_f1() -> Metric:
    """Dialogue termination F1 (docs/metrics.md; UserLM-8b 63.54, GPT-4o 1.38), in percent, over the
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
        if (found := conversation_to_score(state, probe)) is None:
            return None
        conversation, _ = found
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
