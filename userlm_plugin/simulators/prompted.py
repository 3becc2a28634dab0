"""An assistant LLM prompted to act as the user: the paper's baselines ("Flipping the Dialogue";
docs/userlm.md#the-papers-baselines).

Two styles:
- `flattened` (the paper's): one instruction prompt ("You are a human user interacting with an AI system to ...")
  with the conversation pasted in as text; the model answers in its normal assistant slot. Prompts in
  `prompts/prompted_flattened.yaml`.
- `role_flip`: an ordinary chat in which the assistant-under-test's messages appear as *user* messages and the
  simulator's own earlier turns as *assistant* messages, under a persona/intent system prompt
  (`prompts/prompted_role_flip.yaml`).

Both see only the user's view of the conversation (no system prompt, tools or reasoning). Both are asked to answer
`<|endconversation|>` when the goal is met (-> `EndReason.END_TOKEN`; refused on turn 1 as `EARLY_END`). A draft that
reads as an assistant reply (`role_break.py`) is rejected (`ROLE_BREAK`) and resampled up to `max_retries` times;
if every draft breaks role, the last one is sent with `guardrails_exhausted` and `role_break` set.
"""

from __future__ import annotations

from typing import Any, Literal

from inspect_ai.model import ChatMessage, ChatMessageAssistant, ChatMessageSystem, ChatMessageUser
from pydantic import Field

from ..turns import END_CONVERSATION, EndReason, Rejection, RejectReason, UserTurn
from ._common import (
    ConfiguredSimulator,
    ModelSettings,
    clean_draft,
    intent_goal,
    load_prompts,
    render,
)
from .base import SimulationContext
from .role_break import detect_role_break

PromptStyle = Literal["role_flip", "flattened"]


class PromptedConfig(ModelSettings):
    """Settings of `prompted_user` (also its preset schema)."""

    style: PromptStyle = "role_flip"
    max_retries: int = Field(default=3, ge=0)
    """Resamples allowed when a draft breaks role or ends on turn 1."""
    detect_role_breaks: bool = True


class PromptedUser(ConfiguredSimulator[PromptedConfig]):
    """A prompted assistant model writing the user's turns."""

    needs_intent = True

    def __init__(self, config: PromptedConfig) -> None:
        super().__init__(config)
        self.name = "prompted" if config.style == "role_flip" else "prompted_flat"

    def messages(self, ctx: SimulationContext) -> list[ChatMessage]:
        """The simulator model's input for the next user turn."""
        if self.config.style == "flattened":
            return [ChatMessageUser(content=_flattened_prompt(ctx))]
        return _role_flip_messages(ctx)

    async def next_turn(self, ctx: SimulationContext) -> UserTurn:
        messages = self.messages(ctx)
        rejected: list[Rejection] = []
        facts: dict[str, Any] = {"style": self.config.style}
        draft = ""
        for attempt in range(self.config.max_retries + 1):
            output, call = await self.config.generate(messages, ctx, attempt)
            facts.update(call)
            draft = clean_draft(output.completion)
            if END_CONVERSATION in draft:
                if ctx.turn > 1:
                    return UserTurn.end(
                        EndReason.END_TOKEN, rejected=rejected, retries=attempt, metadata=facts
                    )
                rejected.append(Rejection(text=draft, reason=RejectReason.EARLY_END, detail="turn 1"))
                continue
            if not draft:
                return UserTurn.end(EndReason.EMPTY_TURN, rejected=rejected, retries=attempt, metadata=facts)
            broken = detect_role_break(draft) if self.config.detect_role_breaks else None
            if broken is None:
                return UserTurn(text=draft, rejected=rejected, retries=attempt, metadata=facts)
            rejected.append(Rejection(text=draft, reason=RejectReason.ROLE_BREAK, detail=broken))
        # every draft was rejected: the simulator insists, so let it (flagged for the log and the scorers)
        exhausted: dict[str, Any] = {
            "rejected": rejected[:-1],
            "retries": self.config.max_retries,
            "guardrails_exhausted": True,
            "metadata": facts,
        }
        if rejected[-1].reason == RejectReason.EARLY_END:
            return UserTurn.end(EndReason.END_TOKEN, **exhausted)
        return UserTurn(text=draft, role_break=True, **exhausted)


def _preamble_values(ctx: SimulationContext) -> tuple[str, dict[str, str]]:
    goal = intent_goal(ctx.intent)
    if goal is not None:
        return "with_goal", {"goal": goal}
    return "with_intent", {"intent": ctx.intent.strip()}


def _flattened_prompt(ctx: SimulationContext) -> str:
    prompts = load_prompts("prompted_flattened")
    variant, values = _preamble_values(ctx)
    preamble = render(prompts[f"preamble_{variant}"], **values)
    view = ctx.user_view()
    if not view:
        return render(prompts["first_turn"], preamble=preamble)
    speakers = prompts["speakers"]
    history = "\n\n".join(
        render(prompts["history_line"], speaker=speakers[m.role], text=m.text) for m in view
    )
    return render(prompts["next_turn"], preamble=preamble, history=history)


def _role_flip_messages(ctx: SimulationContext) -> list[ChatMessage]:
    prompts = load_prompts("prompted_role_flip")
    variant, values = _preamble_values(ctx)
    system = render(prompts[f"system_{variant}"], end_token=END_CONVERSATION, **values)
    flipped: list[ChatMessage] = [ChatMessageSystem(content=system)]
    view = ctx.user_view()
    if not view or view[0].role == "user":
        # chat models need a user message first: the (empty) chat window stands in for the assistant
        flipped.append(ChatMessageUser(content=prompts["kickoff"].strip()))
    for message in view:
        if message.role == "assistant":
            flipped.append(ChatMessageUser(content=message.text))
        else:
            flipped.append(ChatMessageAssistant(content=message.text))
    return flipped


def prompted_user(
    style: PromptStyle = "role_flip",
    role: str = "user",
    model: str | None = None,
    temperature: float | None = 1.0,
    top_p: float | None = None,
    max_tokens: int | None = 512,
    seed: int | None = None,
    max_retries: int = 3,
    detect_role_breaks: bool = True,
) -> PromptedUser:
    """A prompted assistant plays the user (the paper's baselines: docs/userlm.md#the-papers-baselines).

    Args:
        style: "role_flip" (chat with roles swapped, persona system prompt) or "flattened" (the paper's single
            prompt with the transcript pasted in).
        role: Model role of the simulator (`--model-role user=...`).
        model: Model used when the role is unbound. None: the model under test plays its own user.
        temperature: Sampling temperature (1.0, as LiC's user simulator; the paper does not state its baselines').
        top_p: Nucleus sampling (None: the provider's default).
        max_tokens: Cap on one user turn's tokens.
        seed: Base seed; each sample/epoch/turn/attempt gets a seed derived from it (or from the eval's `--seed`).
        max_retries: Resamples when a draft breaks role (or ends the conversation on turn 1).
        detect_role_breaks: Check drafts against `prompts/role_break.yaml`.
    """
    return PromptedUser(PromptedConfig(**locals()))
