"""The OpenAI-compatible app behind `userlm-plugin serve` (Starlette, which Inspect already depends on via FastAPI).

Contract, for any client that speaks OpenAI chat completions (LiteLLM `openai/<name>` with `api_base`, tau2-bench,
DeepEval...):

* Request `messages` = the conversation so far, with REAL roles: `system` = the user's intent (first, required),
  `user` = the simulated user's earlier turns, `assistant` = the assistant under test. No role flipping. Message
  contents are text: control-token strings in them never become control tokens (runtime/prompt_encoding.py).
* Response `choices[0].message.content` = the next *user* turn (the message role is `assistant` because that is
  what OpenAI clients expect of a completion). Guardrails (paper Appendix D.1) and dynamic batching apply exactly
  as in `userlm/`, since the same `UserLMAPI` serves both.
* End of conversation: `finish_reason == "end_conversation"` and `content == "<|endconversation|>"` (the literal
  token, so clients that drop unknown finish reasons still see it). `finish_reason == "length"` when the turn hit
  `max_tokens`, else `"stop"`.
* Per-request guardrail overrides: a top-level `"userlm": {<GuardrailConfig fields>}` (LiteLLM: `extra_body`).
  The response carries the guardrail record (rejected drafts, retries, end reason...) under the same key.
* Errors: an OpenAI-style `{"error": {...}}` body with a 4xx for the client's mistakes and 5xx for ours
  (protocol.py); the server keeps serving. `GET /health` (JSON) and `GET /metrics` (Prometheus text) expose
  request and batch-size counters.

Abuse-proofing (docs/serving.md "serve under abuse"): the body is read as a stream and cut at
`ServeLimits.max_body_bytes` (a chunked upload has no Content-Length to check); large bodies are parsed, and long
prompts rendered and tokenized (runtime/provider.py), in a worker thread, so `/health` and other requests keep
being answered; per-request work is bounded (`max_tokens`, guardrail `max_retries`); and when the client goes away
its generation is cancelled: no more drafts are drawn for it.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..turns import END_CONVERSATION, USERLM_METADATA_KEY
from .contract import END_FINISH_REASON
from .protocol import (
    ParsedRequest,
    RequestError,
    ServeLimits,
    error_for_exception,
    error_response,
    parse_chat_request,
)

MAX_BODY_BYTES = ServeLimits.max_body_bytes
OFFLOAD_BYTES = 64 * 1024
"""Bodies larger than this are JSON-parsed and validated in a worker thread."""
CLIENT_CLOSED = 499
"""Status recorded (never sent: nobody is listening) for a request whose client disconnected (nginx's code)."""

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


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, read as it streams in and refused (413) as soon as it passes `limit` bytes: a chunked
    upload declares no length, so the declared Content-Length alone cannot be trusted."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(f"request body over {limit} bytes", status=413, code="body_too_large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(f"request body over {limit} bytes", status=413, code="body_too_large")
        chunks.append(chunk)
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
    api: Any, *, served_name: str, max_tokens_limit: int | None = None, limits: ServeLimits | None = None
) -> Starlette:
    """An app serving `api` (a `UserLMAPI`, local or remote backend) as `served_name`."""
    from inspect_ai.model import GenerateConfig

    limits = limits or ServeLimits()
    if max_tokens_limit is not None:
        limits = ServeLimits(
            max_body_bytes=limits.max_body_bytes, max_tokens=max_tokens_limit, max_retries=limits.max_retries
        )
    stats = ServeStats()
    latencies: deque[float] = deque(maxlen=1000)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "status": "ok",
                "model": served_name,
                "uptime_s": round(time.time() - stats.started, 1),
                "requests": {
                    "total": stats.requests,
                    "in_flight": stats.in_flight,
                    "peak_in_flight": stats.peak_in_flight,
                    "by_status": {str(k): v for k, v in sorted(stats.statuses.items())},
                    "cancelled": stats.cancelled,
                    "end_conversations": stats.end_conversations,
                    "completion_tokens": stats.completion_tokens,
                    "mean_latency_s": round(sum(latencies) / len(latencies), 4) if latencies else None,
                },
                "limits": {
                    "max_body_bytes": limits.max_body_bytes,
                    "max_tokens": limits.max_tokens,
                    "max_retries": limits.max_retries,
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
        try:
            response = await _chat(request)
        except (ClientGone, ClientDisconnect):
            stats.cancelled += 1
            response = error_response(CLIENT_CLOSED, "the client disconnected", code="client_closed")
        except Exception as error:  # noqa: BLE001 - every error becomes an OpenAI-shaped answer (protocol.py)
            response = error_for_exception(error)
        finally:
            stats.in_flight -= 1
        if response.status_code == 413:
            # close instead of draining the rest of an oversized upload (the server would read it all to keep
            # the connection alive)
            response.headers["connection"] = "close"
        stats.statuses[response.status_code] += 1
        if response.status_code == 200:
            latencies.append(time.perf_counter() - started)
        return response

    async def _chat(request: Request) -> JSONResponse:
        raw = await read_body(request, limits.max_body_bytes)
        if len(raw) > OFFLOAD_BYTES:
            parsed = await asyncio.to_thread(decode_request, raw, served_name=served_name, limits=limits)
        else:
            parsed = decode_request(raw, served_name=served_name, limits=limits)
        config = GenerateConfig(
            max_tokens=parsed.max_tokens,
            temperature=parsed.temperature,
            top_p=parsed.top_p,
            seed=parsed.seed,
            extra_body={USERLM_METADATA_KEY: parsed.guardrails} if parsed.guardrails else None,
        )
        output, _call = await unless_disconnected(request, api.generate(parsed.messages, [], "none", config))
        return _completion(output, parsed)

    def _completion(output: Any, parsed: ParsedRequest) -> JSONResponse:
        metadata = dict((output.metadata or {}).get(USERLM_METADATA_KEY, {}))
        if metadata.get("end_reason") is not None:
            stats.end_conversations += 1
            content, finish = END_CONVERSATION, END_FINISH_REASON
        else:
            content = output.completion
            finish = "length" if output.stop_reason == "max_tokens" else "stop"
        usage = output.usage
        prompt_tokens = usage.input_tokens if usage else 0
        completion_tokens = usage.output_tokens if usage else 0
        stats.completion_tokens += completion_tokens
        if parsed.ignored:
            metadata["ignored_fields"] = parsed.ignored
        body = {
            "id": f"chatcmpl-userlm-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": served_name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": finish,
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
            USERLM_METADATA_KEY: metadata,
        }
        return JSONResponse(json.loads(json.dumps(body, default=str)))

    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        return error_response(404, f"no route {request.method} {request.url.path}; see /v1/chat/completions")

    async def bad_method(request: Request, exc: Exception) -> JSONResponse:
        return error_response(405, f"{request.method} is not allowed on {request.url.path}")

    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        return error_for_exception(exc)

    app = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/chat/completions", chat, methods=["POST"]),
        ],
        exception_handlers={404: not_found, 405: bad_method, Exception: internal_error},
    )
    app.state.stats = stats
    app.state.api = api
    app.state.limits = limits
    return app


__all__ = [
    "END_FINISH_REASON",
    "MAX_BODY_BYTES",
    "ParsedRequest",
    "RequestError",
    "ServeLimits",
    "ServeStats",
    "create_app",
    "parse_chat_request",
]
