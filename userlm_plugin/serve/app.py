"""The OpenAI-compatible app behind `userlm-plugin serve` (Starlette, which Inspect already depends on via FastAPI).

Contract, for any client that speaks OpenAI chat completions (the OpenAI SDK, LiteLLM `openai/<name>` with
`api_base`, tau2-bench, DeepEval...); every request and response field is listed in docs/serving.md:

* Request `messages` = the conversation so far, with REAL roles: `system` = the user's intent (first, required),
  `user` = the simulated user's earlier turns, `assistant` = the assistant under test. No role flipping. Message
  contents are text: control-token strings in them never become control tokens (runtime/prompt_encoding.py).
* Response `choices[0].message.content` = the next *user* turn (the message role is `assistant` because that is
  what OpenAI clients expect of a completion). Guardrails (paper Appendix D.1) and dynamic batching apply exactly
  as in `userlm/`, since the same `UserLMAPI` serves both.
* End of conversation (contract.py): `content == "<|endconversation|>"`, `finish_reason == "stop"` (OpenAI-valid,
  so LiteLLM and the SDK pass it unchanged) and `userlm.end_conversation == true`. A turn that spells the end
  string in ordinary tokens is text and never carries it literally. `finish_reason == "length"` when the turn hit
  `max_tokens`.
* `stream: true`: the same answer as server-sent events: a role chunk, the turn in a content chunk, a final chunk
  with `finish_reason` and the guardrail record, a `usage` chunk with `stream_options.include_usage`, then
  `data: [DONE]`. The turn is decided whole (the guardrails judge complete drafts), so it streams once ready.
* `usage` counts the returned turn (its prompt and its draft); `usage.drafts` the whole guardrail loop.
* Per-request guardrail overrides: a top-level `"userlm": {<GuardrailConfig fields>}` (LiteLLM/SDK: `extra_body`).
  The response carries the guardrail record (rejected drafts and why, retries, exhausted flag, end reason, text
  before the end...) under the same key.
* Errors: an OpenAI-style `{"error": {...}}` body with a 4xx for the client's mistakes and 5xx for ours
  (protocol.py); the server keeps serving. `GET /health` (JSON) and `GET /metrics` (Prometheus text) expose
  request and batch-size counters.

Bounded by construction (docs/serving.md "serve under abuse"): an optional API key checked before anything is
read (auth.py); the body read as a stream, cut at `max_body_bytes` and at `body_timeout_s` (a half-sent body
gets a 408); every body parsed and validated in a worker thread, long prompts rendered and tokenized there
(runtime/provider.py), and rendering linear in the input, so `/health` and other requests keep being answered;
per-request work bounded (`max_tokens`, `max_messages`, guardrail `max_retries` and `banned_first_words`) and a
deadline (`request_timeout_s`, 504) after which the generation is cancelled, as it is when the client goes away.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from ..turns import USERLM_METADATA_KEY
from .auth import RequireApiKey
from .contract import END_CONTENT, END_FIELD, RECORD_FIELD
from .protocol import (
    ParsedRequest,
    RequestError,
    ServeLimits,
    error_for_exception,
    error_response,
    parse_chat_request,
)

CLIENT_CLOSED = 499
"""Status recorded (never sent: nobody is listening) for a request whose client disconnected (nginx's code)."""
CLOSE_AFTER = frozenset({408, 413})
"""Statuses answered before the body was read in full: the connection is closed rather than drained."""

T = TypeVar("T")


class ClientGone(Exception):
    """The client disconnected before its answer was ready."""


@dataclass
class ServeStats:
    """Counters for /health and /metrics."""

    started: float = field(default_factory=time.time)
    requests: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    end_conversations: int = 0
    completion_tokens: int = 0
    cancelled: int = 0
    """Requests whose client disconnected before the answer; their generation was cancelled."""
    timed_out: int = 0
    """Requests cut at their deadline (`request_timeout_s`); their generation was cancelled."""
    unauthorized: int = 0
    """Requests refused for a missing or wrong API key."""


def _batching(api: Any) -> dict[str, Any]:
    backend = api.backend_if_loaded  # never loads: /health must answer while the model loads
    engine = getattr(backend, "engine", None)
    stats = getattr(engine, "stats", None)
    if stats is None:
        return {
            "backend": getattr(backend, "kind", "not loaded"),
            "http_calls": getattr(backend, "calls", None),
        }
    sizes = list(stats.batch_sizes)
    return {
        "backend": "local",
        "batches": stats.batches,
        "rows": stats.rows,
        "max_batch_size": max(sizes, default=0),
        "mean_batch_size": round(stats.rows / stats.batches, 3) if stats.batches else 0.0,
        "recent_batch_sizes": sizes[-100:],
        "max_batch_size_limit": engine.settings.max_batch_size,
    }


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The request body, read as it streams in and refused (413) as soon as it passes `limit` bytes: a chunked
    upload declares no length, so the declared Content-Length alone cannot be trusted. A body that has not arrived
    in full within `timeout_s` (a client that sends half and stalls) is a 408."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(f"request body over {limit} bytes", status=413, code="body_too_large")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise RequestError(f"request body over {limit} bytes", status=413, code="body_too_large")
                chunks.append(chunk)
    except TimeoutError:
        raise RequestError(
            f"the request body did not arrive within {timeout_s:g} s ({size} bytes received); send the whole "
            "body at once",
            status=408,
            code="body_timeout",
        ) from None
    return b"".join(chunks)


def decode_request(raw: bytes, *, served_name: str, limits: ServeLimits) -> ParsedRequest:
    """JSON -> a validated request (RequestError for every client mistake, deep nesting included)."""
    try:
        body = json.loads(raw)
    except RecursionError as error:
        raise RequestError("the request body is nested too deeply to parse") from error
    except (ValueError, UnicodeDecodeError) as error:
        raise RequestError(f"the request body is not valid JSON: {error}") from error
    try:
        return parse_chat_request(body, served_name=served_name, limits=limits)
    except RecursionError as error:
        raise RequestError("the request is nested too deeply") from error


async def until_disconnected(request: Request) -> None:
    """Return when the client disconnects (the ASGI server's `http.disconnect`, after the body was read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """`await work`, cancelling it (no more drafts for this request) if the client disconnects first."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(until_disconnected(request))
    try:
        done, _ = await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:  # also when this handler is cancelled (server shutdown)
        watch.cancel()
        if not task.done():
            task.cancel()
    if task in done:
        return task.result()
    await asyncio.gather(task, return_exceptions=True)  # let the cancellation run through the drafting loop
    raise ClientGone()


def create_app(
    api: Any, *, served_name: str, limits: ServeLimits | None = None, api_key: str | None = None
) -> Starlette:
    """An app serving `api` (a `UserLMAPI`, local or remote backend) as `served_name`; with `api_key`, every path
    but `/health` needs `Authorization: Bearer <api_key>` (auth.py)."""
    from inspect_ai.model import GenerateConfig

    limits = limits or ServeLimits()
    stats = ServeStats()
    latencies: deque[float] = deque(maxlen=1000)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "status": "ok",
                "model": served_name,
                "uptime_s": round(time.time() - stats.started, 1),
                "auth": "api key required" if api_key else "none",
                "requests": {
                    "total": stats.requests,
                    "in_flight": stats.in_flight,
                    "peak_in_flight": stats.peak_in_flight,
                    "by_status": {str(k): v for k, v in sorted(stats.statuses.items())},
                    "cancelled": stats.cancelled,
                    "timed_out": stats.timed_out,
                    "unauthorized": stats.unauthorized,
                    "end_conversations": stats.end_conversations,
                    "completion_tokens": stats.completion_tokens,
                    "mean_latency_s": round(sum(latencies) / len(latencies), 4) if latencies else None,
                },
                "limits": {
                    "max_body_bytes": limits.max_body_bytes,
                    "max_tokens": limits.max_tokens,
                    "max_retries": limits.max_retries,
                    "max_messages": limits.max_messages,
                    "max_banned_first_words": limits.max_banned_first_words,
                    "max_banned_word_chars": limits.max_banned_word_chars,
                    "body_timeout_s": limits.body_timeout_s,
                    "request_timeout_s": limits.request_timeout_s,
                },
                "batching": _batching(api),
            }
        )

    async def metrics(request: Request) -> PlainTextResponse:
        batching = _batching(api)
        lines = [
            f"userlm_requests_total {stats.requests}",
            f"userlm_requests_in_flight {stats.in_flight}",
            f"userlm_requests_peak_in_flight {stats.peak_in_flight}",
            f"userlm_requests_cancelled_total {stats.cancelled}",
            f"userlm_requests_timed_out_total {stats.timed_out}",
            f"userlm_requests_unauthorized_total {stats.unauthorized}",
            *(f'userlm_responses_total{{status="{k}"}} {v}' for k, v in sorted(stats.statuses.items())),
            f"userlm_end_conversations_total {stats.end_conversations}",
            f"userlm_completion_tokens_total {stats.completion_tokens}",
        ]
        for key in ("batches", "rows", "max_batch_size", "mean_batch_size"):
            if key in batching:
                lines.append(f"userlm_engine_{key} {batching[key]}")
        return PlainTextResponse("\n".join(lines) + "\n")

    async def models(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {
                        "id": served_name,
                        "object": "model",
                        "created": int(stats.started),
                        "owned_by": "userlm_plugin",
                    }
                ],
            }
        )

    async def chat(request: Request) -> Response:
        stats.requests += 1
        stats.in_flight += 1
        stats.peak_in_flight = max(stats.peak_in_flight, stats.in_flight)
        started = time.perf_counter()
        response: Response
        deadline = asyncio.timeout(limits.request_timeout_s)
        try:
            async with deadline:
                response = await _chat(request)
        except (ClientGone, ClientDisconnect):
            stats.cancelled += 1
            response = error_response(CLIENT_CLOSED, "the client disconnected", code="client_closed")
        except asyncio.CancelledError:
            # uvicorn cancels the requests still running when the shutdown grace period ends: answer them in
            # OpenAI's shape (503) instead of its plain-text 500, best effort while the server goes
            response = error_response(
                503, "the server is shutting down; retry the request", code="shutting_down"
            )
            response.headers["connection"] = "close"
        except TimeoutError as error:
            if deadline.expired():
                stats.timed_out += 1
                response = error_response(
                    504,
                    f"the request took longer than this server's deadline ({limits.request_timeout_s:g} s, "
                    "`userlm-plugin serve --request-timeout`); its generation was cancelled",
                    code="request_timeout",
                )
            else:  # a timeout inside the generation, not this request's deadline
                response = error_for_exception(error)
        except Exception as error:  # noqa: BLE001 - every error becomes an OpenAI-shaped answer (protocol.py)
            response = error_for_exception(error)
        finally:
            stats.in_flight -= 1
        if response.status_code in CLOSE_AFTER:
            # close instead of draining the rest of the upload (the server would read it all to keep the
            # connection alive, or wait for a body that is not coming)
            response.headers["connection"] = "close"
        stats.statuses[response.status_code] += 1
        if response.status_code == 200:
            latencies.append(time.perf_counter() - started)
        return response

    async def _chat(request: Request) -> Response:
        raw = await read_body(request, limits.max_body_bytes, limits.body_timeout_s)
        # parsing and validation are linear but not free (20,000 messages): always off the event loop
        parsed = await asyncio.to_thread(decode_request, raw, served_name=served_name, limits=limits)
        config = GenerateConfig(
            max_tokens=parsed.max_tokens,
            temperature=parsed.temperature,
            top_p=parsed.top_p,
            seed=parsed.seed,
            extra_body={USERLM_METADATA_KEY: parsed.guardrails} if parsed.guardrails else None,
        )
        output, _call = await unless_disconnected(request, api.generate(parsed.messages, [], "none", config))
        return _completion(output, parsed)

    def _completion(output: Any, parsed: ParsedRequest) -> Response:
        record = dict((output.metadata or {}).get(USERLM_METADATA_KEY, {}))
        turn_usage = record.pop("turn_usage", None) or {}
        ended = record.get("end_reason") is not None
        record[END_FIELD] = ended
        if ended:
            stats.end_conversations += 1
            content, finish = END_CONTENT, "stop"
        else:
            content = output.completion  # a spelled end string in it is already defused (runtime/template.py)
            finish = "length" if output.stop_reason == "max_tokens" else "stop"
        usage = _usage(output.usage, turn_usage)
        record["drafts_usage"] = usage["drafts"]
        stats.completion_tokens += usage["completion_tokens"]
        if parsed.ignored:
            record["ignored_fields"] = parsed.ignored
        record = json.loads(json.dumps(record, default=str))
        ident, created = f"chatcmpl-userlm-{uuid.uuid4().hex[:24]}", int(time.time())
        if parsed.stream:
            return StreamingResponse(
                _events(ident, created, content, finish, record, usage if parsed.include_usage else None),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache"},
            )
        return JSONResponse(
            {
                "id": ident,
                "object": "chat.completion",
                "created": created,
                "model": served_name,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": finish,
                        "logprobs": None,
                    }
                ],
                "usage": usage,
                RECORD_FIELD: record,
            }
        )

    async def _events(
        ident: str,
        created: int,
        content: str,
        finish: str,
        record: dict[str, Any],
        usage: dict[str, Any] | None,
    ) -> AsyncIterator[str]:
        """The answer as OpenAI's chat-completion chunks (server-sent events), then `[DONE]`."""
        base = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": served_name}
        if usage is not None:
            base["usage"] = None  # OpenAI's convention: only the last chunk carries usage

        def chunk(delta: dict[str, Any], finish_reason: str | None, **extra: Any) -> str:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return f"data: {json.dumps({**base, 'choices': [choice], **extra})}\n\n"

        yield chunk({"role": "assistant", "content": ""}, None)
        yield chunk({"content": content}, None)
        yield chunk({}, finish, **{RECORD_FIELD: record})
        if usage is not None:
            yield f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n"
        yield "data: [DONE]\n\n"

    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        return error_response(404, f"no route {request.method} {request.url.path}; see /v1/chat/completions")

    async def bad_method(request: Request, exc: Exception) -> JSONResponse:
        return error_response(405, f"{request.method} is not allowed on {request.url.path}")

    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        return error_for_exception(exc)

    def refused() -> None:
        stats.unauthorized += 1
        stats.statuses[401] += 1

    app = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/chat/completions", chat, methods=["POST"]),
        ],
        middleware=[Middleware(RequireApiKey, key=api_key, on_reject=refused)] if api_key else [],
        exception_handlers={404: not_found, 405: bad_method, Exception: internal_error},
    )
    app.state.stats = stats
    app.state.api = api
    app.state.limits = limits
    return app


def _usage(total: Any, turn: dict[str, Any]) -> dict[str, Any]:
    """OpenAI `usage` of the returned turn (its prompt, its draft), with the whole guardrail loop's tokens under
    `drafts` (what the turn cost: every draft's prompt and output)."""
    drafts_in = total.input_tokens if total else 0
    drafts_out = total.output_tokens if total else 0
    prompt = int(turn.get("prompt_tokens", drafts_in))
    completion = int(turn.get("completion_tokens", drafts_out))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "drafts": {
            "count": int(turn.get("drafts", 1)),
            "prompt_tokens": drafts_in,
            "completion_tokens": drafts_out,
            "total_tokens": drafts_in + drafts_out,
        },
    }


__all__ = [
    "ParsedRequest",
    "RequestError",
    "ServeLimits",
    "ServeStats",
    "create_app",
    "decode_request",
    "parse_chat_request",
    "read_body",
]
