"""What the code and math scorers share: finding the answer attempt, recording each check in the store,
and building the score.

Lost in Conversation checks an answer after every assistant turn an LLM classifies as an answer attempt,
ends the conversation on the first correct one, and scores the conversation by its LAST evaluated
attempt (paper.md §3.2). Without a classifier LLM we treat a turn as an attempt when the task's extractor
finds an answer in it (a Python function for code, a number for math). The same check backs `stop_when`
(after each assistant turn) and the scorer (at the end), and every check is appended to the
`AnswerChecks` store record so the log shows which turn was judged, how, and why.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

from inspect_ai.log import transcript
from inspect_ai.model import ChatMessageAssistant
from inspect_ai.scorer import Score
from inspect_ai.solver import TaskState
from inspect_ai.util import StoreModel
from pydantic import BaseModel, Field

from ...records import conversation_from_store
from ...turns import StopReason
from .reliability import CORRECT, ENDED_CORRECT, TURNS


class AnswerCheck(BaseModel):
    """One evaluation of one assistant answer."""

    assistant_turn: int
    """1-based index of the assistant message that was checked."""
    answer: str
    """What was evaluated (the extracted function, or the last number)."""
    correct: bool
    explanation: str
    details: dict[str, Any] = Field(default_factory=dict)
    by: str = "scorer"
    """`stop_when` (during the conversation) or `scorer` (at the end)."""


class AnswerChecks(StoreModel):
    """Every answer check of a sample, in order (store keys `AnswerChecks:<field>`)."""

    checks: list[AnswerCheck] = Field(default_factory=list)

    def find(self, answer: str) -> AnswerCheck | None:
        return next((c for c in self.checks if c.answer == answer), None)

    def add(self, check: AnswerCheck) -> None:
        self.checks = [*self.checks, check]


Extractor = Callable[[str, TaskState], str | None]
"""Pulls the gradeable answer out of one assistant message (None: not an answer attempt)."""
Checker = Callable[[str, TaskState], Awaitable[tuple[bool, str, dict[str, Any]]]]
"""Grades an extracted answer: (correct, explanation, details)."""


def assistant_messages(state: TaskState) -> list[ChatMessageAssistant]:
    return [m for m in state.messages if isinstance(m, ChatMessageAssistant)]


async def check_message(
    state: TaskState, turn: int, text: str, extract: Extractor, grade: Checker, by: str
) -> AnswerCheck | None:
    """Grade one assistant message (cached by extracted answer), record it and log it."""
    answer = extract(text, state)
    if answer is None:
        return None
    record = AnswerChecks(store=state.store)
    cached = record.find(answer)
    if cached is not None:
        check = cached.model_copy(update={"assistant_turn": turn, "by": by})
        check.details = {**check.details, "cached": True}
    else:
        correct, explanation, details = await grade(answer, state)
        check = AnswerCheck(
            assistant_turn=turn,
            answer=answer,
            correct=correct,
            explanation=explanation,
            details=details,
            by=by,
        )
    record.add(check)
    transcript().info(
        {
            "answer_check": by,
            "assistant_turn": turn,
            "correct": check.correct,
            "answer_sha1": hashlib.sha1(answer.encode()).hexdigest()[:12],
            "explanation": check.explanation[:500],
        },
        source="userlm_plugin/scoring",
    )
    return check


def make_stop_when(extract: Extractor, grade: Checker) -> Callable[[TaskState], Awaitable[bool]]:
    """`stop_when` for `simulated_user`: True when the latest assistant answer is correct (LiC's early end)."""

    async def stop_when(state: TaskState) -> bool:
        messages = assistant_messages(state)
        if not messages:
            return False
        check = await check_message(state, len(messages), messages[-1].text, extract, grade, by="stop_when")
        return bool(check and check.correct)

    return stop_when


async def score_last_attempt(state: TaskState, extract: Extractor, grade: Checker) -> Score:
    """Score the conversation by its last answer attempt (LiC), with turns and stop facts for the metrics."""
    conversation = conversation_from_store(state.store)
    messages = assistant_messages(state)
    check: AnswerCheck | None = None
    for index in range(len(messages), 0, -1):
        check = await check_message(state, index, messages[index - 1].text, extract, grade, by="scorer")
        if check is not None:
            break
    ended_correct = conversation.stop_reason == StopReason.STOP_WHEN
    value = {
        CORRECT: 1.0 if check and check.correct else 0.0,
        TURNS: float(conversation.user_turns),
        ENDED_CORRECT: 1.0 if ended_correct else 0.0,
    }
    metadata = {
        "assistant_turns": len(messages),
        "user_turns": conversation.user_turns,
        "stop_reason": str(conversation.stop_reason) if conversation.stop_reason else None,
        "end_reason": str(conversation.end_reason) if conversation.end_reason else None,
        "answer_turn": check.assistant_turn if check else None,
        "checks": len(AnswerChecks(store=state.store).checks),
    }
    if check is None:
        return Score(
            value=value,
            answer="",
            explanation=f"no answer attempt in {len(messages)} assistant turn(s)",
            metadata=metadata,
        )
    return Score(
        value=value,
        answer=check.answer,
        explanation=f"assistant turn {check.assistant_turn}: {check.explanation}",
        metadata={**metadata, **check.details},
    )
