"""`RemoteBackend`: UserLM drafts drawn by an OpenAI-compatible `/v1/completions` server (package docstring).

One draft = a *head* call that carries the first-content-token ban (when the filter applies) and a *continuation*
call from the chosen token; the `<|endconversation|>` ban is a `logit_bias` on every call.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from ...errors import BackendError, ConfigError, RetryableBackendError
from ...providers.credentials import redact_url
from ...providers.scrub import Secrets
from ..guardrails import ban_pending, banned_next
from ..prompt_encoding import encode_as_text
from ..settings import RemoteArgs
from ..template import stop_token_ids
from ..types import Draft, DraftRequest, decode_new_tokens
from .http import API_KEY_ENV, CompletionsClient
from .logprobs import EndLogprob, end_token_offset, read_end_logprob
from .tokenizer import eos_ids_from_configs, load_tokenizer

BAN_BIAS = -100.0
"""`logit_bias` value used as a ban (OpenAI's documented minimum)."""
AUTO_END_LOGPROBS = 20
"""Top logprobs asked for when the `end_threshold` rule needs log P(end) (vLLM's default `max_logprobs`)."""


@dataclass
class _Drawing:
    """One draft's state across its HTTP calls."""

    request: DraftRequest
    logprobs: int
    """Top logprobs to ask for while the first content position has not been seen (0: never)."""
    calls: list[dict[str, Any]] = field(default_factory=list)
    prefix_text: str = ""
    prefix_ids: list[int] = field(default_factory=list)
    end: EndLogprob | None = None
    end_seen: bool = False
    """The first content position was reached (its logprobs read, or not offered)."""
    detection: str = "banned"
    """How the end is decided for this draft (`RemoteBackend._end_detection`)."""
    by_tokens: int = 0
    by_text: int = 0
    """Calls whose end was decided on the server's token strings / on text (the server sent none)."""
    raw: str = ""
    """Everything the server generated that the draft kept, end token and what followed it included (the log)."""

    def evidence(self) -> str:
        """How the draft's end was decided, for the log."""
        if self.detection == "banned":
            return "ending banned: any end string is an end attempt (rejected)"
        if self.by_text:
            why = "-M end_detection=text" if self.detection == "text" else "the server sent no token strings"
            return f"text ({why}): the end string ends the draft"
        return "the server's token strings: only the end token ends the draft"


@dataclass(frozen=True)
class _Piece:
    """One call's generated text as the draft keeps it."""

    text: str
    ended: bool
    """The end token came before any stop string (the draft ends; `text` is what came before it)."""
    stopped: bool
    """The text was cut (the end token, or a stop string the server returned as text)."""


class RemoteBackend:
    """Draws drafts from an OpenAI-compatible `/v1/completions` endpoint (see the package docstring)."""

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
        secrets: Secrets | None = None,
    ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"userlm/{model_name}: base_url must be an http(s) URL of an OpenAI-compatible server, e.g. "
                f"-M base_url=http://127.0.0.1:8000/v1; got {base_url!r}"
            )
        self.model_name = model_name
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/completions"
        self.shown_url = redact_url(self.url)
        """The URL as errors and the transcript show it: without userinfo or query values (credentials.py)."""
        key = api_key or os.environ.get(API_KEY_ENV)
        self.secrets = (secrets or Secrets()) | Secrets([key])
        self.args = args
        self.server_model = args.server_model or model_name
        source = args.tokenizer or model_name
        self.tokenizer = load_tokenizer(
            source, revision=revision, trust_remote_code=trust_remote_code, chat_template=chat_template
        )
        stop_ids = stop_token_ids(self.tokenizer, eos_ids_from_configs(source, revision))
        if not stop_ids:
            raise ConfigError(f"userlm/{model_name}: the tokenizer {source!r} has no eos token to stop on")
        self.stop_ids = stop_ids
        self.stop_strings = [self.tokenizer.convert_ids_to_tokens(i) for i in stop_ids]
        self.end_token_id = self._single_id(args.end_token)
        self._end_keys = (args.end_token,) + (
            (f"token_id:{self.end_token_id}",) if self.end_token_id is not None else ()
        )
        self._special_ids = frozenset(self.tokenizer.all_special_ids)
        self.http = CompletionsClient(
            self.url,
            key,
            args,
            where=f"userlm/{model_name} at {self.shown_url}",
            server_model=self.server_model,
            secrets=self.secrets,
        )
        self._server_count: tuple[str, int] | None = None
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
            "url": self.shown_url,
            "server_model": self.server_model,
            "prompt_format": self.args.prompt_format,
            "stop": self.stop_strings,
            "first_token_head": self.args.first_token_head,
            "end_logprobs": self.args.end_logprobs,
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
        waited = time.perf_counter()
        async with self.http.semaphore():
            started = time.perf_counter()
            draft = await self._draft(request)
        draft.queued_s = started - waited
        draft.generate_s = time.perf_counter() - started
        return draft

    async def aclose(self) -> None:
        """Close the HTTP client of the running loop (others close with their loop)."""
        await self.http.aclose()

    # ----- internals -----

    def _logprobs_wanted(self, request: DraftRequest) -> int:
        if self.args.end_logprobs is None:
            return AUTO_END_LOGPROBS if request.report_end_logprob else 0
        return self.args.end_logprobs

    def _end_detection(self, request: DraftRequest) -> str:
        """How this draft's end is decided: "banned" (no end can be accepted: any end string is rejected as an
        end attempt, nothing to ask), "tokens" (the server's token strings, asked with `logprobs`) or "text"
        (`-M end_detection=text`: the degraded rule, docs/serving.md "Which end a server drew")."""
        if request.ban_end or self.end_token_id is None:
            return "banned"
        return self.args.end_detection

    async def _draft(self, request: DraftRequest) -> Draft:
        tokenizer = self.tokenizer
        end_bias = {self.end_token_id: BAN_BIAS} if request.ban_end and self.end_token_id is not None else {}
        drawing = _Drawing(
            request=request, logprobs=self._logprobs_wanted(request), detection=self._end_detection(request)
        )
        content: list[int] = []
        used = 0
        bans_applied = 0
        stopped = False
        ended = False
        finish: Literal["stop", "max_tokens"] = "stop"
        max_new = request.max_new_tokens

        # Head: the first-content-token filter, at that one position (package docstring).
        while ban_pending(request.first_bans, content) and used < max_new and len(drawing.calls) < 8:
            bans = banned_next(request.first_bans, content)
            n = min(self.args.first_token_head if not content else 1, max_new - used)
            result = await self._call(drawing, n, {**end_bias, **dict.fromkeys(bans, BAN_BIAS)}, call="head")
            if bans:
                bans_applied += 1
            piece = self._read(drawing, result)
            ids = encode_as_text(tokenizer, piece.text)  # as text: a spelled end string stays ordinary tokens
            kept = 0
            for token in ids:
                kept += 1
                if not content and not tokenizer.decode([token]).strip():
                    continue  # whitespace before the content (UserLM's leading newline)
                content.append(int(token))
                break  # the bans change after each content token: drop what was drawn under the old ones
            if kept:
                drawing.prefix_ids.extend(int(t) for t in ids[:kept])
                drawing.prefix_text = tokenizer.decode(drawing.prefix_ids, skip_special_tokens=False)
                used = len(drawing.prefix_ids)
            drawing.calls[-1]["kept"] = tokenizer.decode(ids[:kept]) if kept else ""
            drawing.raw += drawing.calls[-1]["kept"] if kept < len(ids) else result["text"]
            if not content and (piece.ended or piece.stopped or result["finish"] == "stop"):
                # the turn ended before any content: the end token, or an empty turn (a legitimate draw)
                stopped, ended = True, piece.ended
                break
            if not ids and result["finish"] != "length":
                stopped = True
                break

        text_all = drawing.prefix_text
        if stopped:
            finish = "stop"
        elif used >= max_new:
            finish = "max_tokens"
        else:
            result = await self._call(drawing, max_new - used, end_bias, call="continue")
            piece = self._read(drawing, result)
            drawing.raw += result["text"]
            text_all = drawing.prefix_text + piece.text
            ended = piece.ended
            finish = "max_tokens" if result["finish"] == "length" and not piece.stopped else "stop"

        ids = encode_as_text(tokenizer, text_all)
        text, _ = decode_new_tokens(tokenizer, ids, self._special_ids)
        first = content[0] if content else next((t for t in ids if tokenizer.decode([t]).strip()), None)
        calls = drawing.calls
        return Draft(
            text=text,
            raw=drawing.raw,
            new_tokens=len(ids),
            output_tokens=sum(c["usage"].get("completion_tokens", 0) for c in calls),
            prompt_tokens=sum(c["usage"].get("prompt_tokens", 0) for c in calls),
            finish=finish,
            first_token=None if first is None else tokenizer.decode([first]),
            first_token_bans=bans_applied,
            batch_size=None,
            queued_s=0.0,
            generate_s=0.0,
            details={"http_calls": calls, "end_detection": drawing.evidence()},
            end_logprob=None if drawing.end is None else drawing.end.value,
            ended=ended,
        )

    def _read(self, drawing: _Drawing, record: dict[str, Any]) -> _Piece:
        """One call's text, cut at the end token (decided as `drawing.detection` says) or at a stop string the server
        returned as text, whichever comes first."""
        text, tokens = record["text"], record.pop("_tokens", None)
        end_at: int | None = None
        if drawing.detection == "tokens" and tokens is not None:
            end_at, position = end_token_offset(text, tokens, self._end_keys, self.tokenizer)
            record["end_token_at"] = position
            drawing.by_tokens += 1
        elif drawing.detection != "banned":  # "text", or "tokens" from a server that sent no token strings
            found = text.find(self.args.end_token)
            end_at = found if found >= 0 else None
            drawing.by_text += 1
        stops = [i for i in (text.find(s) for s in self.stop_strings) if i >= 0]
        stop_at = min(stops, default=None)
        if end_at is not None and (stop_at is None or end_at <= stop_at):
            return _Piece(text[:end_at], ended=True, stopped=True)
        if stop_at is not None:
            return _Piece(text[:stop_at], ended=False, stopped=True)
        return _Piece(text, ended=False, stopped=False)

    def _prompt(self, drawing: _Drawing) -> str | list[int]:
        """This call's prompt: our ids, or text (control-token strings in contents broken up: package docstring),
        each followed by what the draft has drawn so far."""
        request = drawing.request
        if self.args.prompt_format == "token_ids":
            return [*request.prompt_ids, *drawing.prefix_ids]
        return (request.server_prompt or request.prompt) + drawing.prefix_text

    async def _call(
        self, drawing: _Drawing, max_tokens: int, bias: dict[int, float], *, call: str
    ) -> dict[str, Any]:
        request, calls = drawing.request, drawing.calls
        body: dict[str, Any] = {
            "model": self.server_model,
            "prompt": self._prompt(drawing),
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
        ask_logprobs = drawing.logprobs > 0 and not drawing.end_seen
        if ask_logprobs:
            body["logprobs"] = drawing.logprobs
        elif drawing.detection == "tokens":
            body["logprobs"] = 0  # the generated tokens' strings, to tell the end token from its spelling
        if self.args.send_stop_token_ids:
            body["stop_token_ids"] = self.stop_ids
        body.update(self.args.server_params)
        started = time.perf_counter()
        data = await self.http.post(body)
        self.calls += 1
        try:
            choice = data["choices"][0]
            text = choice.get("text") or ""
            finish_reason = choice.get("finish_reason") or "stop"
        except (KeyError, IndexError, TypeError, AttributeError) as error:
            raise BackendError(
                f"userlm/{self.model_name}: {self.shown_url} answered without choices[0].text "
                f"({self.secrets.scrub(str(data)[:300])}); is it an OpenAI-compatible /v1/completions endpoint?"
            ) from error
        usage = data.get("usage") or {}
        record = {
            "call": call,
            "appended": drawing.prefix_text,
            "max_tokens": max_tokens,
            "seed": body["seed"],
            "logit_bias": body.get("logit_bias", {}),
            "text": text,
            "finish": "length" if finish_reason == "length" else "stop",
            "finish_reason": finish_reason,
            "usage": {k: usage[k] for k in ("prompt_tokens", "completion_tokens") if k in usage},
            "seconds": round(time.perf_counter() - started, 4),
        }
        if ask_logprobs:
            end = read_end_logprob(choice.get("logprobs"), self._end_keys)
            record["end_logprob"] = end.as_log() if end is not None else None
            if end is not None or text.strip():  # the content position was in this call
                drawing.end, drawing.end_seen = end, True
        if not calls:
            self._check_prompt_count(request, usage, record)
        calls.append(record)
        logprobs = choice.get("logprobs")
        tokens = logprobs.get("tokens") if isinstance(logprobs, dict) else None
        if isinstance(tokens, list) and all(isinstance(t, str) for t in tokens):
            record["_tokens"] = tokens  # read (and removed from the log record) by `_read`
        return record

    def _expected_prompt_tokens(self, request: DraftRequest) -> int:
        """Tokens the server should count for the first call's prompt (our tokenizer's count of what we sent)."""
        if self.args.prompt_format == "token_ids" or request.server_prompt is None:
            return len(request.prompt_ids)
        cached = self._server_count
        if cached is None or cached[0] is not request.server_prompt:
            count = len(self.tokenizer.encode(request.server_prompt, add_special_tokens=False))
            cached = self._server_count = (request.server_prompt, count)
        return cached[1]

    def _check_prompt_count(
        self, request: DraftRequest, usage: dict[str, Any], record: dict[str, Any]
    ) -> None:
        """A server that counts our prompt differently uses another tokenizer: our banned ids would be wrong. A
        backend failure, not the caller's input: `serve` answers it with a 502."""
        counted = usage.get("prompt_tokens")
        if not isinstance(counted, int):
            return
        ours = self._expected_prompt_tokens(request)
        record["server_prompt_tokens"] = counted
        if not 0 <= counted - ours <= 1:  # the server may add a BOS to a text prompt
            raise BackendError(
                f"userlm/{self.model_name}: the server counted the prompt as {counted} tokens, our tokenizer "
                f"({self.args.tokenizer or self.model_name}) as {ours}: it is not the served model's tokenizer, so "
                "banned token ids (first-token filter, end ban) would hit the wrong tokens. Pass -M tokenizer=<the "
                "served model's hub id, folder or .gguf>."
            )


__all__ = ["API_KEY_ENV", "AUTO_END_LOGPROBS", "BAN_BIAS", "RemoteBackend"]
