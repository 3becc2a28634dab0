"""`userlm/<model> -M base_url=http://host:8000/v1`: UserLM drafts drawn by an OpenAI-compatible server.

    inspect eval ... --model-role user=userlm/microsoft/UserLM-8b -M base_url=http://gpu-host:8000/v1

Why `/v1/completions` and never the chat endpoint: a hosted chat endpoint renders a generic template that opens an
*assistant* turn, trusts one eos, may strip `<|endconversation|>` and cannot ban a token at one position. So we
render the prompt with the model's own template here (template.py: it ends by opening a *user* turn), send that
text (or its token ids) as a raw completion, stop on every eos of the checkpoint, and apply the paper's guardrails
(Appendix D.1, guardrails.py) with what every such server has:

* `<|endconversation|>` ban: `logit_bias={id: -100}` on every call of a draft (the OpenAI maximum; vLLM clamps to
  it, llama.cpp adds it to the logit: a ban in practice).
* First-content-token filter: a short *head* call (`first_token_head` tokens, default 2: UserLM's leading newline
  plus the first word) with the openers banned by `logit_bias`; we keep its text up to and including the first
  non-whitespace token and drop the rest, then a *continuation* call with that prefix appended and no opener ban.
  So the ban acts at that one position only, as in the local sampler (prefix caching makes the second call cheap).
  A multi-token banned sequence is followed token by token with 1-token calls.
* Length/repetition resampling: the shared loop in provider.py, identical for both backends.

Token ids in `logit_bias` come from our copy of the served model's tokenizer (`-M tokenizer=`, default the model
name; a hub id, a folder or a `.gguf` file): only the tokenizer is loaded, never the weights. The first call of each
draft checks that the server counted the prompt as our tokenizer does, so a wrong tokenizer fails loudly instead of
banning the wrong tokens.

Errors: 429 -> `RetryDecision.rate_limit()`; 5xx, 408, read timeouts and dropped connections -> transient retries
(bounded by Inspect's `--max-retries` / `--timeout`); a server that refuses connections (after `connect_retries`
quick tries) raises `BackendUnavailableError`, which is not retried, so the sample fails with the URL in the message
instead of Inspect backing off forever; other 4xx raise `UpstreamRequestError` with the server's own message.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Literal

from ..errors import (
    BackendError,
    BackendUnavailableError,
    ConfigError,
    RetryableBackendError,
    UpstreamRequestError,
)
from .guardrails import ban_pending, banned_next
from .settings import RemoteArgs
from .template import has_chat_template, set_chat_template, stop_token_ids, token_ids
from .types import Draft, DraftRequest, decode_new_tokens

logger = logging.getLogger(__name__)

BAN_BIAS = -100.0
"""`logit_bias` value used as a ban (OpenAI's documented minimum)."""
API_KEY_ENV = "USERLM_API_KEY"


# ----- tokenizer (no weights) -----

_TOKENIZERS: dict[tuple[Any, ...], Any] = {}
_TOKENIZER_LOCK = threading.Lock()


def load_tokenizer(
    source: str,
    *,
    revision: str | None = None,
    trust_remote_code: bool = False,
    chat_template: str | None = None,
) -> Any:
    """The tokenizer (with its chat template) of a hub id, a local folder or a `.gguf` file; cached per process."""
    key = (source, revision, trust_remote_code, chat_template)
    with _TOKENIZER_LOCK:
        if key in _TOKENIZERS:
            return _TOKENIZERS[key]
        from transformers import AutoTokenizer

        path = Path(source).expanduser()
        kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code, "revision": revision}
        try:
            if path.suffix == ".gguf":
                if not path.is_file():
                    raise FileNotFoundError(f"no such GGUF file: {path}")
                tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name, **kwargs)
            elif path.is_dir():
                tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True, **kwargs)
            else:
                tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        except Exception as error:
            raise ConfigError(
                f"userlm remote backend: could not load the tokenizer {source!r} ({error}). Pass -M tokenizer=<hub "
                "id, local folder or .gguf file of the served model>: it renders the prompt and maps banned tokens "
                "to the server's ids (only the tokenizer is loaded, never the weights)."
            ) from error
        set_chat_template(tokenizer, chat_template)
        if not has_chat_template(tokenizer):
            raise ConfigError(
                f"userlm remote backend: the tokenizer {source!r} has no chat template; pass -M chat_template="
                "<file.jinja> (UserLM-8b ships one)."
            )
        _TOKENIZERS[key] = tokenizer
        return tokenizer


