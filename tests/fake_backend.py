"""A scripted `GenerationBackend` for the provider and the guardrail loop: no model, every draft decided by the test.

It implements the same protocol as the local engine and the remote backend (`runtime.types.GenerationBackend`),
with a real tokenizer (the prompt is rendered and encoded for real), records every `DraftRequest` it was given,
and can hold drafts until the test releases them (to test cancellation).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from userlm_plugin.runtime.types import Draft, DraftRequest


def scripted_draft(
    text: str,
    *,
    end_logprob: float | None = None,
    finish: Literal["stop", "max_tokens"] = "stop",
    ended: bool = False,
) -> Draft:
    """A `Draft` whose decoded text is `text` (UserLM's leading newline included by the caller if wanted).
    `ended`: the end token's id followed `text` (a text that merely spells `<|endconversation|>` is not an end)."""
    words = max(len(text.split()), 1)
    return Draft(
        text=text,
        raw=text,
        new_tokens=words,
        output_tokens=words + 1,
        prompt_tokens=10,
        finish=finish,
        first_token=(text.split() or [None])[0],
        first_token_bans=0,
        batch_size=1,
        queued_s=0.0,
        generate_s=0.0,
        end_logprob=end_logprob,
        ended=ended,
    )


@dataclass
class FakeBackend:
    """Returns `script(request, index)` (or `script[index]`, the last one repeated) for each draft."""

    tokenizer: Any
    script: Sequence[Draft] | Callable[[DraftRequest, int], Draft]
    kind: str = "fake"
    stop_ids: list[int] = field(default_factory=lambda: [0])
    end_token_id: int | None = None
    hold: asyncio.Event | None = None
    """When set, every draft waits for this event first (a slow model)."""
    requests: list[DraftRequest] = field(default_factory=list)
    started: int = 0
    """Drafts begun (a held draft counts once it began waiting)."""
    cancelled: int = 0

    def context_limit(self) -> int | None:
        return None

    def max_connections(self) -> int:
        return 16

    async def draft(self, request: DraftRequest) -> Draft:
        index = len(self.requests)
        self.requests.append(request)
        self.started += 1
        if self.hold is not None:
            try:
                await self.hold.wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        if callable(self.script):
            return self.script(request, index)
        return self.script[min(index, len(self.script) - 1)]

    def should_retry(self, ex: Exception) -> bool:
        return False

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind}


def userlm_with_backend(
    model_dir: Any, backend_factory: Callable[[Any], FakeBackend], **model_args: Any
) -> Any:
    """An Inspect `Model` for `userlm/<model_dir>` whose drafts come from a fake backend (weights never load)."""
    from inspect_ai.model import get_model
    from transformers import AutoTokenizer

    model = get_model(f"userlm/{model_dir}", memoize=False, **model_args)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    model.api._backend = backend_factory(tokenizer)
    return model
