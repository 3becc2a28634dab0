"""The vocabulary every room of the house shares: a simulated user turn, why it was rejected or why the
conversation ended, and the record of each turn that the solver keeps in the sample store.

Kept free of torch/transformers/litellm (and of Inspect's heavier modules) because `_registry.py`,
simulators, the runtime and scorers all import it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

END_CONVERSATION = "<|endconversation|>"
"""UserLM-8b's end-of-conversation token (id 128256). Added with `special=False`, so it survives
`skip_special_tokens=True` and is detected as text (docs/userlm.md#the-end-of-conversation-token). Prompted simulators are asked to emit
the same string, as in the paper's baselines (docs/userlm.md#the-papers-baselines)."""

USERLM_METADATA_KEY = "userlm"
"""Key under `ModelOutput.metadata` where the `userlm/` provider reports guardrail decisions and stop reason."""


class RejectReason(StrEnum):
    """Why a draft user turn was thrown away and resampled (paper Appendix D.1, plus role/JSON checks)."""

    TOO_SHORT = "too_short"  # fewer words than the minimum (paper: 3)
    TOO_LONG = "too_long"  # more words than the maximum (paper: 25)
    REPEATS_INTENT = "repeats_intent"  # verbatim copy of the intent
    REPEATS_USER_TURN = "repeats_user_turn"  # verbatim copy of an earlier user turn
    ECHOES_ASSISTANT = "echoes_assistant"  # verbatim copy of an assistant turn
    EARLY_END = "early_end"  # ended the conversation before it was allowed to
    ROLE_BREAK = "role_break"  # the simulator answered as an assistant
    BAD_JSON = "bad_json"  # a JSON-returning simulator returned something unparseable
    INVALID_ANSWER = "invalid_answer"  # an answer to the agent's `ask_user` that does not fit its schema


class EndReason(StrEnum):
    """Why the simulated user (not the harness) ended the conversation."""

    END_TOKEN = "end_token"  # emitted <|endconversation|> (or a prompted simulator's equivalent)
    EMPTY_TURN = "empty_turn"  # produced an empty turn (UserLM's other way of leaving)
    END_THRESHOLD = "end_threshold"  # P(<|endconversation|>) reached the `end_threshold` stopping rule
    SCRIPT_EXHAUSTED = "script_exhausted"  # a scripted/replayed user has no turns left
    ALL_SHARDS_REVEALED = "all_shards_revealed"  # Lost in Conversation's stop rule


class StopReason(StrEnum):
    """Why the `simulated_user` loop stopped: recorded in the store and the sample metadata."""

    USER_ENDED = "user_ended"  # the simulator ended the conversation (see EndReason)
    MAX_TURNS = "max_turns"  # the solver's own turn cap
    STOP_WHEN = "stop_when"  # the eval's stop_when(state) check fired (e.g. a correct answer)
    LIMIT = "limit"  # an Inspect limit (message/token/turn/time/cost) aborted the loop
    SIMULATOR_ERROR = "simulator_error"  # the simulator raised
    AGENT_FINISHED = (
        "agent_finished"  # an agent that talks back to the user itself (react + simulated_continue) returned
    )


class Rejection(BaseModel):
    """A draft turn a guardrail (or role/JSON check) rejected, with why."""

    text: str
    reason: RejectReason
    detail: str | None = None


class UserTurn(BaseModel):
    """What a simulator returns: the next user message, or the end of the conversation.

    A simulator never writes the transcript; the solver does, from this object.
    """

    text: str | None = None
    """The user message to send; None when the user ended the conversation."""
    end_reason: EndReason | None = None
    """Set when the user ended the conversation (then `text` is None)."""
    shard_id: int | None = None
    """The shard (information unit) this turn revealed, for sharded/scripted users."""
    rejected: list[Rejection] = Field(default_factory=list)
    """Drafts thrown away before this one, oldest first."""
    retries: int = 0
    """Resamples spent on this turn."""
    guardrails_exhausted: bool = False
    """True when every retry was rejected and the best draft was returned anyway."""
    role_break: bool = False
    """True when the returned text itself still reads as an assistant reply."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Simulator-specific facts worth logging (model, preset, style, raw JSON, ...)."""

    @property
    def ended(self) -> bool:
        return self.end_reason is not None

    @classmethod
    def end(cls, reason: EndReason, **kwargs: Any) -> UserTurn:
        return cls(text=None, end_reason=reason, **kwargs)


class HumanReference(BaseModel):
    """What the real person wrote at the same point of the same conversation: the reference the human-fidelity
    eval logs beside each simulated turn (docs/fidelity.md)."""

    text: str | None
    """The person's turn; None when they ended the conversation here."""


class TurnRecord(UserTurn):
    """One simulated user turn as the solver recorded it (stored in `Conversation.turns`)."""

    index: int
    """1-based number of this user turn in the conversation."""
    simulator: str
    """Name of the simulator that wrote it."""
