"""`simulated_ask_user()`: Inspect's `ask_user` tool, answered by the sample's simulated user
(docs/agents.md#the-ask_user-tool).

Same name, description and parameters as `inspect_ai.tool.ask_user()` (they are taken from it), same schema checks,
same answers: the JSON text of the answer when the user answers, `ToolError("User declined to answer the
question.")` when they do not. Inspect's own tool reaches a console, the Textual panel or an ACP client, so a
headless eval of an agent that asks simply waits; this one asks the simulated user.

What happens to one question:
1. The schema is checked as Inspect checks it (a bad one is `ToolError("Invalid schema: ...")`, no user turn).
2. The simulated user (`simulated_user`'s, else this tool's simulator) reads the agent's conversation so far and
   the question as the assistant's latest message, and writes a reply, as it writes any turn: the User LM with its
   guardrails, a prompted LLM, LiC's sharded user revealing at most one shard, a script.
3. The reply is read into the form (`forms.py`; nothing is invented) and validated against the schema. A reply
   that does not fit is rejected (`invalid_answer`, with why) and the question asked again with what was wrong,
   up to `max_retries` times; then the question is declined. A reply that refuses ("I don't know"), or a user who
   ends the conversation instead, declines at once. Past the user-turn cap the question is declined unasked.
4. The whole exchange is one user turn of the simulated user's span ("user turn N (<simulator>)"): the drafts'
   model calls, the turn record (question, reply, answer or decline, rejected drafts) and Inspect's own
   `InputEvent`, so the viewer shows it as it shows a person's answer.
"""

from __future__ import annotations

from typing import Any

from inspect_ai.log import transcript
from inspect_ai.model import ChatMessage, ChatMessageAssistant, ChatMessageUser
from inspect_ai.tool import Tool, ToolDef, ToolError
from pydantic import BaseModel, Field

from ..errors import UsageError
from ..recorder import QUESTION_KEY, REPLY_KEY
from ..sessions import UserSession
from ..turns import Rejection, RejectReason, TurnRecord
from .attach import attach_user, load_user
from .forms import fill_form
from .questions import DECLINED, Question, is_decline, parse_question, render_question, render_retry

ASK_USER_SOURCE = "simulated_user/ask_user"
"""`source` of the transcript events this tool writes outside a user turn."""


class Answer(BaseModel):
    """How one question ended (the turn record keeps it under `metadata.ask_user`)."""

    outcome: str
    """`accepted` or `declined` (Inspect's `InputOutcome`; a simulated user never cancels)."""
    content: dict[str, Any] | None = None
    reply: str | None = None
    """The user's own words that gave the answer (or the refusal)."""
    reason: str | None = None
    """Why a question was declined: `refused`, `user_ended`, `no_valid_answer`, `max_turns`."""
    end_reason: str | None = None
    """How the user ended the conversation instead of answering (`user_ended`)."""
    attempts: int = 0
    shard_id: int | None = None
    guardrails_exhausted: bool = False
    """The simulator's own guardrails gave up on the draft that answered (userlm, prompted)."""
    rejected: list[Rejection] = Field(default_factory=list, exclude=True)
    """Every reply thrown away on the way, the simulator's own guardrail rejections included."""
    facts: dict[str, Any] = Field(default_factory=dict, exclude=True)
    """What the simulator reported about its calls (model, seed, ...)."""


