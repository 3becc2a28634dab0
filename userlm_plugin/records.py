"""Where a simulated conversation's facts live while it runs: the sample store (`Conversation`).

The solver writes here after every turn, so an Inspect limit that aborts the loop mid-conversation loses
nothing (limits raise inside `generate`; shared/notes/inspect_litellm.md G5). Scorers and reports read it
back from `state.store` or from `EvalSample.store` in a log.
"""

from __future__ import annotations

from inspect_ai.util import Store, StoreModel
from pydantic import Field

from .turns import EndReason, StopReason, TurnRecord


class Conversation(StoreModel):
    """Per-sample record of a simulated conversation (store keys `Conversation:<field>`)."""

    simulator: str = Field(default="")
    """Name of the simulator (preset) that played the user."""
    simulator_config: dict = Field(default_factory=dict)
    """The simulator's resolved settings (preset, model role, sampling, guardrails), for comparability."""
    intent: str = Field(default="")
    turns: list[TurnRecord] = Field(default_factory=list)
    """One record per simulated user turn, in order (including a final 'ended' record if the user left)."""
    user_turns: int = Field(default=0)
    assistant_turns: int = Field(default=0)
    revealed_shards: list[int] = Field(default_factory=list)
    stop_reason: StopReason | None = Field(default=None)
    end_reason: EndReason | None = Field(default=None)

    def add_turn(self, record: TurnRecord) -> None:
        """Append a turn record (store-backed lists must be reassigned, not mutated in place)."""
        self.turns = [*self.turns, record]
        user_turns, revealed = tally_turn(record, self.user_turns, self.revealed_shards)
        if user_turns != self.user_turns:
            self.user_turns = user_turns
        if revealed != self.revealed_shards:
            self.revealed_shards = revealed


def tally_turn(record: TurnRecord, user_turns: int, revealed: list[int]) -> tuple[int, list[int]]:
    """`(user_turns, revealed_shards)` after one more turn record: the rule `Conversation.add_turn` and the
    solver's recorder (conversation.py, which writes store keys directly) both follow.

    A record with text was sent and counts as a user turn (a final 'ended' record does not); its `shard_id`, if
    any, joins the revealed shards once. `revealed` is not modified: a new list is returned when it grows.
    """
    if record.text is not None:
        user_turns += 1
    if record.shard_id is not None and record.shard_id not in revealed:
        revealed = [*revealed, record.shard_id]
    return user_turns, revealed


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
