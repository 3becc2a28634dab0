"""Math answers: GSM8K "flexible" matching as Lost in Conversation scores it, and the math scorer.

LiC (`tasks/math/task_math.py`, `evaluator_function`): the prediction is the LAST match of
`(-?[$0-9.,]{2,})|(-?[0-9]+)` in the extracted answer; prediction and gold (the text after `####`) both lose
commas, `$` and ONE trailing `.`; then exact string equality. `-T scoring=lic_exact` does exactly that
(`lic_rules.py`), bugs included. `corrected` (the default) skips a last match without a digit (`$$`, `...`),
strips every trailing dot, and drops zero cents from any number (`1000.00` -> `1000`, `7.0` -> `7`); LiC strips
them only after a `$`, with `rstrip(".00")`, which turns `$100.00` into `1` (docs/scoring.md lists each
deviation).

Which text the regex reads (docs/scoring.md, "answer attempts"):
- with a `grader` model role, LiC's path: the grader labels the turn and copies the answer span verbatim
  (`grader.py`); the regex runs on that span;
- without one (the default), our rule: the regex runs on the response with every question sentence removed,
  so a number that only appears inside a question ("Did you mean 42?") is not an answer, and a turn with no
  number outside questions is not an answer attempt. Under `lic_exact` that text (the reply minus its question
  sentences) is the span LiC's evaluator reads, where LiC's LLM would have copied out a shorter one.
"""

from __future__ import annotations

import re
from typing import Any

from inspect_ai.scorer import Score, Target, scorer
from inspect_ai.solver import TaskState

from ...errors import ConfigError
from . import lic_rules
from .attempts import AnswerTask, make_stop_when, score_last_attempt
from .grader import extract_span
from .modes import DEFAULT_SCORING, ScoringMode
from .reliability import reliability_metrics

NUMBER = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
"""LiC's (and lm-eval-harness's) GSM8K flexible-match pattern."""
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_CLOSERS = " \t*_)]}\"'`"


def normalise_number(text: str) -> str:
    """Drop `$`, commas, surrounding space, a trailing `.`, and zero cents (`1000.00` -> `1000`)."""
    value = text.strip().replace("$", "").replace(",", "").rstrip(".")
    if re.fullmatch(r"-?\d+\.0+", value):
        value = value.split(".")[0]
    return value


def extract_last_number(text: str) -> str | None:
    """The last number in `text` (LiC's pattern), normalised; None when there is none."""
    for match in reversed(list(NUMBER.finditer(text))):
        candidate = match.group(0)
        if any(ch.isdigit() for ch in candidate):
            return normalise_number(candidate)
    return None


def without_questions(text: str) -> str:
    """`text` minus its question sentences (those ending in `?`, closing quotes/markdown aside)."""
    sentences = _SENTENCE_END.split(text)
    return "\n".join(s for s in sentences if not s.rstrip(_CLOSERS).endswith("?"))


def rule_based_answer(text: str) -> str | None:
    """Our default attempt rule for math: the last number outside question sentences (None: no attempt)."""
    return extract_last_number(without_questions(text))


def gold_answer(answer: str) -> str:
    """GSM8K gold: the text after `####` in the rationale, normalised."""
    if "####" not in answer:
        raise ConfigError("GSM8K answer has no '####' marker")
    return normalise_number(answer.split("####")[-1])


def is_correct(response: str, gold: str) -> bool:
    """Rule-based check of a whole response against the (normalised) gold answer."""
    predicted = rule_based_answer(response)
    return predicted is not None and predicted == normalise_number(gold)


MATH_ANSWER_DESCRIPTION = (
    "A single number: it may be a decimal, a negative number or a fraction. A worked solution counts when it "
    "ends on its final number; a question back to the user does not."
)
"""What a math answer looks like, for the grader's prompts (our wording of LiC's `get_answer_description`)."""


class MathAnswers(AnswerTask):
    """GSM8K answers: rule-based or grader-extracted span, then LiC's flexible match against `gold`."""

    kind = "math"
    answer_description = MATH_ANSWER_DESCRIPTION

    def __init__(self, scoring: ScoringMode = DEFAULT_SCORING) -> None:
        self.scoring = scoring

    def rule_based(self, text: str, state: TaskState) -> str | None:
        return rule_based_answer(text)

    async def extract(self, text: str, state: TaskState, use_grader: bool) -> tuple[str, dict[str, Any]]:
        if use_grader:
            return await extract_span(text, self.answer_description)
        if self.scoring == "lic_exact":
            # the span LiC's evaluator reads: the reply minus its questions (all of it when only they hold a number)
            span = without_questions(text)
            return (span if any(ch.isdigit() for ch in span) else text), {"extraction": "rules"}
        # a single-turn reply is graded even when its only number sits in a question (LiC's regex would read it
        # too); in a conversation the rule above already found a number outside questions
        return rule_based_answer(text) or extract_last_number(text) or "", {"extraction": "rules"}

    async def grade(self, answer: str, state: TaskState) -> tuple[bool, str, dict[str, Any]]:
        if self.scoring == "lic_exact":
            return lic_grade(answer, state.metadata.get("lic_gold") or state.metadata["gold"])
        gold = normalise_number(state.metadata["gold"])
        predicted = extract_last_number(answer)
        if predicted is None:
            return False, f"no number in the answer {answer[:200]!r}", {"gold": gold, "predicted": None}
        correct = predicted == gold
        relation = "==" if correct else "!="
        return (
            correct,
            f"answer {predicted!r} {relation} gold {gold!r}",
            {"gold": gold, "predicted": predicted},
        )


def lic_grade(answer: str, gold_text: str) -> tuple[bool, str, dict[str, Any]]:
    """LiC's `evaluator_function` on an answer span (`lic_exact`): last match, kept even without a digit."""
    gold = lic_rules.normalise(gold_text)
    matched = lic_rules.math_prediction(answer)
    if matched is None:
        return (
            False,
            f"no match of LiC's number pattern in {answer[:200]!r}",
            {"gold": gold, "predicted": None},
        )
    predicted = lic_rules.normalise(matched)
    correct = predicted == gold
    relation = "==" if correct else "!="
    explanation = f"answer {predicted!r} (LiC's last match {matched!r}) {relation} gold {gold!r}"
    return correct, explanation, {"gold": gold, "predicted": predicted, "matched": matched}


def math_stop_when(single_turn: bool = False, scoring: ScoringMode = DEFAULT_SCORING):
    """`stop_when` for math: stop when the latest answer attempt matches the gold answer."""
    return make_stop_when(MathAnswers(scoring), single_turn=single_turn)


@scorer(metrics=reliability_metrics())
def math_scorer(single_turn: bool = False, scoring: ScoringMode = DEFAULT_SCORING):
    """GSM8K flexible match on the conversation's last answer attempt (sample metadata `gold`; `lic_gold` under
    `lic_exact`).

    Args:
        single_turn: Every assistant reply is an answer attempt (LiC's FULL/CONCAT skip the classifier).
        scoring: `corrected` (default) or `lic_exact` (LiC's regex and dot stripping; docs/scoring.md).
    """
    answers = MathAnswers(scoring)

    async def score(state: TaskState, target: Target) -> Score:  # noqa: ARG001
        return await score_last_attempt(state, answers, single_turn=single_turn)

    return score
