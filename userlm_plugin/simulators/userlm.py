"""The User LM as the simulated user (UserLM-8b, "Flipping the Dialogue" §2).

UserLM was trained to write the *next user turn* given the intent as the system message and the conversation with
its real roles, so nothing is flipped (arXiv 2510.06552 §2; docs/userlm.md): the model sees `[system=intent] + ctx.user_view()` — only what
a real user sees (no system prompt, tool calls, tool results or reasoning). Guardrails (first-token ban, end-token
ban, length and repetition resampling; paper Appendix D.1) run inside the `userlm/` provider, which reports its
decisions in `output.metadata["userlm"]`; this simulator turns them into the `UserTurn` the solver logs.

The model comes from the `user` role (`--model-role user=userlm/...`), default `userlm/microsoft/UserLM-8b`. Any
other model works too (a UserLM behind `litellm/` or `openai-api/`, or `mockllm` in tests): then the end of the
conversation is read from the text (`<|endconversation|>` or an empty turn).
"""

from __future__ import annotations

from typing import Any

from inspect_ai.model import ChatMessage, ChatMessageSystem, ModelOutput
from pydantic import Field, field_validator

from ..runtime.guardrails import check_overrides
from ..turns import END_CONVERSATION, USERLM_METADATA_KEY, EndReason, Rejection, UserTurn
from ._common import ConfiguredSimulator, ModelSettings
from .base import SimulationContext

DEFAULT_USERLM = "userlm/microsoft/UserLM-8b"


class UserLMConfig(ModelSettings):
    """Settings of `userlm_user` (also its preset schema)."""

    model: str | None = DEFAULT_USERLM
    temperature: float | None = Field(
        default=1.0, ge=0
    )  # model card / paper §4 (not generation_config's 0.6)
    top_p: float | None = Field(
        default=0.8, gt=0, le=1
    )  # model card / paper §4 (not generation_config's 0.9)
    max_tokens: int | None = Field(default=256, gt=0)
    guardrails: dict[str, Any] | None = None
    """Per-call guardrail overrides for the `userlm/` provider (sent as `extra_body={"userlm": {...}}`), checked
    here field by field against `GuardrailConfig` (names, types, ranges). None: the provider's defaults (the
    paper's four guardrails)."""

    @field_validator("guardrails", mode="before")
    @classmethod
    def _typed_guardrails(cls, value: Any) -> Any:
        return None if value is None else check_overrides(value, "guardrails")


class UserLMUser(ConfiguredSimulator[UserLMConfig]):
    """Asks the User LM for the next user turn and reports its guardrail decisions."""

    name = "userlm"
    needs_intent = True

    def messages(self, ctx: SimulationContext) -> list[ChatMessage]:
        """What UserLM is conditioned on: the intent as system message, then the user's view, roles unflipped."""
        return [ChatMessageSystem(content=ctx.intent), *ctx.user_view()]

    async def next_turn(self, ctx: SimulationContext) -> UserTurn:
        extra = (
            {"extra_body": {USERLM_METADATA_KEY: self.config.guardrails}} if self.config.guardrails else {}
        )
        output, facts = await self.config.generate(self.messages(ctx), ctx, **extra)
        return turn_from_output(output, facts=facts)


_CONTRACT_KEYS = {"end_reason", "rejected", "retries", "guardrails_exhausted", "guardrails"}


def turn_from_output(output: ModelOutput, facts: dict[str, Any] | None = None) -> UserTurn:
    """Convert a User LM output into a `UserTurn`.

    The `userlm/` provider's contract: `metadata["userlm"]` holds `end_reason`, `rejected`, `retries` and
    `guardrails_exhausted`, and `completion == ""` when the user ended. Outputs from other providers carry no such
    metadata; then `<|endconversation|>` (kept as text: it is not a special token; docs/userlm.md) or an empty turn
    ends the conversation, and any text before the token is kept in the record's metadata.
    """
    meta = (output.metadata or {}).get(USERLM_METADATA_KEY) or {}
    try:
        common: dict[str, Any] = {
            "rejected": [Rejection.model_validate(r) for r in meta.get("rejected") or []],
            "retries": int(meta.get("retries") or 0),
            "guardrails_exhausted": bool(meta.get("guardrails_exhausted", False)),
        }
        end_reason = EndReason(meta["end_reason"]) if meta.get("end_reason") else None
    except (ValueError, TypeError) as ex:
        raise ValueError(
            f"The user model returned malformed output.metadata[{USERLM_METADATA_KEY!r}] "
            f"({ex}); expected end_reason/rejected/retries/guardrails_exhausted as in userlm_plugin.turns."
        ) from ex
    metadata = dict(facts or {})
    # the provider's other per-call facts (finish, first token, seed, end_allowed, ...) go into the turn record;
    # the full guardrail config stays in the ModelEvent
    metadata.update({k: v for k, v in meta.items() if k not in _CONTRACT_KEYS and v is not None})
    text = output.completion.strip()
    if end_reason is not None:
        return UserTurn.end(end_reason, metadata=metadata, **common)
    if END_CONVERSATION in text:
        before = text.split(END_CONVERSATION, 1)[0].strip()
        if before:
            metadata["text_before_end"] = before
        return UserTurn.end(EndReason.END_TOKEN, metadata=metadata, **common)
    if not text:
        return UserTurn.end(EndReason.EMPTY_TURN, metadata=metadata, **common)
    return UserTurn(text=text, metadata=metadata, **common)


def userlm_user(
    role: str = "user",
    model: str | None = DEFAULT_USERLM,
    temperature: float | None = 1.0,
    top_p: float | None = 0.8,
    max_tokens: int | None = 256,
    seed: int | None = None,
    guardrails: dict[str, Any] | None = None,
) -> UserLMUser:
    """The User LM plays the user (paper defaults: T=1.0, top_p=0.8, guardrails on).

    Args:
        role: Model role of the User LM (`--model-role user=...`).
        model: Model used when the role is unbound.
        temperature: Sampling temperature (paper: 1.0).
        top_p: Nucleus sampling (paper: 0.8).
        max_tokens: Cap on one user turn's tokens.
        seed: Base seed; each sample/epoch/turn gets a seed derived from it (or from the eval's `--seed`).
        guardrails: Guardrail overrides passed to the `userlm/` provider via `extra_body={"userlm": ...}`.
    """
    if (
        guardrails is not None
    ):  # a ConfigError naming the setting (pydantic's own error would print the input)
        guardrails = check_overrides(guardrails, "guardrails")
    return UserLMUser(UserLMConfig(**locals()))
