"""GSM8K "flexible" answer matching, as Lost in Conversation scores math (paper.md §3.3).

The prediction is the LAST match of `(-?[$0-9.,]{2,})|(-?[0-9]+)` in the answer; prediction and gold
(the text after `####`) both lose commas, `$` and a trailing `.`, and a whole number written with zero
cents (`$1,000.00`) loses them. Then exact string equality.

LiC first has GPT-4o-mini copy the answer span out of the response; we take the last number of the whole
response (no extra LLM): an answer followed by more numbers ("... 12 apples. Step 3 ...") can be missed.
"""

from __future__ import annotations

import re
from typing import Any

from inspect_ai.scorer import Score, Target, scorer
from inspect_ai.solver import TaskState

from .attempts import make_stop_when, score_last_attempt
from .reliability import reliability_metrics

NUMBER = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")


def normalise_number(text: str) -> str:
    """Drop `$`, commas, surrounding space, a trailing `.`, and zero cents (`1000.00` -> `1000`)."""
    value = text.strip().replace("$", "").replace(",", "").rstrip(".")
    if re.fullmatch(r"-?\d+\.0+", value):
        value = value.split(".")[0]
    return value


def extract_last_number(text: str) -> str | None:
    """The last number in `text`, normalised; None when there is none."""
    for match in reversed(list(NUMBER.finditer(text))):
        candidate = match.group(0)
        if any(ch.isdigit() for ch in candidate):
            return normalise_number(candidate)
    return None


def gold_answer(answer: str) -> str:
    """GSM8K gold: the text after `####` in the rationale, normalised."""
    if "####" not in answer:
        raise ValueError("GSM8K answer has no '####' marker")
    return normalise_number(answer.split("####")[-1])


def is_correct(response: str, gold: str) -> bool:
    """Flexible match of the response's last number against the (normalised) gold answer."""
    predicted = extract_last_number(response)
    return predicted is not None and predicted == normalise_number(gold)


def _extractor(text: str, state: TaskState) -> str | None:  # noqa: ARG001
    return extract_last_number(text)


async def _grade(answer: str, state: TaskState) -> tuple[bool, str, dict[str, Any]]:
    gold = normalise_number(state.metadata["gold"])
    correct = answer == gold
    return correct, f"last number {answer!r} {'==' if correct else '!='} gold {gold!r}", {"gold": gold}


def math_stop_when():
    """`stop_when` for math: stop when the latest answer's last number matches the gold answer."""
    return make_stop_when(_extractor, _grade)


@scorer(metrics=reliability_metrics())
def math_scorer():
    """GSM8K flexible match on the conversation's last answer attempt (sample metadata `gold`)."""

    async def score(state: TaskState, target: Target) -> Score:  # noqa: ARG001
        return await score_last_attempt(state, _extractor, _grade)

    return score
