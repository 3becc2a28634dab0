"""How well the User LM's own end probability predicts the end of a conversation (docs/termination.md).

The end probability is P(`<|endconversation|>`) at the first content position of the user's next turn, from the
model's raw distribution at temperature 1 (before any ban or top-p). The `userlm/` provider records its log in
`output.metadata["userlm"]["end_logprob"]`, which reaches the turn record's metadata; when a run has none (a
backend that cannot report it), the scorer computes the same quantity teacher-forced on the `user` role's local
model (`train.perplexity.teacher_forced_end_logprob`) and says which source it used.

On the termination probe (`evals/simulator_quality.py -T probe=termination`) every sample is labelled
`should_end` (the goal was met at that point, so a real user would leave), so the probabilities can be scored as a
classifier's: Brier score and expected calibration error (is P=0.3 right 30% of the time?), AUROC (does it rank
"done" above "not done", whatever the scale?), and the threshold with the best F1, which is what
`-M end_threshold=` (the threshold stopping rule) wants.

The pure functions below take plain lists, so the held-out perplexity report (train/perplexity.py) uses them too.
"""

from __future__ import annotations

import asyncio
import math
import statistics
from collections.abc import Sequence
from typing import Any, Literal

from inspect_ai.scorer import Metric, SampleScore, Score, Scorer, Target, metric, scorer
from inspect_ai.solver import TaskState

from .reading import read_conversation, skip_sample

EndProbSource = Literal["auto", "recorded", "teacher_forced"]

# ------------------------------------------------------------------------------------------ pure functions


