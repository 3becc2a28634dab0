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


__all__ = ["EndLogprob", "first_content_position", "read_end_logprob"]
