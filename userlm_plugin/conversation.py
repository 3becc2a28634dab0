"""The `simulated_user` solver: a simulator writes the user's turns, the assistant under test answers.

The sample transcript *is* the conversation, so ordinary Inspect scorers keep working on it. Everything about the
simulation goes to the log as it happens:
- each user turn runs in a transcript span "user turn N (<simulator>)" (type `simulated_user`) holding the
  simulator's model calls (labelled with their model role, "Model Call (user)") and a Markdown info event with
  who wrote the turn, the rejected drafts and why, and whether the guardrails gave up;
- each user message carries `metadata={"simulator", "turn", "shard_id"}`;
- `recorder.ConversationRecorder` rewrites the `Conversation` store record (records.py) after every turn, so a
  limit that aborts the loop loses nothing; a final info event and `state.metadata["simulated_user"]` say why
  the conversation stopped. Message/token/turn/cost limits raise `LimitExceededError`; time and working
  limits cancel the solver (recognised by the expired limit). Both are recorded as `StopReason.LIMIT` and
  re-raised, so Inspect records the limit (`EvalSample.limit`) and still scores the sample.

The simulator's model calls run under `suspend_token_limit()` / `suspend_turn_limit()`, so they never count
against the assistant's token and turn limits (docs/inspect.md); they still show in `role_usage` under their role.
`message_limit` counts every message, user turns included (Inspect has no way to suspend it).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
from inspect_ai.agent import Agent, AgentState
from inspect_ai.model import ChatMessageUser
from inspect_ai.solver import Generate, Solver, TaskState, solver
from inspect_ai.util import (
    LimitExceededError,
    sample_limits,
    span,
    suspend_token_limit,
    suspend_turn_limit,
)
from pydantic import ValidationError

from .errors import ConfigError, UsageError
from .recorder import SUMMARY_KEY, ConversationRecorder
from .sessions import UserSession, bind_session, find_session
from .simulators.background import intent_with_background
from .simulators.base import Shard, SimulationContext, Simulator
from .simulators.presets import load_simulator
from .turns import StopReason, TurnRecord, UserTurn

METADATA_KEY = SUMMARY_KEY
"""`state.metadata` key of the conversation summary (stop reason, turn counts, guardrail activity, simulator)."""

StopWhen = Callable[[TaskState], bool | Awaitable[bool]]


@solver
def simulated_user(
    simulator: str | dict[str, Any] | Simulator = "userlm",
    max_turns: int = 8,
    stop_when: StopWhen | None = None,
    assistant: Agent | None = None,
    intent: str | None = None,
) -> Solver:
    """Run a conversation between a simulated user and the assistant under test.

    The sample's system messages are kept; its input (user) messages are dropped, because the simulated user writes
    turn 1. The loop: the simulator writes a user turn (or ends the conversation), the assistant answers (Inspect's
    `generate`, tool loop included, or `assistant`), `stop_when` is checked, repeat until `max_turns` user turns.

    Args:
        simulator: A preset name ("userlm", "prompted", "prompted_flat", "sharded", "scripted"), a YAML preset
            path, a preset dict (`{"simulator": name, **settings}`), or a `Simulator` object.
        max_turns: Cap on simulated user turns.
        stop_when: Checked after each assistant turn (sync or async); True ends the conversation (e.g. on a
            correct answer, as Lost in Conversation does).
        assistant: An Inspect `Agent` that answers each user turn. Default: `generate` (the `--model` under test).
        intent: The user's intent for every sample. Default: sample metadata `intent`.

    Raises:
        UsageError: a bad simulator spec or `max_turns`, or (inside an eval) no `user` role and a default user
            model that is not here (raised while the task is built, before any model loads).
    """
    if not isinstance(max_turns, int) or max_turns < 1:
        raise UsageError(f"simulated_user: max_turns must be at least 1, got {max_turns!r}")
    try:
        sim = load_simulator(simulator)
    except ConfigError as ex:
        raise UsageError(str(ex)) from ex
    if callable(preflight := getattr(sim, "preflight", None)):
        preflight()  # e.g. a default user model that is not here: one line now, not a traceback per sample
    sim_config = describe_simulator(sim, simulator)

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        base = context_from_state(state, intent, needs_intent=getattr(sim, "needs_intent", True))
        state.messages = [m for m in state.messages if m.role == "system"]
        record = ConversationRecorder.start(state, sim.name, sim_config, base.intent)
        # the agent's `ask_user` / `on_continue` reach this same user (docs/agents.md)
        session = bind_session(
            UserSession(sim, base, record, state, max_turns=max_turns, owned_by_solver=True)
        )
        try:
            while True:
                if record.user_turns >= max_turns:
                    record.stop(StopReason.MAX_TURNS)
                    break
                turn = await _user_turn(sim, base, state, record)
                if turn.ended:
                    record.stop(StopReason.USER_ENDED)
                    break
                state.messages.append(
                    ChatMessageUser(
                        content=turn.text or "",
                        metadata={
                            "simulator": sim.name,
                            "turn": record.user_turns,
                            "shard_id": turn.shard_id,
                        },
                    )
                )
                state = await _assistant_turn(state, generate, assistant)
                record.assistant_turn()
                if record.stop_reason is not None:  # the user ended it while the agent ran (on_continue)
                    break
                if stop_when is not None and await _check(stop_when, state):
                    record.stop(StopReason.STOP_WHEN)
                    break
                if session.agent_talks_back:  # the agent ran the conversation itself and returned
                    record.stop(StopReason.AGENT_FINISHED)
                    break
        except LimitExceededError as ex:
            record.stop(StopReason.LIMIT, limit=ex.type)
            raise  # Inspect records the limit on the sample and still scores it
        except anyio.get_cancelled_exc_class():
            if (limit := _expired_clock_limit()) is not None:  # time/working limits cancel instead of raising
                record.stop(StopReason.LIMIT, limit=limit)
            raise
        return state

    return solve


async def _user_turn(
    sim: Simulator, base: SimulationContext, state: TaskState, record: ConversationRecorder
) -> UserTurn:
    """Ask the simulator for the next turn (outside the assistant's token/turn budget) and record it.

    Each turn gets its own `SimulationContext` (the transcript and revealed shards as they are now), so nothing a
    simulator sees can leak from one turn into the next."""
    index = record.user_turns + 1
    ctx = replace(base, messages=list(state.messages), turn=index, revealed=list(record.revealed))
    async with record.turn_span(index):
        turn = await ask_simulator(sim, ctx, record)
        record.user_turn(TurnRecord(index=index, simulator=sim.name, **dict(turn)))
    return turn


async def ask_simulator(sim: Simulator, ctx: SimulationContext, record: ConversationRecorder) -> UserTurn:
    """One turn from the simulator, outside the assistant's token and turn budget. A limit propagates as the
    limit it is; any other failure is recorded as the conversation's stop reason (`simulator_error`) first, so
    the record says why it ended. Shared by every loop that asks a simulator for a turn (this solver, the
    human-fidelity replay)."""
    try:
        with suspend_token_limit(), suspend_turn_limit():
            return await sim.next_turn(ctx)
    except LimitExceededError:
        raise
    except Exception:
        record.stop(StopReason.SIMULATOR_ERROR)
        raise


async def _assistant_turn(state: TaskState, generate: Generate, assistant: Agent | None) -> TaskState:
    if assistant is None:
        return await generate(state)
    agent_state = AgentState(messages=state.messages)
    session = find_session(state.store)
    if session is not None:  # the agent's ask_user sees its conversation as it grows
        session.agent_state = agent_state
    try:
        async with span(_agent_name(assistant), type="agent"):
            agent_state = await assistant(agent_state)
    finally:  # keep what the agent did even if a limit aborted it (as inspect_ai's as_solver does)
        state.messages = agent_state.messages
        if agent_state.output:
            state.output = agent_state.output
        if session is not None:
            session.agent_state = None
    return state


def context_from_state(state: TaskState, intent: str | None, needs_intent: bool = True) -> SimulationContext:
    """Read the simulation inputs from the sample: `intent` (str) and `shards` (LiC schema) in its metadata."""
    metadata = state.metadata or {}
    where = f"Sample {state.sample_id!r}"
    if intent is None:
        intent = metadata.get("intent")
        if intent is None and needs_intent:
            raise ConfigError(
                f"{where} has no metadata 'intent': the simulated user needs to know what it wants. Add an "
                "'intent' string to each sample's metadata (e.g. \"You are a user chatting with an assistant "
                'language model to ...") or pass simulated_user(intent=...).'
            )
    if intent is not None and (not isinstance(intent, str) or (needs_intent and not intent.strip())):
        raise ConfigError(f"{where}: 'intent' must be a non-empty string, got {intent!r:.200}.")
    intent = intent_with_background(intent, metadata, where)  # what the user knows (metadata user_background)
    raw_shards = metadata.get("shards") or []
    if not isinstance(raw_shards, list):
        raise ConfigError(
            f"{where}: metadata 'shards' must be a list of {{shard_id: int, shard: str}}, got {raw_shards!r:.200}."
        )
    shards: list[Shard] = []
    for i, raw in enumerate(raw_shards):
        try:
            shards.append(Shard.model_validate(raw))
        except ValidationError as ex:
            raise ConfigError(
                f"{where}: metadata 'shards[{i}]' must be {{shard_id: int, shard: str}}, got {raw!r:.200} "
                f"({ex.error_count()} error(s): {ex.errors()[0]['msg']})."
            ) from ex
    ids = [s.shard_id for s in shards]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{where}: metadata 'shards' has duplicate shard_id values: {ids}.")
    return SimulationContext(
        intent=intent or "",
        messages=[],
        turn=1,
        shards=sorted(shards, key=lambda s: s.shard_id),
        sample_id=state.sample_id,
        metadata=metadata,
        epoch=state.epoch,
    )


def _expired_clock_limit() -> str | None:
    """ "time" or "working" when that sample limit has run out (so a cancellation came from it), else None."""
    try:
        limits = sample_limits()
        for name, limit in (("time", limits.time), ("working", limits.working)):
            if limit.limit is not None and limit.usage >= limit.limit:
                return name
    except Exception:  # never mask the cancellation
        pass
    return None


async def _check(stop_when: StopWhen, state: TaskState) -> bool:
    result = stop_when(state)
    if inspect.isawaitable(result):
        result = await result
    return bool(result)


def describe_simulator(sim: Simulator, spec: object = None) -> dict[str, Any]:
    """What `Conversation.simulator_config` records: the simulator's `describe()` (else just its name), plus
    `preset` when `spec` (or, for a simulator object, the spec `load_simulator` built it from) named a preset or a
    preset file."""
    describe = getattr(sim, "describe", None)
    config: dict[str, Any] = describe() if callable(describe) else {"simulator": sim.name}
    preset = spec if isinstance(spec, str | Path) else getattr(sim, "preset", None)
    if preset is not None:
        config["preset"] = str(preset)
    return config


def _agent_name(agent: Agent) -> str:
    from inspect_ai.agent import is_agent

    from ._inspect_compat import agent_display_name

    return agent_display_name(agent) if is_agent(agent) else getattr(agent, "__name__", "assistant")
