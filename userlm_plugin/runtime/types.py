"""The runtime's vocabulary: one draft request, one drawn draft, and the backend that draws it (torch-free).

The one step that differs between running UserLM in-process and on a server is drawing one draft. Everything
else (input validation, the prompt rendered by the model's own template, the draft -> check -> resample loop of
the paper's guardrails in `drafting.py`, the output metadata and the `ModelCall` in `provider.py`) is shared. A
`GenerationBackend` gets each draft with the token-level guardrails (first-content-token bans, the
`<|endconversation|>` ban) as part of the request, so the backends are interchangeable and the solver cannot tell
them apart:

* `local.backend.LocalBackend`: the batching engine on a model loaded in this process (runtime/local/).
* `remote.RemoteBackend`: an OpenAI-compatible `/v1/completions` server (vLLM, SGLang, TGI, llama.cpp).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from inspect_ai.model import RetryDecision


@dataclass(frozen=True)
class RowSpec:
    """One draft's sampling settings and token bans (one batch row of the local engine; sampling.py)."""

    temperature: float
    top_p: float
    seed: int
    max_new_tokens: int
    ban_end: bool
    """Ban `<|endconversation|>` (guardrail 2) for this draft."""
    first_bans: Sequence[Sequence[int]] = ()
    """Token sequences banned as the first content token(s) (guardrail 1; guardrails.first_token_ban_sequences)."""


@dataclass(frozen=True, kw_only=True)
class DraftRequest(RowSpec):
    """One draft to generate: the prompt, plus this draft's sampling settings and token bans (`RowSpec`)."""

    prompt: str
    """The rendered prompt text (ends by opening a user turn)."""
    prompt_ids: list[int]
    """`prompt` encoded without special tokens added (the template already has whatever it needs); every
    message's content encoded as text (template.render_prompt_ids)."""
    server_prompt: str | None = None
    """`prompt` for a server that re-tokenizes text with control tokens parsed: control-token strings inside
    message contents broken up (prompt_encoding.server_text). None: same as `prompt`."""
    report_end_logprob: bool = False
    """Ask the backend for `Draft.end_logprob` even where it costs extra (a remote server's logprobs): the
    `end_threshold` rule needs it. Backends that get it for free may always report it."""


@dataclass
class Draft:
    """What a backend drew for a `DraftRequest`, in the fields the guardrail loop and the log need."""

    text: str
    """Decoded new text, special tokens skipped and cut at the first special token (a stray header); when
    `ended`, what came before the end token."""
    raw: str
    """Everything generated, special tokens kept (for the log)."""
    new_tokens: int
    """Generated tokens, stop token excluded."""
    output_tokens: int
    """Output tokens billed for this draft (remote: summed over its calls; includes a stop token)."""
    prompt_tokens: int
    """Input tokens billed for this draft (remote: summed over its calls)."""
    finish: Literal["stop", "max_tokens"]
    first_token: str | None
    """The first content token (the one the first-token filter governs), decoded."""
    first_token_bans: int
    """Positions at which the first-token ban was applied."""
    batch_size: int | None
    """Rows in the batch this draft rode in (None: not known, e.g. a remote server)."""
    queued_s: float
    generate_s: float
    details: dict[str, Any] = field(default_factory=dict)
    """Backend-specific facts for the ModelCall (remote: each HTTP call and its body)."""
    end_logprob: float | None = None
    """log P(`<|endconversation|>`) at the first content position of this draft, before any ban (None: the backend
    cannot tell, e.g. a server that returns no logprobs). See docs/termination.md."""
    ended: bool = False
    """The end token's *id* was generated (the draft stops there). Decided on token ids, never on decoded text:
    the characters `<|endconversation|>` in ordinary tokens leave this False (docs/termination.md "The end is a
    token"; a server that reports no token strings: docs/serving.md "Which end a server drew")."""


@runtime_checkable
class GenerationBackend(Protocol):
    """Draws drafts for `UserLMAPI`. Implementations: `LocalBackend`, `remote.RemoteBackend`."""

    kind: str
    """"local" or "remote" (recorded in the ModelCall, never in the output the solver reads)."""
    tokenizer: Any
    stop_ids: list[int]
    end_token_id: int | None

    def context_limit(self) -> int | None:
        """Prompt + max_tokens must fit in this many tokens (None: unknown)."""
        ...

    def max_connections(self) -> int: ...

    async def draft(self, request: DraftRequest) -> Draft: ...

    def should_retry(self, ex: Exception) -> bool | RetryDecision:
        """Whether Inspect should retry a generate call that raised `ex`."""
        ...

    def describe(self) -> dict[str, Any]:
        """Backend facts for the ModelCall request (no secrets)."""
        ...


def decode_new_tokens(
    tokenizer: Any, token_ids: Sequence[int], special_ids: frozenset[int]
) -> tuple[str, str]:
    """(text, raw): text is cut at the first special token and decoded without specials; raw keeps everything."""
    cut = next((k for k, t in enumerate(token_ids) if t in special_ids), len(token_ids))
    text = tokenizer.decode(list(token_ids[:cut]), skip_special_tokens=True)
    raw = tokenizer.decode(list(token_ids), skip_special_tokens=False)
    return text, raw


__all__ = ["Draft", "DraftRequest", "GenerationBackend", "RowSpec", "decode_new_tokens"]