def simulated_ask_user(simulator: Any = None, max_retries: int = 2, max_turns: int | None = None) -> Tool:
    """Inspect's `ask_user` tool, answered by a simulated user.

    Args:
        simulator: Who answers when no `simulated_user` solver runs the sample (a preset name, YAML path, dict or
            `Simulator`). None: the sample's simulated user (the solver's), else `userlm`.
        max_retries: Questions asked again after a reply that does not fit the schema, before declining.
        max_turns: Cap on user turns when no solver runs the sample (the solver's `max_turns` applies otherwise).
    """
    if not isinstance(max_retries, int) or max_retries < 0:
        raise UsageError(f"simulated_ask_user: max_retries must be a whole number >= 0, got {max_retries!r}")
    sim, spec = load_user(simulator, "simulated_ask_user")

    async def execute(message: str, schema: dict[str, Any]) -> str:
        question = parse_question(message, schema)
        session = attach_user(sim, spec, max_turns, "simulated_ask_user")
        async with session.lock:
            answer = await ask(session, question, max_retries)
        if answer.outcome == "accepted":
            return _json(answer.content)
        raise ToolError(DECLINED)

    from inspect_ai.tool import ask_user

    reference = ToolDef(ask_user())
    return ToolDef(
        execute,
        name=reference.name,
        description=reference.description,
        parameters=reference.parameters,
        parallel=reference.parallel,
        viewer=reference.viewer,
        model_input=reference.model_input,
    ).as_tool()


async def ask(session: UserSession, question: Question, max_retries: int) -> Answer:
    """Put `question` to the session's simulated user and record the exchange as one user turn (with Inspect's own
    `InputEvent`, as a person's answer leaves)."""
    from .._inspect_compat import record_input_event

    if not session.turns_left():
        transcript().info(
            f"**Question declined unasked**: the simulated user's turn cap ({session.max_turns}) is reached. "
            f"Asked: “{question.message.strip()[:300]}”",
            source=ASK_USER_SOURCE,
        )
        record_input_event(question.message, question.schema, "declined", None)
        return Answer(outcome="declined", reason="max_turns")
    index = session.next_index()
    async with session.record.turn_span(index):
        answer = await _answer(session, question, index, max_retries)
        metadata = {
            **answer.facts,
            QUESTION_KEY: question.message,
            REPLY_KEY: answer.reply,
            "ask_user": answer.model_dump(exclude_none=True) | {"schema": question.json_schema},
        }
        session.record.user_turn(
            TurnRecord(
                index=index,
                simulator=session.simulator.name,
                text=_json(answer.content) if answer.outcome == "accepted" else DECLINED,
                shard_id=answer.shard_id,
                rejected=answer.rejected,
                retries=max(answer.attempts - 1, 0),
                guardrails_exhausted=answer.guardrails_exhausted,
                metadata={k: v for k, v in metadata.items() if v is not None},
            )
        )
        record_input_event(question.message, question.schema, answer.outcome, answer.content)
    return answer


async def _answer(session: UserSession, question: Question, index: int, max_retries: int) -> Answer:
    """Draft, read and validate replies until one fits, the user refuses or ends, or the retries run out."""
    messages: list[ChatMessage] = [
        *session.conversation(),
        ChatMessageAssistant(content=render_question(question)),
    ]
    seen = Answer(outcome="declined")  # what every draft so far left: rejections and call facts
    for attempt in range(1, max_retries + 2):
        turn = await session.draft(messages, index)
        seen.rejected.extend(turn.rejected)  # the simulator's own guardrail rejections (userlm, prompted)
        seen.facts.update(turn.metadata)
        done = {"attempts": attempt, "rejected": seen.rejected, "facts": seen.facts}
        if turn.ended:
            return Answer(outcome="declined", reason="user_ended", end_reason=str(turn.end_reason), **done)
        reply = (turn.text or "").strip()
        if is_decline(reply):
            return Answer(outcome="declined", reason="refused", reply=reply, **done)
        content, error = fill_form(reply, question)
        if content is not None:
            return Answer(
                outcome="accepted",
                content=content,
                reply=reply,
                shard_id=turn.shard_id,
                guardrails_exhausted=turn.guardrails_exhausted,
                **done,
            )
        seen.rejected.append(Rejection(text=reply, reason=RejectReason.INVALID_ANSWER, detail=error))
        messages += [
            ChatMessageUser(content=reply),
            ChatMessageAssistant(content=render_retry(question, error or "")),
        ]
    return Answer(
        outcome="declined",
        reason="no_valid_answer",
        attempts=max_retries + 1,
        rejected=seen.rejected,
        facts=seen.facts,
    )


def _json(content: dict[str, Any] | None) -> str:
    from .._inspect_compat import to_json_str_safe

    return to_json_str_safe(content or {})
