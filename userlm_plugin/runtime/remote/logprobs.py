"""log P(end token) at a draft's first content position, read from a `/v1/completions` server's logprobs.

Definition (shared with the local engine; docs/termination.md): the log-probability of `<|endconversation|>` at
temperature 1 under the model's raw next-token distribution (before logit_bias bans and top-p) at the first content
position of the turn, i.e. where the first non-whitespace token was drawn (UserLM opens every turn with `\\n`).

A server gives what the OpenAI completions API has: with `logprobs: k`, each generated position carries its `top_logprobs`
(the k most likely tokens, keyed by their text; vLLM with `return_tokens_as_token_ids` keys them `token_id:<id>`).
vLLM (`logprobs_mode` raw_logprobs, its default) and llama.cpp report the raw distribution, before `logit_bias`,
so the end ban does not hide the value. Best effort: when the end token is not among the top k the value is not
known (None), though its probability is then at most the k-th's (`floor`, kept in the log).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EndLogprob:
    """What one call's logprobs said about the first content position."""

    position: int
    """Index of the first content token among the call's generated tokens."""
    value: float | None
    """log P(end token) there; None when the token is not among the returned top logprobs."""
    floor: float | None
    """The smallest logprob returned there (an upper bound on the end token's when it is missing)."""

    def as_log(self) -> dict[str, Any]:
        return {"position": self.position, "end_logprob": self.value, "top_floor": self.floor}


def first_content_position(tokens: list[Any]) -> int | None:
    """The index of the first generated token that is not whitespace (None: all whitespace so far)."""
    return next((i for i, token in enumerate(tokens) if isinstance(token, str) and token.strip()), None)


def read_end_logprob(logprobs: Any, end_keys: tuple[str, ...]) -> EndLogprob | None:
    """The end token's logprob at the first content position of one call, from its `choices[0].logprobs`.

    None when this call has no content position (only whitespace, or nothing, was generated: look at the next
    call) or the server returned no usable logprobs."""
    if not isinstance(logprobs, dict):
        return None
    tokens = logprobs.get("tokens")
    tops = logprobs.get("top_logprobs")
    if not isinstance(tokens, list) or not isinstance(tops, list):
        return None
    position = first_content_position(tokens)
    if position is None or position >= len(tops) or not isinstance(tops[position], dict):
        return None
    top = {str(k): float(v) for k, v in tops[position].items() if isinstance(v, (int, float))}
    value = next((top[key] for key in end_keys if key in top), None)
    return EndLogprob(position=position, value=value, floor=min(top.values(), default=None))


def end_token_offset(
    text: str, tokens: list[str], end_keys: tuple[str, ...], tokenizer: Any
) -> tuple[int | None, int | None]:
    """Where the end *token* is in one call's `text`: (character offset, index among the generated tokens), or
    (None, None) when the server's token strings show no end token.

    `tokens` are the call's `logprobs.tokens`: one string per generated token, the token's text (vLLM with
    `return_tokens_as_token_ids`: `token_id:<id>`). The end token is one token whose string is the end string (or
    its id); the end string spelled in ordinary tokens spreads over several, none of which equals it. So a spelled
    copy before the token is skipped in `text`, and a server that dropped the token's text from `text` is cut where
    the tokens before it end."""
    position = next((i for i, token in enumerate(tokens) if token in end_keys), None)
    if position is None:
        return None, None
    before = "".join(_token_text(token, tokenizer) for token in tokens[:position])
    end_string = end_keys[0]
    at = -1
    for _ in range(before.count(end_string) + 1):  # the spelled copies before it, then the token itself
        at = text.find(end_string, at + 1)
        if at < 0:
            break
    return (at if at >= 0 else min(len(before), len(text))), position


def _token_text(token: str, tokenizer: Any) -> str:
    if token.startswith("token_id:") and token[9:].isdigit():
        return str(tokenizer.decode([int(token[9:])]))
    return token


__all__ = ["EndLogprob", "end_token_offset", "first_content_position", "read_end_logprob"]
