"""Where a simulated conversation's facts live while it runs: the sample store (`Conversation`).

`recorder.ConversationRecorder` writes here after every turn, so an Inspect limit that aborts the loop
mid-conversation loses nothing (limits raise inside `generate`; docs/inspect.md "Limits abort the solver"). Scorers and reports read it
back from `state.store` or from `EvalSample.store` in a log.
"""

from __future__ import annotations

from inspect_ai.util import Store, StoreModel
from pydantic import Field

from .turns import EndReason, StopReason, TurnRecord


class Conversation(StoreModel):
    """Per-sample record of a simulated conversation (store keys `Conversation:<field>`).

    Written only by `recorder.ConversationRecorder`. Fields are in the order the viewer's store tab lists them:
    why the conversation stopped first, the long `turns` list last.
    """

    simulator: str = Field(default="")
    """Name of the simulator (preset) that played the user."""
    stop_reason: StopReason | None = Field(default=None)
    end_reason: EndReason | None = Field(default=None)
    user_turns: int = Field(default=0)
    """Simulated user turns sent (a final 'ended' record does not count)."""
    assistant_turns: int = Field(default=0)
    revealed_shards: list[int] = Field(default_factory=list)
    """Shard ids revealed so far, in reveal order, each once."""
    intent: str = Field(default="")
    simulator_config: dict = Field(default_factory=dict)
    """The simulator's resolved settings (preset, model role, sampling, guardrails), for comparability."""
    turns: list[TurnRecord] = Field(default_factory=list)
    """One record per simulated user turn, in order (including a final 'ended' record if the user left)."""


def conversation_from_store(store: Store | dict) -> Conversation:
    """Read a `Conversation` back from a live `Store` or from a log's `EvalSample.store` dict."""
    if isinstance(store, dict):
        # A log holds enums as plain strings, and StoreModel skips coercion for scalars: restore them here so
        # readers can rely on `.value` whether the record is live or read back.
        data = dict(store)
        for field, enum in (("stop_reason", StopReason), ("end_reason", EndReason)):
            key = f"Conversation:{field}"
            if isinstance(data.get(key), str):
                data[key] = enum(data[key])
        store = Store(data)
    return Conversation(store=store)
