"""Replay a human conversation turn by turn and let the simulator write each user turn (docs/fidelity.md#the-replay).

For a conversation with K human turns the simulator is asked K + 1 times: at turn k it sees the intent and the
REAL conversation before turn k (the human's turns and the assistant's replies, never its own earlier drafts) and
writes turn k or ends the conversation; at turn K + 1, after the last real reply, the person ended, and the
simulator either ends too or goes on. No assistant model is called.

Each turn is recorded by `ConversationRecorder` (the store's `Conversation` record, the turn's span with the
simulator's model calls, and an info event with the person's turn beside the simulated one), so a reader sees both
side by side in `inspect view`. `replay_positions` reads the pairs back for the scorers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from inspect_ai.model import ChatMessageUser, model_roles
from inspect_ai.solver import Generate, Solver, TaskState, solver

from ..._inspect_compat import eval_being_set_up
from ...conversation import ask_simulator, context_from_state, describe_simulator
from ...errors import UsageError
from ...recorder import ConversationRecorder
from ...records import conversation_from_store
from ...simulators.base import Simulator
from ...simulators.presets import load_simulator
from ...simulators.userlm import UserLMUser
from ...turns import HumanReference, StopReason, TurnRecord

END_FROM_SECOND_TURN = {"min_turns_before_end": 1}
"""The User LM bans ending by default (docs/userlm.md#guardrails); the replay lets it end from turn 2 on (nobody
ends a conversation before their first turn), unless the simulator's own guardrail settings say otherwise."""


def ending_allowed(sim: Simulator) -> Simulator:
    """`sim` with ending allowed from turn 2 (User LM only; the other simulators may always end)."""
    if isinstance(sim, UserLMUser):
        guardrails = {**END_FROM_SECOND_TURN, **(sim.config.guardrails or {})}
        allowed = UserLMUser(sim.config.model_copy(update={"guardrails": guardrails}))
        allowed.preset = sim.preset
        return allowed
    return sim


@dataclass(frozen=True)
class ReplayPosition:
    """One point of a replayed conversation: what the person did there, and what the simulator did."""

    index: int
    human: str | None
    """The person's turn; None at the last position, where they ended."""
    simulated: str | None
    """The simulator's turn; None when it ended the conversation here."""
    end_reason: str | None = None


def human_turns(state: TaskState) -> list[str]:
    """The person's user turns (sample metadata `turns`, else the input's user messages)."""
    turns = (state.metadata or {}).get("turns")
    if isinstance(turns, list):
        return [str(t) for t in turns]
    messages = state.input if isinstance(state.input, list) else []
    return [m.text for m in messages if m.role == "user"]


def replay_positions(state: TaskState) -> list[ReplayPosition]:
    """The replayed positions of a sample, in order (empty when it was not replayed)."""
    human = human_turns(state)
    records = conversation_from_store(state.store).turns
    return [
        ReplayPosition(
            index=r.index,
            human=human[r.index - 1] if r.index <= len(human) else None,
            simulated=r.text,
            end_reason=None if r.end_reason is None else str(r.end_reason),
        )
        for r in sorted(records, key=lambda r: r.index)
    ]


def check_user_model(sim: Simulator) -> None:
    """A model-backed simulator needs its role bound (or a model of its own): the replay has no model under test
    to fall back on, so say so in one line instead of Inspect's "No model specified"."""
    config = getattr(sim, "config", None)
    role, model = getattr(config, "role", None), getattr(config, "model", None)
    if role is not None and model is None and role not in model_roles():
        raise UsageError(
            f"the {sim.name} simulator writes with the `{role}` model role and the replay has no model under test "
            f"to fall back on: bind one with --model-role {role}=<model>"
        )


@solver
def replay_human_turns(simulator: str | dict[str, Any] | Simulator = "userlm") -> Solver:
    """For each user turn of the sample's real conversation, ask the simulator for that turn (see the module)."""
    sim = ending_allowed(load_simulator(simulator))
    if callable(preflight := getattr(sim, "preflight", None)):
        preflight()  # a default user model that is not here: one line now, not a traceback per sample
    if eval_being_set_up():  # the eval's roles are known: a missing one is one line before any sample
        check_user_model(sim)
    config = describe_simulator(sim, simulator)

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        check_user_model(sim)
        base = context_from_state(state, None, needs_intent=getattr(sim, "needs_intent", True))
        system = [m for m in state.messages if m.role == "system"]
        dialogue = [m for m in state.messages if m.role in ("user", "assistant")]
        human = human_turns(state)
        record = ConversationRecorder.start(state, sim.name, config, base.intent)
        simulated: dict[int, TurnRecord] = {}
        for index in range(1, len(human) + 2):
            ctx = replace(base, messages=[*system, *dialogue[: 2 * (index - 1)]], turn=index)
            reference = HumanReference(text=human[index - 1] if index <= len(human) else None)
            async with record.turn_span(index):
                turn = await ask_simulator(sim, ctx, record)
                simulated[index] = TurnRecord(index=index, simulator=sim.name, **dict(turn))
                record.user_turn(simulated[index], human=reference)
        last = simulated[len(human) + 1]
        record.stop(StopReason.USER_ENDED if last.ended else StopReason.MAX_TURNS)
        state.messages = [_annotated(m, simulated) for m in state.messages]
        state.completed = True
        return state

    return solve


def _annotated(message: Any, simulated: dict[int, TurnRecord]) -> Any:
    """A real user message with the simulated turn of the same position in its metadata."""
    if message.role != "user" or not isinstance(message.metadata, dict) or "turn" not in message.metadata:
        return message
    turn = simulated.get(int(message.metadata["turn"]))
    if turn is None:
        return message
    return ChatMessageUser(
        content=message.content,
        metadata={**message.metadata, "simulated": turn.text, "simulated_ended": turn.ended},
    )
