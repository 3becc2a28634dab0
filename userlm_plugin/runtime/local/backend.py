"""`LocalBackend`: drafts drawn by the in-process batching engine on a loaded model (the only torch in the runtime,
with the rest of `runtime/local/`)."""

from __future__ import annotations

from typing import Any

from ..types import Draft, DraftRequest, decode_new_tokens
from .engine import BatchingEngine, GenRequest
from .loading import LoadedUserLM


class LocalBackend:
    """The in-process continuous-batching engine on a loaded model (per-row sampling, the bans as logit masks, the
    end-token logprob of each draft's first content position; engine.py, sampling.py)."""

    kind = "local"

    def __init__(self, loaded: LoadedUserLM, engine: BatchingEngine) -> None:
        self.loaded = loaded
        self.engine = engine
        self.tokenizer = loaded.tokenizer
        self.stop_ids = list(loaded.stop_ids)
        self.end_token_id = loaded.end_token_id
        self._special_ids = frozenset(loaded.tokenizer.all_special_ids)

    def context_limit(self) -> int | None:
        return getattr(self.loaded.model.config, "max_position_embeddings", None)

    def max_connections(self) -> int:
        # Inspect usually ignores this (docs/inspect.md); the engine bounds batch size and queue itself.
        return max(self.engine.settings.max_batch_size * 4, 16)

    async def draft(self, request: DraftRequest) -> Draft:
        result = await self.engine.generate(GenRequest(prompt_ids=request.prompt_ids, row=request))
        # the engine stops on the end token (batch.py): the end is its id, never text that spells it
        ended = result.stop_token is not None and result.stop_token == self.end_token_id
        text, raw = decode_new_tokens(self.tokenizer, result.token_ids, self._special_ids)
        if ended:
            raw = self.tokenizer.decode([*result.token_ids, result.stop_token], skip_special_tokens=False)
        first = result.first_content_token
        return Draft(
            text=text,
            raw=raw,
            ended=ended,
            new_tokens=len(result.token_ids),
            output_tokens=len(result.token_ids) + (1 if result.stop_token is not None else 0),
            prompt_tokens=result.prompt_tokens,
            finish=result.finish,
            first_token=None if first is None else self.tokenizer.decode([first]),
            first_token_bans=result.first_token_bans,
            batch_size=result.batch_size,
            queued_s=result.queued_s,
            generate_s=result.generate_s,
            end_logprob=result.end_logprob,
        )

    def should_retry(self, ex: Exception) -> bool:
        return False  # local errors (bad input, a row that does not fit in memory) do not heal on retry

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "device": self.loaded.device,
            "dtype": self.loaded.dtype,
            "engine": self.engine.settings.model_dump(),
        }


__all__ = ["LocalBackend"]
