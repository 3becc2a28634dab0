"""Find the sample's simulated user, or start one, for an agent tool (docs/agents.md#one-simulated-user-per-sample).

Inside `simulated_user(..., assistant=agent)` the solver's session is the user: its simulator answers, its record
holds every turn, its `max_turns` caps them. An agent run without that solver (react as the task's solver) gets a
session the first time its `ask_user` or `on_continue` needs the user, from the tool's own simulator, with the
sample's intent, shards and background (the same `context_from_state` the solver reads).
"""

from __future__ import annotations

from typing import Any

from ..conversation import context_from_state, describe_simulator
from ..errors import ConfigError, UsageError
from ..recorder import ConversationRecorder
from ..sessions import UserSession, bind_session, find_session
from ..simulators.base import Simulator
from ..simulators.presets import load_simulator

DEFAULT_SIMULATOR = "userlm"


def load_user(spec: Any, who: str) -> tuple[Simulator | None, Any]:
    """Resolve an agent tool's `simulator` argument while the task is built (a bad spec is a `UsageError`).
    None stays None: "the sample's simulated user", `userlm` when there is none yet."""
    if spec is None:
        return None, None
    try:
        return load_simulator(spec), spec
    except ConfigError as ex:
        raise UsageError(f"{who}: {ex}") from ex


def attach_user(simulator: Simulator | None, spec: Any, max_turns: int | None, who: str) -> UserSession:
    """The sample's session (checking it is the simulator asked for), else a new one bound to the sample."""
    from .._inspect_compat import sample_state

    state = sample_state()
    if state is None:
        raise ConfigError(f"{who} needs a running Inspect sample: use it in a task's solver or agent.")
    session = find_session(state.store)
    if session is not None:
        if (
            simulator is not None
            and simulator is not session.simulator
            and _settings(simulator) != _settings(session.simulator)
        ):
            raise ConfigError(
                f"Sample {state.sample_id!r}: {who} was given simulator {simulator.name!r}, but this sample's "
                f"simulated user is {session.simulator.name!r} (from simulated_user or another agent tool). One "
                "sample has one simulated user: pass the same simulator, or none to use the sample's."
            )
        return session
    if simulator is None:
        simulator, spec = load_simulator(DEFAULT_SIMULATOR), DEFAULT_SIMULATOR
    base = context_from_state(state, None, needs_intent=getattr(simulator, "needs_intent", True))
    record = ConversationRecorder.start(
        state, simulator.name, describe_simulator(simulator, spec), base.intent
    )
    return bind_session(UserSession(simulator, base, record, state, max_turns=max_turns))


def _settings(simulator: Simulator) -> dict[str, Any]:
    config = describe_simulator(simulator)
    config.pop("preset", None)
    return config