def brier_score(probs: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Mean squared error of the probabilities against the 0/1 outcomes (0 is perfect; 0.25 = always 0.5)."""
    if not probs:
        return None
    return statistics.fmean((p - float(y)) ** 2 for p, y in zip(probs, labels, strict=True))


def expected_calibration_error(
    probs: Sequence[float], labels: Sequence[bool], bins: int = 10
) -> float | None:
    """ECE over `bins` equal-width probability bins: sum of |mean P - observed rate| weighted by bin size."""
    if not probs:
        return None
    grouped: dict[int, list[tuple[float, bool]]] = {}
    for p, y in zip(probs, labels, strict=True):
        grouped.setdefault(min(int(p * bins), bins - 1), []).append((p, y))
    total = len(probs)
    return sum(
        len(items)
        / total
        * abs(statistics.fmean(p for p, _ in items) - statistics.fmean(float(y) for _, y in items))
        for items in grouped.values()
    )


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Probability that a positive outranks a negative (ties count half); None without both classes."""
    positives = [s for s, y in zip(scores, labels, strict=True) if y]
    negatives = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not positives or not negatives:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def best_f1_threshold(probs: Sequence[float], labels: Sequence[bool]) -> tuple[float, float] | None:
    """(threshold, F1) of the rule "end when P >= threshold" with the best F1 over the observed probabilities
    (the lowest such threshold on ties); None when no sample should end."""
    if not any(labels):
        return None
    best: tuple[float, float] | None = None
    for threshold in sorted(set(probs)):
        predicted = [p >= threshold for p in probs]
        tp = sum(p and y for p, y in zip(predicted, labels, strict=True))
        fp = sum(p and not y for p, y in zip(predicted, labels, strict=True))
        fn = sum(y and not p for p, y in zip(predicted, labels, strict=True))
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        if best is None or f1 > best[1]:
            best = (threshold, f1)
    return best


def calibration_summary(logprobs: Sequence[float], labels: Sequence[bool]) -> dict[str, float | None]:
    """Every calibration figure for end log-probabilities against end labels (`end_` keys; None = undefined)."""
    probs = [math.exp(lp) for lp in logprobs]
    best = best_f1_threshold(probs, labels)
    ends = [p for p, y in zip(probs, labels, strict=True) if y]
    goes_on = [p for p, y in zip(probs, labels, strict=True) if not y]
    return {
        "end_n": float(len(probs)),
        "end_brier": brier_score(probs, labels),
        "end_ece": expected_calibration_error(probs, labels),
        "end_auroc": auroc(list(logprobs), labels),
        "end_best_f1": None if best is None else best[1] * 100,
        "end_best_threshold": None if best is None else best[0],
        "end_mean_p_when_ended": statistics.fmean(ends) if ends else None,
        "end_mean_p_when_continued": statistics.fmean(goes_on) if goes_on else None,
    }


# ------------------------------------------------------------------------------------------- the scorer


@metric(scores="unreduced")
def end_probability_calibration() -> Metric:
    """Calibration of P(<|endconversation|>) against `should_end` (docs/termination.md): Brier, ECE, AUROC, the
    best-F1 threshold (as a probability, for `-M end_threshold=`) and its F1 in percent, the mean P for samples
    that should end / continue, and the percent of probabilities recorded at generation time (the rest were
    teacher-forced)."""

    def compute(scores: list[SampleScore]) -> dict[str, float | None]:
        rows = [
            s.score.value
            for s in scores
            if isinstance(s.score.value, dict)
            and s.score.value.get("end_logprob") is not None
            and s.score.value.get("should_end") is not None
        ]
        summary = calibration_summary(
            [float(r["end_logprob"]) for r in rows], [bool(r["should_end"]) for r in rows]
        )
        summary["end_recorded_pct"] = statistics.fmean(r["recorded"] for r in rows) * 100 if rows else None
        return summary

    return compute


def _recorded_end_logprob(state: TaskState) -> float | None:
    turns = read_conversation(state).turns
    value = (turns[-1].metadata or {}).get("end_logprob") if turns else None
    return None if value is None else float(value)


async def _teacher_forced(state: TaskState, role: str) -> tuple[float | None, str]:
    """log P(end) on the `role` model, teacher-forced on the sample's fixed conversation, or (None, why)."""
    from inspect_ai.model import ChatMessageSystem, get_model

    from ...runtime.provider import UserLMAPI
    from ...runtime.template import conversation_from_messages

    try:
        model = get_model(role=role)
    except Exception as error:  # no such role bound in this run (e.g. `inspect score` on an old log)
        return None, f"no `{role}` model to compute it with ({error})"
    api = model.api
    if not isinstance(api, UserLMAPI) or api.remote_args is not None:
        return None, f"the `{role}` model ({model}) is not a local userlm/ model"
    intent = str((state.metadata or {}).get("intent") or "")
    prefix = [
        m for m in (state.input if isinstance(state.input, list) else []) if m.role in ("user", "assistant")
    ]
    conversation = conversation_from_messages([ChatMessageSystem(content=intent), *prefix])
    from ...runtime.local import torch_thread
    from ...train.perplexity import teacher_forced_end_logprob

    loaded = await asyncio.to_thread(lambda: api.loaded)
    value = await asyncio.to_thread(
        torch_thread.call,
        teacher_forced_end_logprob,
        loaded.model,
        loaded.tokenizer,
        conversation.intent,
        conversation.turns,
    )
    return value, "" if value is not None else "the model's vocabulary has no <|endconversation|>"


@scorer(metrics=[end_probability_calibration()])
def end_calibration(probe: str | None = None, end_prob: EndProbSource = "auto", role: str = "user") -> Scorer:
    """P(<|endconversation|>) at the sample's user turn against its `should_end` label.

    Args:
        probe: Only score samples of this probe (e.g. "termination").
        end_prob: "recorded" (the provider's `end_logprob` only), "teacher_forced" (always recompute on the
            `role` model), or "auto" (recorded, else teacher-forced).
        role: The model role holding the User LM for the teacher-forced value.
    """

    async def score(state: TaskState, target: Target) -> Score | None:
        if skip_sample(state, probe):
            return None
        should_end = (state.metadata or {}).get("should_end")
        logprob = _recorded_end_logprob(state) if end_prob != "teacher_forced" else None
        source, why = ("recorded", "") if logprob is not None else ("none", "")
        if logprob is None and end_prob != "recorded":
            logprob, why = await _teacher_forced(state, role)
            source = "teacher_forced" if logprob is not None else "none"
        value: dict[str, Any] = {
            "end_logprob": logprob,
            "should_end": None if should_end is None else float(bool(should_end)),
            "recorded": float(source == "recorded"),
        }
        if logprob is None:
            explanation = f"no end probability: {why or 'none recorded (end_prob=recorded)'}"
        else:
            explanation = f"P(end)={math.exp(logprob):.4g} ({source}), should_end={should_end}"
        return Score(value=value, explanation=explanation, metadata={"end_prob_source": source})

    return score