def _eos_ids_from_configs(source: str, revision: str | None) -> list[int]:
    """eos ids in the checkpoint's config.json / generation_config.json when they can be read (UserLM's disagree:
    paper.md §1.2). Missing files are fine: the tokenizer's eos and the Llama-3 stop tokens still apply."""
    ids: list[int] = []
    path = Path(source).expanduser()
    if path.suffix == ".gguf":
        return ids
    try:
        from transformers import GenerationConfig

        kwargs: dict[str, Any] = {"revision": revision}
        if path.is_dir():
            kwargs["local_files_only"] = True
        value = GenerationConfig.from_pretrained(
            str(path) if path.is_dir() else source, **kwargs
        ).eos_token_id
        ids.extend(token_ids(value))
    except Exception:  # noqa: BLE001 - optional facts
        pass
    return ids


# ----- per event loop HTTP state -----


class _LoopState:
    def __init__(self, client: Any, limit: int) -> None:
        self.client = client
        self.semaphore = asyncio.Semaphore(limit)


class RemoteBackend:
    """Draws drafts from an OpenAI-compatible `/v1/completions` endpoint (see the module docstring)."""

    kind = "remote"

    def __init__(
        self,
        model_name: str,
        base_url: str,
        api_key: str | None,
        args: RemoteArgs,
        *,
        revision: str | None = None,
        trust_remote_code: bool = False,
        chat_template: str | None = None,
    ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"userlm/{model_name}: base_url must be an http(s) URL of an OpenAI-compatible server, e.g. "
                f"-M base_url=http://127.0.0.1:8000/v1; got {base_url!r}"
            )
        self.model_name = model_name
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/completions"
        self.api_key = api_key or os.environ.get(API_KEY_ENV)
        self.args = args
        self.server_model = args.server_model or model_name
        source = args.tokenizer or model_name
        self.tokenizer = load_tokenizer(
            source, revision=revision, trust_remote_code=trust_remote_code, chat_template=chat_template
        )
        stop_ids = stop_token_ids(self.tokenizer, _eos_ids_from_configs(source, revision))
        if not stop_ids:
            raise ConfigError(f"userlm/{model_name}: the tokenizer {source!r} has no eos token to stop on")
        self.stop_ids = stop_ids
        self.stop_strings = [self.tokenizer.convert_ids_to_tokens(i) for i in stop_ids]
        self.end_token_id = self._single_id(args.end_token)
        self._special_ids = frozenset(self.tokenizer.all_special_ids)
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )
        self.calls = 0
        """HTTP calls made (all loops): a cheap counter for tests and benchmarks."""

    def _single_id(self, token: str) -> int | None:
        vocab = self.tokenizer.get_vocab()
        if token in vocab:
            return int(vocab[token])
        ids = self.tokenizer.encode(token, add_special_tokens=False)
        return int(ids[0]) if len(ids) == 1 else None

    # ----- GenerationBackend -----

    def context_limit(self) -> int | None:
        if self.args.max_context is not None:
            return self.args.max_context
        limit = getattr(self.tokenizer, "model_max_length", None)
        return int(limit) if isinstance(limit, int) and limit < 10**7 else None

    def max_connections(self) -> int:
        return self.args.max_concurrency

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "url": self.url,
            "server_model": self.server_model,
            "prompt_format": self.args.prompt_format,
            "stop": self.stop_strings,
            "first_token_head": self.args.first_token_head,
            "server_params": dict(self.args.server_params),
            "max_concurrency": self.args.max_concurrency,
            "timeout": self.args.timeout,
        }

    def should_retry(self, ex: Exception) -> Any:
        from inspect_ai.model import RetryDecision

        if isinstance(ex, RetryableBackendError):
            if ex.kind == "rate_limit":
                return RetryDecision.rate_limit(retry_after=ex.retry_after)
            return RetryDecision.transient(retry_after=ex.retry_after)
        return False

    async def draft(self, request: DraftRequest) -> Draft:
        state = self._state()
        waited = time.perf_counter()
        async with state.semaphore:
            started = time.perf_counter()
            draft = await self._draft(state, request)
        draft.queued_s = started - waited
        draft.generate_s = time.perf_counter() - started
        return draft

    # ----- internals -----

    def _state(self) -> _LoopState:
        import httpx

        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            headers = {"Content-Type": "application/json"}
            if self.api_key:
                headers["Authorization"] = f"Bearer {self.api_key}"
            client = httpx.AsyncClient(
                headers=headers,
                timeout=httpx.Timeout(self.args.timeout, connect=self.args.connect_timeout),
                limits=httpx.Limits(max_connections=self.args.max_concurrency),
            )
            state = _LoopState(client, self.args.max_concurrency)
            self._states[loop] = state
        return state

    async def _draft(self, state: _LoopState, request: DraftRequest) -> Draft:
        tokenizer = self.tokenizer
        end_bias = {self.end_token_id: BAN_BIAS} if request.ban_end and self.end_token_id is not None else {}
        calls: list[dict[str, Any]] = []
        prefix_text = ""
        prefix_ids: list[int] = []
        content: list[int] = []
        used = 0
        bans_applied = 0
        stopped = False
        finish: Literal["stop", "max_tokens"] = "stop"
        max_new = request.max_new_tokens

        # Head: the first-content-token filter, at that one position (module docstring).
        while ban_pending(request.first_bans, content) and used < max_new and len(calls) < 8:
            bans = banned_next(request.first_bans, content)
            n = min(self.args.first_token_head if not content else 1, max_new - used)
            result = await self._call(
                state, request, prefix_text, prefix_ids, n, {**end_bias, **dict.fromkeys(bans, BAN_BIAS)},
                call="head", calls=calls,
            )  # fmt: skip
            if bans:
                bans_applied += 1
            ids = tokenizer.encode(result["text"], add_special_tokens=False)
            kept = 0
            for token in ids:
                if token in self.stop_ids:
                    stopped = True
                    break
                kept += 1
                if not content and not tokenizer.decode([token]).strip():
                    continue  # whitespace before the content (UserLM's leading newline)
                content.append(int(token))
                break  # the bans change after each content token: drop what was drawn under the old ones
            if kept:
                prefix_ids.extend(int(t) for t in ids[:kept])
                prefix_text = tokenizer.decode(prefix_ids, skip_special_tokens=False)
                used = len(prefix_ids)
            calls[-1]["kept"] = tokenizer.decode(ids[:kept]) if kept else ""
            if not content and result["finish"] == "stop" and kept == len(ids):
                stopped = True  # the turn ended before any content (an empty turn): a legitimate draw
            if stopped:
                break
            if not ids and result["finish"] != "length":
                stopped = True
                break

        text_all = prefix_text
        if stopped:
            finish = "stop"
        elif used >= max_new:
            finish = "max_tokens"
        else:
            result = await self._call(
                state,
                request,
                prefix_text,
                prefix_ids,
                max_new - used,
                end_bias,
                call="continue",
                calls=calls,
            )
            text_all = prefix_text + result["text"]
            finish = "max_tokens" if result["finish"] == "length" else "stop"

        ids = tokenizer.encode(text_all, add_special_tokens=False)
        cut = next((k for k, t in enumerate(ids) if t in self.stop_ids), len(ids))
        if cut < len(ids):
            finish = "stop"  # the server returned a stop token as text
        ids = ids[:cut]
        text, raw = decode_new_tokens(tokenizer, ids, self._special_ids)
        first = content[0] if content else next((t for t in ids if tokenizer.decode([t]).strip()), None)
        return Draft(
            text=text,
            raw=raw,
            new_tokens=len(ids),
            output_tokens=sum(c["usage"].get("completion_tokens", 0) for c in calls),
            prompt_tokens=sum(c["usage"].get("prompt_tokens", 0) for c in calls),
            finish=finish,
            first_token=None if first is None else tokenizer.decode([first]),
            first_token_bans=bans_applied,
            batch_size=None,
            queued_s=0.0,
            generate_s=0.0,
            details={"http_calls": calls},
        )

    async def _call(
        self,
        state: _LoopState,
        request: DraftRequest,
        prefix_text: str,
        prefix_ids: list[int],
        max_tokens: int,
        bias: dict[int, float],
        *,
        call: str,
        calls: list[dict[str, Any]],
    ) -> dict[str, Any]:
        prompt: str | list[int]
        if self.args.prompt_format == "token_ids":
            prompt = [*request.prompt_ids, *prefix_ids]
        else:
            prompt = request.prompt + prefix_text
        body: dict[str, Any] = {
            "model": self.server_model,
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": (request.seed + 7919 * len(calls)) % (2**31),
            "stop": self.stop_strings,
            "n": 1,
            "stream": False,
        }
        if bias:
            body["logit_bias"] = {str(k): v for k, v in bias.items()}
        if self.args.send_stop_token_ids:
            body["stop_token_ids"] = self.stop_ids
        body.update(self.args.server_params)
        started = time.perf_counter()
        data = await self._post(state, body)
        self.calls += 1
        try:
            choice = data["choices"][0]
            text = choice.get("text") or ""
            finish_reason = choice.get("finish_reason") or "stop"
        except (KeyError, IndexError, TypeError, AttributeError) as error:
            raise BackendError(
                f"userlm/{self.model_name}: {self.url} answered without choices[0].text ({str(data)[:300]}); "
                "is it an OpenAI-compatible /v1/completions endpoint?"
            ) from error
        usage = data.get("usage") or {}
        record = {
            "call": call,
            "appended": prefix_text,
            "max_tokens": max_tokens,
            "seed": body["seed"],
            "logit_bias": body.get("logit_bias", {}),
            "text": text,
            "finish": "length" if finish_reason == "length" else "stop",
            "finish_reason": finish_reason,
            "usage": {k: usage[k] for k in ("prompt_tokens", "completion_tokens") if k in usage},
            "seconds": round(time.perf_counter() - started, 4),
        }
        if not calls:
            self._check_prompt_count(request, usage, record)
        calls.append(record)
        return record

    def _check_prompt_count(
        self, request: DraftRequest, usage: dict[str, Any], record: dict[str, Any]
    ) -> None:
        """A server that counts our prompt differently uses another tokenizer: our banned ids would be wrong."""
        counted = usage.get("prompt_tokens")
        if not isinstance(counted, int):
            return
        ours = len(request.prompt_ids)
        record["server_prompt_tokens"] = counted
        if not 0 <= counted - ours <= 1:  # the server may add a BOS to a text prompt
            raise ConfigError(
                f"userlm/{self.model_name}: the server counted the prompt as {counted} tokens, our tokenizer "
                f"({self.args.tokenizer or self.model_name}) as {ours}: it is not the served model's tokenizer, so "
                "banned token ids (first-token filter, end ban) would hit the wrong tokens. Pass -M tokenizer=<the "
                "served model's hub id, folder or .gguf>."
            )

    async def _post(self, state: _LoopState, body: dict[str, Any]) -> dict[str, Any]:
        import httpx

        where = f"userlm/{self.model_name} at {self.url}"
        for attempt in range(self.args.connect_retries + 1):
            try:
                response = await state.client.post(self.url, json=body)
                break
            except (httpx.ConnectError, httpx.ConnectTimeout) as error:
                if attempt < self.args.connect_retries:
                    await asyncio.sleep(0.5 * 2**attempt)
                    continue
                raise BackendUnavailableError(
                    f"{where}: cannot connect ({type(error).__name__}: {error}) after "
                    f"{self.args.connect_retries + 1} tries. Is the server running and is -M base_url right "
                    "(e.g. http://127.0.0.1:8000/v1)? Not retried: a dead server fails the sample."
                ) from error
            except httpx.TimeoutException as error:
                raise RetryableBackendError(
                    f"{where}: no answer within {self.args.timeout:.0f} s ({type(error).__name__}); retried by "
                    "Inspect (bound it with --max-retries/--timeout; raise -M timeout= for slow servers)",
                    "transient",
                ) from error
            except httpx.TransportError as error:  # dropped connection, protocol error
                raise RetryableBackendError(
                    f"{where}: connection failed mid-request ({type(error).__name__}: {error}); retried by Inspect",
                    "transient",
                ) from error
        status = response.status_code
        if status == 200:
            try:
                return response.json()
            except ValueError as error:
                raise BackendError(
                    f"{where}: answered 200 with a non-JSON body: {response.text[:300]}"
                ) from error
        message = _error_message(response)
        retry_after = _retry_after(response)
        if status == 429:
            raise RetryableBackendError(f"{where}: rate limited (429): {message}", "rate_limit", retry_after)
        if status >= 500 or status == 408:
            raise RetryableBackendError(
                f"{where}: server error {status}: {message}", "transient", retry_after
            )
        raise UpstreamRequestError(
            f"{where}: the server rejected the request ({status}): {message}. Check -M server_model (the "
            f"served model name, now {self.server_model!r}), server_params, and that the server has a "
            "/v1/completions endpoint."
        )

    async def aclose(self) -> None:
        """Close the HTTP client of the running loop (others close with their loop)."""
        loop = asyncio.get_running_loop()
        state = self._states.pop(loop, None)
        if state is not None:
            await state.client.aclose()


def _error_message(response: Any) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(data, dict):
        error = data.get("error", data.get("detail", data))
        if isinstance(error, dict):
            return str(error.get("message", error))[:500]
        return str(error)[:500]
    return str(data)[:500]


def _retry_after(response: Any) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


__all__ = ["RemoteBackend", "load_tokenizer"]
