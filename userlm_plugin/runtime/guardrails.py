"""The four generation guardrails of "Flipping the Dialogue" (arXiv 2510.06552, Appendix D.1; docs/userlm.md
"Guardrails").

1. First-token filter: the first content token may not be "I", "You" or "Here" (either case), assistant-like
   openers. Applied as a logit ban (runtime/local/sampling.py `sample_step`; remote: `logit_bias`), never by
   resampling.
2. End-of-conversation control: `<|endconversation|>` is banned (the card's `bad_words_ids`), here until
   `min_turns_before_end` user turns exist, so termination can be measured.
3. Length: resample turns under 3 or over 25 words.
4. Verbatim repetition: resample a turn that repeats the intent or an earlier user turn, or echoes an assistant
   turn (inspect_multiturn's addition), compared after normalising whitespace and case.

Only torch-free code lives here: configs, draft checks and the token-id sets the sampler needs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import ConfigError
from ..turns import Rejection, RejectReason

PAPER_BANNED_FIRST_WORDS = ("I", "You", "Here", "i", "you", "here")
"""Appendix D.1 names I/You/Here; pszemraj's UserLM space also blocks the lowercase forms (docs/userlm.md)."""


class GuardrailConfig(BaseModel):
    """Guardrail settings. Defaults are the paper's (Appendix D.1) unless marked as our choice.

    Set defaults with model args (`-M max_words=30`), override per call with
    `GenerateConfig(extra_body={"userlm": {...}})` using the same field names.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    first_token_filter: bool = True
    """Ban `banned_first_words` as the first content token (the token after the template's leading newline)."""
    banned_first_words: tuple[str, ...] = PAPER_BANNED_FIRST_WORDS
    min_turns_before_end: int | None = None
    """`<|endconversation|>` (and an empty turn) is allowed once the input holds this many user turns.
    None: never allowed, as in the paper's extrinsic runs and the model card. 0: always allowed."""
    end_threshold: float | None = Field(default=None, gt=0, le=1)
    """Our option (off by default): end the conversation when P(`<|endconversation|>`) at a draft's first content
    position reaches this probability, an alternative to the ban that reads the model's own wish to stop
    (docs/termination.md). Needs a backend that reports it (the local engine; a server that returns logprobs)."""
    length_filter: bool = True
    min_words: int = Field(default=3, ge=0)
    """Paper: resample turns with fewer than 3 words."""
    max_words: int = Field(default=25, ge=1)
    """Paper: resample turns with more than 25 words."""
    repetition_filter: bool = True
    repetition_min_span_words: int | None = Field(default=8, ge=1)
    """Our choice: a draft of at least this many words found verbatim *inside* the intent / an earlier turn also
    counts as a repetition (UserLM parrots chunks of its context). None: whole-turn equality only."""
    length_budget: bool = True
    """Our speed-up, same results: stop drafting at `max_words * 4 + 8` tokens (no turn of that many tokens is
    short enough unless it is mostly code or URLs). A draft cut there that already has more than `max_words` words
    is rejected as too long without generating the rest; one that does not is drafted again in full with the same
    seed (same tokens). Only rejected rambles are affected: their logged text is the part generated."""
    max_retries: int = Field(default=5, ge=0, le=100)
    """Our choice, as inspect_multiturn (colbench uses 3): resamples before returning the best draft flagged
    `guardrails_exhausted`. The paper does not say how its retries ended (docs/userlm.md "What the paper does not
    say"). Capped at 100: a runaway value (`1e9` from an untrusted `serve` client) is an error, not a loop."""

    @field_validator("banned_first_words", mode="before")
    @classmethod
    def _words_tuple(cls, value: Any) -> Any:
        if isinstance(value, str):
            return (value,)
        return tuple(value) if isinstance(value, list) else value

    @model_validator(mode="after")
    def _check_range(self) -> GuardrailConfig:
        if self.min_words > self.max_words:
            raise ConfigError(f"min_words ({self.min_words}) must not exceed max_words ({self.max_words})")
        if self.min_turns_before_end is not None and self.min_turns_before_end < 0:
            raise ConfigError("min_turns_before_end must be None (never end) or an int >= 0")
        return self

    def end_allowed(self, user_turns_so_far: int) -> bool:
        """Whether the user may end the conversation now, given the user messages already in the input."""
        return self.min_turns_before_end is not None and user_turns_so_far >= self.min_turns_before_end

    def threshold_end_allowed(self, user_turns_so_far: int) -> bool:
        """Whether the `end_threshold` rule may end the conversation now: never before the user's first turn (an
        intent alone is no conversation), nor before `min_turns_before_end` user turns when that is set."""
        return user_turns_so_far >= max(1, self.min_turns_before_end or 0)

    def draft_token_budget(self, max_tokens: int) -> int:
        """Tokens to draft before the length check can already decide (see `length_budget`)."""
        if not (self.length_filter and self.length_budget):
            return max_tokens
        return min(max_tokens, self.max_words * 4 + 8)

    def merged(self, overrides: dict[str, Any] | None) -> GuardrailConfig:
        """This config with per-call overrides applied (validated; unknown fields are an error)."""
        if not overrides:
            return self
        if not isinstance(overrides, dict):
            raise ConfigError(
                f'extra_body["userlm"] must be a dict of GuardrailConfig fields, got {overrides!r:.200}'
            )
        unknown = set(overrides) - set(type(self).model_fields)
        if unknown:
            raise ConfigError(
                f'Unknown guardrail setting(s) {sorted(unknown)} in extra_body["userlm"]; '
                f"valid: {sorted(type(self).model_fields)}"
            )
        try:
            return type(self).model_validate({**self.model_dump(), **overrides})
        except ValidationError as error:
            raise ConfigError(f'invalid guardrail setting(s) in extra_body["userlm"]: {error}') from error


def check_overrides(overrides: Any, where: str) -> dict[str, Any]:
    """Per-call guardrail overrides (a preset's or `userlm_user`'s `guardrails`), checked field by field against
    `GuardrailConfig` (names, types, ranges) before any model runs, and returned with their values validated.
    Rules between fields (`min_words <= max_words`) are checked when the provider merges them into its own
    settings, which may differ from the defaults (`-M min_words=...`)."""
    from pydantic import TypeAdapter

    if not isinstance(overrides, dict):
        raise ConfigError(f"{where}: must be a mapping of guardrail settings, got {type(overrides).__name__}")
    fields = GuardrailConfig.model_fields
    unknown = sorted(str(name) for name in overrides if name not in fields)
    if unknown:
        raise ConfigError(f"{where}: unknown guardrail setting(s) {unknown}; valid: {sorted(fields)}")
    checked: dict[str, Any] = {}
    for name, value in overrides.items():
        field = fields[name]
        if name == "banned_first_words" and isinstance(value, str):
            value = (value,)  # as GuardrailConfig reads it
        try:
            checked[name] = TypeAdapter(Annotated[field.annotation, field]).validate_python(value)
        except ValidationError as error:
            problem = "; ".join(dict.fromkeys(e["msg"] for e in error.errors(include_url=False)))
            raise ConfigError(f"{where}: {name}: {problem}") from None
    return checked


_WS = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Whitespace- and case-insensitive form used by the repetition filter."""
    return _WS.sub(" ", text).strip().casefold()


def word_count(text: str) -> int:
    return len(text.split())


@dataclass(frozen=True)
class DraftContext:
    """What a draft is compared against."""

    intent: str
    user_turns: Sequence[str]
    assistant_turns: Sequence[str]


def _repeats(draft: str, source: str, min_span_words: int | None) -> bool:
    if not draft or not source:
        return False
    if draft == source:
        return True
    if min_span_words is not None and len(draft.split(" ")) >= min_span_words:
        return f" {draft} " in f" {source} "
    return False


def check_draft(text: str, ctx: DraftContext, config: GuardrailConfig) -> Rejection | None:
    """Length and repetition checks on a non-empty draft (guardrails 3 and 4). None means accepted."""
    if config.length_filter:
        n = word_count(text)
        if n < config.min_words:
            return Rejection(
                text=text, reason=RejectReason.TOO_SHORT, detail=f"{n} words < {config.min_words}"
            )
        if n > config.max_words:
            return Rejection(
                text=text, reason=RejectReason.TOO_LONG, detail=f"{n} words > {config.max_words}"
            )
    if config.repetition_filter:
        draft = normalise(text)
        span = config.repetition_min_span_words
        if _repeats(draft, normalise(ctx.intent), span):
            return Rejection(
                text=text, reason=RejectReason.REPEATS_INTENT, detail="verbatim copy of the intent"
            )
        for i, turn in enumerate(ctx.user_turns, 1):
            if _repeats(draft, normalise(turn), span):
                return Rejection(
                    text=text, reason=RejectReason.REPEATS_USER_TURN, detail=f"verbatim copy of user turn {i}"
                )
        for i, turn in enumerate(ctx.assistant_turns, 1):
            if _repeats(draft, normalise(turn), span):
                return Rejection(
                    text=text,
                    reason=RejectReason.ECHOES_ASSISTANT,
                    detail=f"verbatim copy of assistant turn {i}",
                )
    return None


_SEVERITY = [
    RejectReason.TOO_LONG,
    RejectReason.TOO_SHORT,
    RejectReason.ECHOES_ASSISTANT,
    RejectReason.REPEATS_USER_TURN,
    RejectReason.REPEATS_INTENT,
    RejectReason.EARLY_END,
]


def best_rejected(rejected: Sequence[Rejection], config: GuardrailConfig) -> int:
    """Index of the least bad draft, returned when retries run out: a length miss beats a repetition, which beats
    an early end; among length misses the one closest to the range wins, then the earliest."""

    def key(i: int) -> tuple[int, int, int]:
        r = rejected[i]
        rank = _SEVERITY.index(r.reason) if r.reason in _SEVERITY else len(_SEVERITY)
        n = word_count(r.text)
        distance = max(config.min_words - n, n - config.max_words, 0)
        return rank, distance, i

    return min(range(len(rejected)), key=key)


# ----- token-level sets for the sampler (need a tokenizer, but no torch) -----


def banned_next(first_bans: Sequence[Sequence[int]], content: Sequence[int]) -> list[int]:
    """Tokens banned as the next content token, given the content tokens drawn so far: the last token of each
    banned sequence whose earlier tokens are exactly `content` (the first-token filter, for multi-token words)."""
    j = len(content)
    prefix = list(content)
    return [int(s[j]) for s in first_bans if len(s) == j + 1 and list(s[:j]) == prefix]


def ban_pending(first_bans: Sequence[Sequence[int]], content: Sequence[int]) -> bool:
    """Whether some banned sequence can still be completed after `content` (so the filter still applies)."""
    j = len(content)
    prefix = list(content)
    return any(len(s) > j and list(s[:j]) == prefix for s in first_bans)


def first_token_ban_sequences(tokenizer: Any, words: Sequence[str]) -> list[list[int]]:
    """Token sequences of the banned first words as they are tokenised at the start of a turn: after the
    newline with no leading space (the normal case) and, since the turn is stripped, with one (" I"). Llama-3
    encodes each of these as one token; a word that splits into several tokens is banned as a sequence (its last
    token is masked when the earlier ones were drawn)."""
    seqs: dict[tuple[int, ...], None] = {}  # ordered and deduplicated in linear time
    for word in words:
        for variant in (word, " " + word):
            ids = tuple(tokenizer.encode(variant, add_special_tokens=False))
            if ids:
                seqs.setdefault(ids)
    return [list(ids) for ids in seqs]


def whitespace_token_ids(tokenizer: Any) -> frozenset[int]:
    """Ids of tokens that decode to whitespace only (the template's leading newline and its variants): the
    first-token filter applies to the first token that is *not* one of these."""
    ids = set()
    for token, idx in tokenizer.get_vocab().items():
        if idx in tokenizer.all_special_ids:
            continue
        text = tokenizer.convert_tokens_to_string([token])
        if text and not text.strip():
            ids.add(idx)
    return frozenset(ids)
