"""`simulated_continue()`: react's `on_continue` hook answered by the simulated user
(docs/agents.md#talking-back-to-an-agent).

Inspect's `react` (`inspect_ai/agent/_react.py`) calls `on_continue(state)` after every step of its loop, with an
`AgentContinue` contract: `True` continues (when the step made no tool call react adds its default "Please
proceed..." message), a `str` continues with that user message, an `AgentState` continues from that state, `False`
stops the loop. A step that called tools is the agent at work; a step without tool calls is the agent talking to
its user (a question, a progress report, a draft answer). This handler keeps the first going (`True`, so react adds
nothing) and answers the second as the user would: the simulated user reads the conversation and writes the next
user turn, appended to the agent's messages (with `metadata={"simulator", "turn", "shard_id"}`, as the solver's
turns), or ends the conversation (`False`). A `react` agent with tools is so evaluated with a user in the loop.

Inside `simulated_user(..., assistant=react(..., on_continue=simulated_continue()))` the solver's simulated user
writes turn 1 and every reply here, under the solver's `max_turns`; when react returns (it submitted, or the user
ended the conversation here), the conversation is over (`agent_finished`, or the user's own stop reason).
"""

from __future__ import annotations

from typing import Any

from inspect_ai.agent import AgentContinue, AgentState
from inspect_ai.model import ChatMessageUser

from ..errors import UsageError
from ..sessions import UserSession
from ..turns import StopReason, TurnRecord, UserTurn
from .attach import attach_user, load_user


def simulated_continue(simulator: Any = None, max_turns: int = 8) -> AgentContinue:
    """An `on_continue` handler for `react` in which the simulated user replies to the agent, or ends the conversation.

    Args:
        simulator: Who replies when no `simulated_user` solver runs the sample (a preset name, YAML path, dict or
            `Simulator`). None: the sample's simulated user (the solver's), else `userlm`.
        max_turns: Cap on user turns when no solver runs the sample (the solver's `max_turns` applies otherwise);
            at the cap the conversation ends (`max_turns`).
    """
    if not isinstance(max_turns, int) or max_turns < 1:
        raise UsageError(f"simulated_continue: max_turns must be at least 1, got {max_turns!r}")
    sim, spec = load_user(simulator, "simulated_continue")

    async def on_continue(state: AgentState) -> bool | AgentState:
        session = attach_user(sim, spec, max_turns, "simulated_continue")
        session.agent_state, session.agent_talks_back = state, True
        if state.output.choices and state.output.message.tool_calls:
            return True  # the agent is at work: react adds no message after a tool call
        async with session.lock:
            return await reply(session, state)

    return on_continue


async def reply(session: UserSession, state: AgentState) -> bool | AgentState:
    """The simulated user's reply to the agent's last message: the state with it appended, or False to stop."""
    record = session.record
    if not session.turns_left():
        _count_final_assistant_turn(session)
        record.stop(StopReason.MAX_TURNS)
        return False
    index = session.next_index()
    async with record.turn_span(index):
        turn: UserTurn = await session.draft(state.messages, index)
        record.user_turn(TurnRecord(index=index, simulator=session.simulator.name, **dict(turn)))
    if turn.ended:
        _count_final_assistant_turn(session)
        record.stop(StopReason.USER_ENDED)
        return False
    record.assistant_turn()  # the message this turn answers
    state.messages.append(
        ChatMessageUser(
            content=turn.text or "",
            metadata={"simulator": session.simulator.name, "turn": index, "shard_id": turn.shard_id},
        )
    )
    return state


def _count_final_assistant_turn(session: UserSession) -> None:
    """The agent's last message counts once: the solver counts it when the agent returns; without one, we do."""
    if not session.owned_by_solver:
        session.record.assistant_turn()
