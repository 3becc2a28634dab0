"""Lost in Conversation's sharded user (Laban et al. 2025, arXiv 2505.06120; LiC `user_agent.py`,
`simulator_sharded.py` at ba6b9a2; docs/lic.md).

LiC's SHARDED loop, followed exactly:
1. Before each new user turn: if every shard is revealed, stop (-> `EndReason.ALL_SHARDS_REVEALED`). That is the
   only stop rule the user side has; a turn revealing nothing (`shard_id` -1) does not move toward it. (The solver
   adds `max_turns`, which LiC lacks.)
2. Turn 1 sends shard 1 (the lowest `shard_id`, always the high-level ask) verbatim, with no model call.
3. Later turns: the user LLM sees the conversation as `[role] text` lines plus the revealed and hidden shards,
   both WITHOUT shard 1, as LiC lists only `shards[1:]` (`prompts/sharded_user.yaml`, LiC's user_agent prompt in
   our words, with its rules and no others) and answers JSON
   `{"response": str, "shard_id": int}` revealing at most one hidden shard, rephrased (JSON mode, T=1.0).
   Unparseable JSON, a missing field, or a `shard_id` that is not a hidden shard -> `Rejection(BAD_JSON)` and a
   retry; after `max_retries` the next hidden shard is sent verbatim (`metadata.fallback`, `guardrails_exhausted`).
The solver records each turn's `shard_id` in `Conversation.revealed_shards`; scorers end on a correct answer via
the solver's `stop_when` (LiC step 6).
"""

from __future__ import annotations

import json
from typing import Any

from inspect_ai.model import ChatMessageUser, ResponseSchema
from inspect_ai.util import json_schema
from pydantic import BaseModel, Field

from ..errors import ConfigError
from ..turns import EndReason, Rejection, RejectReason, UserTurn
from ._common import ConfiguredSimulator, ModelSettings, load_prompts, parse_json_object, render
from .base import SimulationContext

NO_SHARD = -1
"""LiC's `shard_id` for a turn that reveals nothing."""


class ShardedReply(BaseModel):
    """The JSON the sharded user's LLM must return."""

    response: str
    shard_id: int


class ShardedConfig(ModelSettings):
    """Settings of `sharded_user` (also its preset schema)."""

    max_retries: int = Field(default=2, ge=0)
    """Retries after bad JSON before the verbatim fallback."""
    json_mode: bool = True
    """Ask the provider for JSON output (`response_schema`), as LiC does; providers without it ignore it."""


class ShardedUser(ConfiguredSimulator[ShardedConfig]):
    """Reveals one shard per turn, chosen and rephrased by an LLM."""

    name = "sharded"
    needs_intent = False

    async def next_turn(self, ctx: SimulationContext) -> UserTurn:
        if not ctx.shards:
            raise ConfigError(
                f"Sample {ctx.sample_id!r}: sharded_user needs sample metadata 'shards': a list of "
                '{"shard_id": int, "shard": str} (Lost in Conversation schema).'
            )
        hidden = ctx.unrevealed
        if not hidden:
            return UserTurn.end(EndReason.ALL_SHARDS_REVEALED)
        if not ctx.revealed:
            first = ctx.shards[0]
            return UserTurn(text=first.shard, shard_id=first.shard_id, metadata={"verbatim": True})

        extra: dict[str, Any] = {}
        if self.config.json_mode:
            extra["response_schema"] = ResponseSchema(
                name="sharded_user_turn", json_schema=json_schema(ShardedReply)
            )
        messages = [ChatMessageUser(content=self.prompt(ctx))]
        rejected: list[Rejection] = []
        facts: dict[str, Any] = {}
        for attempt in range(self.config.max_retries + 1):
            output, call = await self.config.generate(messages, ctx, attempt, **extra)
            facts.update(call)
            raw = output.completion
            try:
                reply = parse_reply(raw, valid_ids={s.shard_id for s in hidden})
            except ValueError as ex:
                rejected.append(Rejection(text=raw, reason=RejectReason.BAD_JSON, detail=str(ex)))
                continue
            shard_id = None if reply.shard_id == NO_SHARD else reply.shard_id
            return UserTurn(
                text=reply.response.strip(),
                shard_id=shard_id,
                rejected=rejected,
                retries=attempt,
                metadata={**facts, "reply": reply.model_dump()},
            )
        fallback = hidden[0]
        return UserTurn(
            text=fallback.shard,
            shard_id=fallback.shard_id,
            rejected=rejected,
            retries=self.config.max_retries,
            guardrails_exhausted=True,
            metadata={**facts, "fallback": True, "verbatim": True},
        )

    def prompt(self, ctx: SimulationContext) -> str:
        prompts = load_prompts("sharded_user")
        conversation = "\n\n".join(
            render(prompts["conversation_line"], role=m.role, text=m.text) for m in ctx.user_view()
        )
        rest = ctx.shards[1:]  # LiC lists neither shard 1 (the opening request) nor the turn-1 reveal
        revealed = [s.model_dump() for s in rest if s.shard_id in ctx.revealed]
        hidden = [s.model_dump() for s in rest if s.shard_id not in ctx.revealed]
        return render(
            prompts["prompt"],
            conversation=conversation,
            revealed=json.dumps(revealed, ensure_ascii=False),
            unrevealed=json.dumps(hidden, ensure_ascii=False),
        )


def parse_reply(raw: str, valid_ids: set[int]) -> ShardedReply:
    """Parse the user LLM's JSON; raise ValueError saying what is wrong (kept as the rejection's detail)."""
    reply = parse_json_object(raw, ShardedReply)
    if not reply.response.strip():
        raise ValueError("empty response")
    if reply.shard_id != NO_SHARD and reply.shard_id not in valid_ids:
        raise ValueError(f"shard_id {reply.shard_id} is not a hidden shard (hidden: {sorted(valid_ids)})")
    return reply


def sharded_user(
    role: str = "user",
    model: str | None = None,
    temperature: float | None = 1.0,
    top_p: float | None = None,
    max_tokens: int | None = 512,
    seed: int | None = None,
    max_retries: int = 2,
    json_mode: bool = True,
) -> ShardedUser:
    """Lost in Conversation's sharded user: shard 1 verbatim, then one rephrased shard per turn.

    Args:
        role: Model role of the user LLM (`--model-role user=...`; LiC used GPT-4o-mini).
        model: Model used when the role is unbound. None: the model under test plays its own user.
        temperature: Sampling temperature (LiC default 1.0).
        top_p: Nucleus sampling (None: provider default).
        max_tokens: Cap on the JSON reply's tokens.
        seed: Base seed; each sample/epoch/turn/attempt gets a seed derived from it (or from the eval's `--seed`).
        max_retries: Retries after bad JSON before revealing the next shard verbatim.
        json_mode: Request JSON output from the provider (`response_schema`).
    """
    return ShardedUser(
        ShardedConfig(
            role=role,
            model=model,
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_tokens,
            seed=seed,
            max_retries=max_retries,
            json_mode=json_mode,
        )
    )
