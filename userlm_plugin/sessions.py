"""One simulated user per sample, shared by everything that talks to it (docs/agents.md#one-simulated-user-per-sample).

The `simulated_user` solver writes the user's own turns; an agent it runs may also reach the same user through the
`ask_user` tool and through react's `on_continue` hook (`userlm_plugin.agents`). All of them must see one
conversation record, one turn count and one simulator, or the log would hold two conversations that each think
they are the only one. A `UserSession` is that shared piece: the solver binds one when it starts, and the agent
tools find it (or, when an agent runs without the solver, open one themselves).

Sessions are found through the running sample and its `Store` (the one object Inspect hands every solver, agent
and tool of a sample, through `inspect_ai.util.store()`), and dropped when the sample ends, so a finished sample
leaves nothing behind.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field, replace
from typing import Any

import anyio
from inspect_ai.agent import AgentState
from inspect_ai.model import ChatMessage
from inspect_ai.solver import TaskState
from inspect_ai.util import LimitExceededError, Store, suspend_token_limit, suspend_turn_limit

from .recorder import ConversationRecorder
from .simulators.base import SimulationContext, Simulator
from .turns import StopReason, UserTurn


@dataclass
class UserSession:
    """The simulated user of one sample: its simulator, its inputs, its record, and the agent it talks to."""

    simulator: Simulator
    base: SimulationContext
    """The sample's simulation inputs (intent, shards, metadata); each turn gets a fresh copy with the turn's view."""
    record: ConversationRecorder
    state: TaskState
    max_turns: int | None = None
    """Cap on user turns (the solver's `max_turns`, or the agent tool's own when no solver runs)."""
    owned_by_solver: bool = False
    """True when the `simulated_user` solver started the conversation (it then also counts assistant turns and
    records the final stop reason)."""
    agent_state: AgentState | None = None
    """The state of the agent that is running, when one is: its messages are the conversation as it is now."""
    agent_talks_back: bool = False
    """An `on_continue` handler of ours ran: the agent runs the conversation itself, and its return ends it."""
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    """Questions and replies are written one at a time (an agent may ask several questions at once)."""

    def conversation(self) -> list[ChatMessage]:
        """The conversation as the agent sees it now (the running agent's messages, else the sample's)."""
        messages = self.agent_state.messages if self.agent_state is not None else self.state.messages
        return list(messages)

    def turns_left(self) -> bool:
        return self.max_turns is None or self.record.user_turns < self.max_turns

    def next_index(self) -> int:
        return self.record.user_turns + 1

    async def draft(self, messages: list[ChatMessage], index: int) -> UserTurn:
        """Ask the simulator for user turn `index` given `messages`, outside the assistant's token/turn budget (as
        the solver does, docs/inspect.md). A simulator that raises stops the conversation (`simulator_error`)."""
        ctx = replace(self.base, messages=list(messages), turn=index, revealed=list(self.record.revealed))
        try:
            with suspend_token_limit(), suspend_turn_limit():
                return await self.simulator.next_turn(ctx)
        except LimitExceededError:
            raise
        except Exception:
            self.record.stop(StopReason.SIMULATOR_ERROR)
            raise


_sessions: dict[tuple[int, int], tuple[weakref.ref[Any], UserSession]] = {}
"""Sessions by (running sample, store). The session holds its sample's state and store, so the store cannot be
what frees it; the running sample (Inspect's `ActiveSample`, which nothing of ours references) is held weakly
instead, and its end removes the session."""


def _key(store: Store | Any) -> tuple[Any, tuple[int, int]]:
    from ._inspect_compat import sample_active

    sample = sample_active()
    return sample, (id(sample), id(store))


def bind_session(session: UserSession) -> UserSession:
    """Make `session` the simulated user of its sample (replacing any earlier one)."""
    sample, key = _key(session.state.store)
    if sample is None:
        raise RuntimeError("a simulated user session needs a running Inspect sample")
    _sessions[key] = (weakref.ref(sample, lambda _ref: _forget(key[0])), session)
    return session


def find_session(store: Store | Any) -> UserSession | None:
    """The session bound to the running sample that owns `store`, else None."""
    sample, key = _key(store)
    entry = _sessions.get(key)
    if sample is None or entry is None or entry[0]() is not sample:
        return None
    return entry[1]


def _forget(sample_id: int) -> None:
    for key in [k for k in _sessions if k[0] == sample_id]:
        _sessions.pop(key, None)


def open_sessions() -> int:
    """Sessions still held (for tests: none once the samples that opened them are over)."""
    return len(_sessions)
