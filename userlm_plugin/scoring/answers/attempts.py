"""What the code and math scorers share: deciding which assistant turns are answer attempts, grading them,
recording every decision in the store, and building the score.

Lost in Conversation (`simulator_sharded.py`) classifies each assistant turn of a sharded conversation, grades
only answer attempts, ends the conversation on the first correct one, and scores the conversation by its LAST
graded attempt; FULL and CONCAT (`simulator_full.py`) grade their single reply without classifying it. We do
the same, with the classifier in one of two forms (docs/scoring.md):
- `grader` model role bound: LiC's LLM classifier and extractor (`grader.py`); only `answer_attempt` counts;
- otherwise our rules (`AnswerTask.rule_based`): code counts when it holds a non-template function (or a
  `class Solution`), whatever question follows it; math counts when a number appears outside question sentences.
A classification the grader could not produce (malformed output every try) falls back to the rules and is
counted (`grader_failures` in the score metadata).

The same check backs `stop_when` (after each assistant turn) and the scorer (at the end); each turn is decided
once (`AnswerChecks.verdicts`, keyed by turn and text) and each distinct answer graded once (`AnswerChecks.checks`),
so the log shows which turn was judged, how, and why.

Under `-T scoring=lic_exact` a turn on which LiC's own code raises (`modes.LIC_CRASH` in the check's details) ends
the conversation there, as it aborts LiC's; its score records why, and the reliability metrics leave it out, as
LiC's results do (docs/scoring.md, "Scoring modes").
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from inspect_ai.log import transcript
from inspect_ai.model import ChatMessageAssistant
from inspect_ai.scorer import Score
from inspect_ai.solver import TaskState
from inspect_ai.util import StoreModel
from pydantic import BaseModel, Field

from ...records import Conversation, conversation_from_store
from ...turns import StopReason
from .grader import classify_turn, grader_bound
from .modes import DEFAULT_SCORING, LIC_CRASH, SCORING_KEY, ScoringMode
from .reliability import CORRECT, ENDED_CORRECT, TURNS

AttemptRule = Literal["single_turn", "grader", "rules", "rules_after_grader_failure"]


class AnswerTask(ABC):
    """One task kind's answer rules: how a turn is recognised as an attempt, extracted, and graded."""

    kind: str
    answer_description: str
    """What a final answer looks like (shown to the grader)."""
    scoring: ScoringMode = DEFAULT_SCORING
    """`corrected` or `lic_exact` (`modes.py`), recorded in every score's metadata."""

    @abstractmethod
    def rule_based(self, text: str, state: TaskState) -> str | None:
        """Our default rule: the answer in `text`, or None when the turn is not an answer attempt."""

    @abstractmethod
    async def extract(self, text: str, state: TaskState, use_grader: bool) -> tuple[str, dict[str, Any]]:
        """The answer of a turn already known to be an attempt ("" when none can be found) and extraction facts."""

    @abstractmethod
    async def grade(self, answer: str, state: TaskState) -> tuple[bool, str, dict[str, Any]]:
        """(correct, explanation, details) for an extracted answer."""


class TurnVerdict(BaseModel):
    """Whether one assistant turn is an answer attempt, decided once per turn and text."""

    assistant_turn: int
    """1-based index of the assistant message."""
    text_sha1: str
    attempt: bool
    rule: AttemptRule
    label: str | None = None
    """The grader's response type (grader rules only)."""
    answer: str | None = None
    """The extracted answer (attempts only; "" when an attempt held no extractable answer)."""
    details: dict[str, Any] = Field(default_factory=dict)


class AnswerCheck(BaseModel):
    """One evaluation of one assistant answer."""

    assistant_turn: int
    """1-based index of the assistant message that was checked."""
    answer: str
    """What was evaluated (the extracted code, or the math answer span)."""
    correct: bool
    explanation: str
    details: dict[str, Any] = Field(default_factory=dict)
    by: str = "scorer"
    """`stop_when` (during the conversation) or `scorer` (at the end)."""
    rule: AttemptRule = "rules"
    """How the turn was recognised as an attempt."""


