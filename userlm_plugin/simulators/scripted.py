"""A deterministic user with no model: replays fixed turns, or reveals a sample's shards in order.

For CI, for benchmarks of our own overhead, and as a control condition (LiC's SHARDED setting with the shards
sent verbatim, no rephrasing and no choice of order).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from ..turns import EndReason, UserTurn
from ._common import ConfiguredSimulator
from .base import SimulationContext


class ScriptedConfig(BaseModel):
    """Settings of `scripted_user` (also its preset schema)."""

    model_config = ConfigDict(extra="forbid")

    turns: list[str] | None = None
    """Fixed user turns for every sample. None: the sample's metadata `turns`, else its `shards`."""


class ScriptedUser(ConfiguredSimulator[ScriptedConfig]):
    """Sends turn n of the script at user turn n; ends with `SCRIPT_EXHAUSTED` when none is left."""

    name = "scripted"
    needs_intent = False

    async def next_turn(self, ctx: SimulationContext) -> UserTurn:
        turns = self.config.turns if self.config.turns is not None else _metadata_turns(ctx)
        if turns is not None:
            if ctx.turn > len(turns):
                return UserTurn.end(EndReason.SCRIPT_EXHAUSTED)
            return UserTurn(text=turns[ctx.turn - 1], metadata={"script_index": ctx.turn - 1})
        if not ctx.shards:
            raise ValueError(
                f"Sample {ctx.sample_id!r}: scripted_user has nothing to say. Give the sample metadata 'turns' "
                "(a list of strings) or 'shards' (a list of {shard_id, shard}), or pass scripted_user(turns=[...])."
            )
        unrevealed = ctx.unrevealed
        if not unrevealed:
            return UserTurn.end(EndReason.SCRIPT_EXHAUSTED)
        shard = unrevealed[0]  # ctx.shards is ordered by shard_id
        return UserTurn(text=shard.shard, shard_id=shard.shard_id, metadata={"verbatim": True})


def _metadata_turns(ctx: SimulationContext) -> list[str] | None:
    turns = ctx.metadata.get("turns")
    if turns is None:
        return None
    if not isinstance(turns, list) or not all(isinstance(t, str) and t.strip() for t in turns):
        raise ValueError(
            f"Sample {ctx.sample_id!r}: metadata 'turns' must be a list of non-empty strings "
            f"(one user message each), got {turns!r:.200}."
        )
    return turns


def scripted_user(turns: list[str] | None = None) -> ScriptedUser:
    """A user that says fixed things, with no model call.

    Args:
        turns: The user turns, the same for every sample. None: each sample's metadata `turns` (a list of
            strings), or else its metadata `shards`, revealed verbatim in `shard_id` order, one per turn.
    """
    return ScriptedUser(ScriptedConfig(**locals()))
