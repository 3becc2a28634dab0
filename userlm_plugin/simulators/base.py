"""The simulator protocol: what the `simulated_user` solver hands a simulator, and what it gets back.

A simulator is any object with a `name` and an async `next_turn(ctx) -> UserTurn`. It reads the conversation
from `ctx` (never from the TaskState) and returns the next user turn or the end of the conversation; the
solver alone writes the transcript and the turn records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from inspect_ai.model import ChatMessage, ChatMessageAssistant, ChatMessageTool, ChatMessageUser
from pydantic import BaseModel

from ..turns import UserTurn

ASK_USER_TOOL = "ask_user"
"""Inspect's tool for asking the user (`inspect_ai.tool.ask_user`, and ours, `userlm_plugin.agents`): its questions
and answers are part of what the user has seen."""


class Shard(BaseModel):
    """One information unit of a sharded instruction (Lost in Conversation schema: `shard_id`, `shard`)."""

    shard_id: int
    shard: str


@dataclass(frozen=True)
class SimulationContext:
    """Everything a simulator may look at when writing user turn number `turn`.

    Frozen, and made afresh for every turn (`dataclasses.replace`), so nothing a simulator sees carries over from
    one turn to the next except what the conversation itself holds."""

    intent: str
    """What the user wants (sample metadata `intent`): the User LM's system message."""
    messages: list[ChatMessage]
    """The transcript so far, exactly as the assistant under test saw it (system prompt, tools and all).
    Simulators that should only see what a human would see use `user_view()`."""
    turn: int
    """1-based number of the user turn to write."""
    shards: list[Shard] = field(default_factory=list)
    """The sample's shards, when it has them (metadata `shards`), ordered by shard_id."""
    revealed: list[int] = field(default_factory=list)
    """shard_ids revealed so far, in reveal order."""
    sample_id: str | int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    """The sample's metadata, read-only by convention."""
    epoch: int = 1
    """The sample's epoch (1-based): with `sample_id` and `turn` it seeds simulators reproducibly."""

    def user_view(self) -> list[ChatMessage]:
        """The conversation as a real user sees it: user and assistant text only.

        Drops system prompts, tool calls, tool results and reasoning blocks; coalesces consecutive
        same-role messages (an assistant tool loop shows as one reply) and drops empty ones (UserLM was
        trained on strictly alternating WildChat turns: arXiv 2510.06552 §2, docs/userlm.md). The one tool the
        user sees is `ask_user`: an answered question shows as the assistant's text, the answer as the user's
        (docs/agents.md#what-the-simulated-user-sees).
        """
        answered = {
            m.tool_call_id: m
            for m in self.messages
            if isinstance(m, ChatMessageTool) and m.function == ASK_USER_TOOL and m.error is None
        }
        view: list[ChatMessage] = []
        for message in self.messages:
            if isinstance(message, ChatMessageTool) and message.tool_call_id in answered:
                text = _form_answer_text(message.text)
                role = "user"
            elif message.role in ("user", "assistant"):
                text = message.text.strip()  # .text skips reasoning and tool-call content
                role = message.role
                if isinstance(message, ChatMessageAssistant):
                    asked = [
                        str(c.arguments.get("message", "")).strip()
                        for c in message.tool_calls or []
                        if c.function == ASK_USER_TOOL and c.id in answered
                    ]
                    text = "\n\n".join(t for t in [text, *asked] if t)
            else:
                continue
            if not text:
                continue
            if view and view[-1].role == role:
                merged = view[-1].text + "\n\n" + text
                view[-1] = (
                    ChatMessageUser(content=merged)
                    if role == "user"
                    else ChatMessageAssistant(content=merged)
                )
            else:
                view.append(
                    ChatMessageUser(content=text) if role == "user" else ChatMessageAssistant(content=text)
                )
        return view

    @property
    def unrevealed(self) -> list[Shard]:
        return [s for s in self.shards if s.shard_id not in self.revealed]


def _form_answer_text(result: str) -> str:
    """An `ask_user` answer (a JSON object) as the user gave it: the value of a one-field form, else one
    `name: value` line per field."""
    try:
        content = json.loads(result)
    except ValueError:
        return result.strip()
    if not isinstance(content, dict):
        return result.strip()

    def value(v: object) -> str:
        if isinstance(v, list):
            return ", ".join(map(str, v))
        if isinstance(v, bool):
            return "yes" if v else "no"
        return str(v)

    if len(content) == 1:
        return value(next(iter(content.values())))
    return "\n".join(f"{k}: {value(v)}" for k, v in content.items())


@runtime_checkable
class Simulator(Protocol):
    """Writes the simulated user's turns.

    Optional attributes the `simulated_user` solver also reads when present:
    - `needs_intent: bool` (default True): False lets samples without metadata `intent` run (scripted, sharded).
    - `describe() -> dict`: the simulator's resolved settings, logged as `Conversation.simulator_config`.
    """

    name: str

    async def next_turn(self, ctx: SimulationContext) -> UserTurn: ...