class AnswerChecks(StoreModel):
    """Every attempt decision and answer check of a sample, in order (store keys `AnswerChecks:<field>`)."""

    verdicts: list[TurnVerdict] = Field(default_factory=list)
    checks: list[AnswerCheck] = Field(default_factory=list)

    def find(self, answer: str) -> AnswerCheck | None:
        return next((c for c in self.checks if c.answer == answer), None)

    def verdict(self, turn: int, sha1: str) -> TurnVerdict | None:
        return next((v for v in self.verdicts if v.assistant_turn == turn and v.text_sha1 == sha1), None)

    def add(self, check: AnswerCheck) -> None:
        self.checks = [*self.checks, check]

    def add_verdict(self, verdict: TurnVerdict) -> None:
        self.verdicts = [*self.verdicts, verdict]


def assistant_messages(state: TaskState) -> list[ChatMessageAssistant]:
    return [m for m in state.messages if isinstance(m, ChatMessageAssistant)]


def task_shards(state: TaskState) -> tuple[str, list[dict[str, Any]]]:
    """(opening request, other shards) for the grader, as LiC's `verify_system_response` passes them: shard 1
    and the rest; samples without shards give their instruction and no further details."""
    metadata = state.metadata or {}
    shards = [s for s in metadata.get("shards") or [] if isinstance(s, dict)]
    if shards:
        return str(shards[0].get("shard", "")), [
            {"shard_id": s.get("shard_id"), "shard": s.get("shard")} for s in shards[1:]
        ]
    return str(metadata.get("instruction") or metadata.get("intent") or ""), []


async def decide_turn(
    state: TaskState, turn: int, text: str, task: AnswerTask, single_turn: bool
) -> TurnVerdict:
    """Is assistant turn `turn` an answer attempt, and what is its answer? Decided once and stored."""
    record = AnswerChecks(store=state.store)
    sha1 = hashlib.sha1(text.encode()).hexdigest()[:12]
    if (known := record.verdict(turn, sha1)) is not None:
        return known
    use_grader = grader_bound()
    label: str | None = None
    details: dict[str, Any] = {}
    if single_turn:
        rule: AttemptRule = "single_turn"
        attempt = True
    elif use_grader:
        first, shards = task_shards(state)
        classification = await classify_turn(text, first, shards, task.answer_description, turn)
        label = classification.label
        details = {"grader_tries": classification.tries, "grader_model": classification.model}
        if label is not None:
            rule, attempt = "grader", classification.is_attempt
        else:
            details["grader_errors"] = classification.errors
            rule, attempt = "rules_after_grader_failure", task.rule_based(text, state) is not None
            use_grader = False
    else:
        rule, attempt = "rules", task.rule_based(text, state) is not None
    answer: str | None = None
    if attempt:
        # LiC extracts math answers with the LLM in FULL/CONCAT too, so the grader extracts whenever it is bound
        answer, facts = await task.extract(text, state, use_grader)
        details.update(facts)
    verdict = TurnVerdict(
        assistant_turn=turn,
        text_sha1=sha1,
        attempt=attempt,
        rule=rule,
        label=label,
        answer=answer,
        details=details,
    )
    record.add_verdict(verdict)
    return verdict


async def check_turn(
    state: TaskState, turn: int, text: str, task: AnswerTask, by: str, single_turn: bool = False
) -> AnswerCheck | None:
    """Decide whether the turn is an attempt; if so grade its answer (cached by answer), record and log it."""
    verdict = await decide_turn(state, turn, text, task, single_turn)
    if not verdict.attempt or verdict.answer is None:
        return None
    answer = verdict.answer
    record = AnswerChecks(store=state.store)
    cached = record.find(answer) if answer else None  # nothing to grade in "": each such turn says why itself
    if cached is not None:
        check = cached.model_copy(update={"assistant_turn": turn, "by": by, "rule": verdict.rule})
        check.details = {**check.details, "cached": True}
    else:
        if answer:
            correct, explanation, details = await task.grade(answer, state)
        elif crash := verdict.details.get(LIC_CRASH):
            explanation = f"{crash}; LiC aborts the conversation here and its results leave it out"
            correct, details = False, {}
        else:
            correct, explanation, details = False, "an answer attempt, but no answer could be extracted", {}
        check = AnswerCheck(
            assistant_turn=turn,
            answer=answer,
            correct=correct,
            explanation=explanation,
            details={**verdict.details, **details},
            by=by,
            rule=verdict.rule,
        )
    record.add(check)
    transcript().info(
        {
            "answer_check": by,
            "assistant_turn": turn,
            "rule": verdict.rule,
            **({"label": verdict.label} if verdict.label else {}),
            "correct": check.correct,
            "answer_sha1": hashlib.sha1(answer.encode()).hexdigest()[:12],
            "explanation": check.explanation[:500],
        },
        source="userlm_plugin/scoring",
    )
    return check


def make_stop_when(task: AnswerTask, single_turn: bool = False) -> Callable[[TaskState], Awaitable[bool]]:
    """`stop_when` for `simulated_user`: True when the latest assistant turn is a correct answer (LiC's early end),
    or, under `lic_exact`, one on which LiC's own code raises (which ends LiC's conversation too)."""

    async def stop_when(state: TaskState) -> bool:
        messages = assistant_messages(state)
        if not messages:
            return False
        check = await check_turn(state, len(messages), messages[-1].text, task, "stop_when", single_turn)
        return bool(check and (check.correct or LIC_CRASH in check.details))

    return stop_when


def conversation_summary(conversation: Conversation, assistant_turns: int) -> str:
    """How the conversation ended, for the score explanation: stop reason, turns, guardrail exhaustion."""
    reason = conversation.stop_reason.value if conversation.stop_reason else "unknown"
    if conversation.end_reason:
        reason += f" ({conversation.end_reason.value})"
    text = f"conversation stopped: {reason} after {conversation.user_turns} user / {assistant_turns} assistant turn(s)"
    exhausted = [t.index for t in conversation.turns if t.guardrails_exhausted]
    if exhausted:
        text += f"; guardrails exhausted on user turn(s) {', '.join(map(str, exhausted))}"
    return text


async def score_last_attempt(state: TaskState, task: AnswerTask, single_turn: bool = False) -> Score:
    """Score the conversation by its last answer attempt (LiC), with turns and stop facts for the metrics."""
    conversation = conversation_from_store(state.store)
    messages = assistant_messages(state)
    check: AnswerCheck | None = None
    for index in range(len(messages), 0, -1):
        check = await check_turn(state, index, messages[index - 1].text, task, "scorer", single_turn)
        if check is not None:
            break
    record = AnswerChecks(store=state.store)
    ended_correct = conversation.stop_reason == StopReason.STOP_WHEN and check is not None and check.correct
    value = {
        CORRECT: 1.0 if check and check.correct else 0.0,
        TURNS: float(conversation.user_turns),
        ENDED_CORRECT: 1.0 if ended_correct else 0.0,
    }
    metadata = {
        SCORING_KEY: task.scoring,
        "assistant_turns": len(messages),
        "user_turns": conversation.user_turns,
        "stop_reason": str(conversation.stop_reason) if conversation.stop_reason else None,
        "end_reason": str(conversation.end_reason) if conversation.end_reason else None,
        "guardrails_exhausted": sum(t.guardrails_exhausted for t in conversation.turns),
        "answer_turn": check.assistant_turn if check else None,
        "attempt_rule": check.rule if check else None,
        "attempts": sum(v.attempt for v in record.verdicts),
        "grader_failures": sum(v.rule == "rules_after_grader_failure" for v in record.verdicts),
        "checks": len(record.checks),
    }
    summary = conversation_summary(conversation, len(messages))
    if check is None:
        return Score(
            value=value,
            answer="",
            explanation=f"no answer attempt in {len(messages)} assistant turn(s); {summary}",
            metadata=metadata,
        )
    return Score(
        value=value,
        answer=check.answer,
        explanation=f"assistant turn {check.assistant_turn} ({check.rule}): {check.explanation}\n{summary}",
        metadata={**metadata, **check.details},
    )
