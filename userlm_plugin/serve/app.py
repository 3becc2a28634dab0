"""The OpenAI-compatible app behind `userlm-plugin serve` (Starlette, which Inspect already depends on via FastAPI).

Contract, for any client that speaks OpenAI chat completions (LiteLLM `openai/<name>` with `api_base`, tau2-bench,
DeepEval...):

* Request `messages` = the conversation so far, with REAL roles: `system` = the user's intent (first, required),
  `user` = the simulated user's earlier turns, `assistant` = the assistant under test. No role flipping.
* Response `choices[0].message.content` = the next *user* turn (the message role is `assistant` because that is
  what OpenAI clients expect of a completion). Guardrails (paper Appendix D.1) and dynamic batching apply exactly
  as in `userlm/`, since the same `UserLMAPI` serves both.
* End of conversation: `finish_reason == "end_conversation"` and `content == "<|endconversation|>"` (the literal
  token, so clients that drop unknown finish reasons still see it). `finish_reason == "length"` when the turn hit
  `max_tokens`, else `"stop"`.
* Per-request guardrail overrides: a top-level `"userlm": {<GuardrailConfig fields>}` (LiteLLM: `extra_body`).
  The response carries the guardrail record (rejected drafts, retries, end reason...) under the same key.
* Malformed requests get a 4xx with an OpenAI-style `{"error": {"message", "type", "param", "code"}}` body; the
  server keeps serving. `GET /health` (JSON) and `GET /metrics` (Prometheus text) expose request and batch-size
  counters.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from ..turns import END_CONVERSATION, USERLM_METADATA_KEY
from . import END_FINISH_REASON

MAX_BODY_BYTES = 8 * 1024 * 1024
_ROLES = ("system", "developer", "user", "assistant", "tool")


class RequestError(Exception):
    """A client error: becomes a 4xx with this message."""

    def __init__(self, message: str, *, param: str | None = None, status: int = 400, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.status = status
        self.code = code


def error_response(
    status: int, message: str, *, param: str | None = None, code: str | None = None
) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": param, "code": code}}, status_code=status
    )


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


@dataclass
class ParsedRequest:
    messages: list[Any]
    max_tokens: int | None
    temperature: float | None
    top_p: float | None
    seed: int | None
    guardrails: dict[str, Any] | None
    ignored: list[str]


def _number(body: dict[str, Any], name: str, lo: float, hi: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise RequestError(f"'{name}' must be a number in [{lo}, {hi}], got {value!r}", param=name)
    return float(value)


def _text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                raise RequestError(
                    f"{where}.content: only text parts ({{'type': 'text', 'text': ...}}) are supported, got {part!r}",
                    param=f"{where}.content",
                )
        return "\n".join(parts)
    raise RequestError(
        f"{where}.content must be a string or a list of text parts, got {content!r}", param=where
    )


def parse_chat_request(body: Any, *, served_name: str, max_tokens_limit: int) -> ParsedRequest:
    """Validate an OpenAI chat-completions body into Inspect messages and settings (RequestError when bad)."""
    from inspect_ai.model import ChatMessageAssistant, ChatMessageSystem, ChatMessageTool, ChatMessageUser

    if not isinstance(body, dict):
        raise RequestError(f"the request body must be a JSON object, got {type(body).__name__}")
    model = body.get("model")
    if model is not None and model != served_name:
        raise RequestError(
            f"The model {model!r} does not exist; this server serves {served_name!r} (see GET /v1/models)",
            param="model",
            status=404,
            code="model_not_found",
        )
    if body.get("stream"):
        raise RequestError("'stream': true is not supported; send stream=false", param="stream")
    n = body.get("n", 1)
    if n not in (1, None):
        raise RequestError(f"'n' must be 1 (one next user turn per request), got {n!r}", param="n")
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise RequestError(
            "'messages' must be a non-empty list: the intent as a system message first, then the conversation "
            "with real roles (user = the simulated user's turns, assistant = the assistant under test)",
            param="messages",
        )
    messages: list[Any] = []
    for i, message in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise RequestError(f"{where} must be an object with 'role' and 'content'", param=where)
        role = message.get("role")
        if role not in _ROLES:
            raise RequestError(
                f"{where}.role must be one of {list(_ROLES)}, got {role!r}", param=f"{where}.role"
            )
        content = _text(message.get("content"), where)
        if role in ("system", "developer"):
            messages.append(ChatMessageSystem(content=content))
        elif role == "user":
            messages.append(ChatMessageUser(content=content))
        elif role == "assistant":
            messages.append(ChatMessageAssistant(content=content))
        else:
            messages.append(ChatMessageTool(content=content, tool_call_id=message.get("tool_call_id")))
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and (
        isinstance(max_tokens, bool)
        or not isinstance(max_tokens, int)
        or not 1 <= max_tokens <= max_tokens_limit
    ):
        raise RequestError(
            f"'max_tokens' must be an integer in [1, {max_tokens_limit}] (a user turn is ~40 tokens; the server's "
            f"limit is set by `userlm-plugin serve --max-tokens-limit`), got {max_tokens!r}",
            param="max_tokens",
        )
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise RequestError(f"'seed' must be an integer, got {seed!r}", param="seed")
    guardrails = body.get(USERLM_METADATA_KEY)
    if guardrails is not None and not isinstance(guardrails, dict):
        raise RequestError(
            f"'{USERLM_METADATA_KEY}' must be an object of guardrail settings, got {guardrails!r}",
            param=USERLM_METADATA_KEY,
        )
    ignored = sorted(
        k for k in ("tools", "tool_choice", "stop", "logit_bias", "response_format") if k in body
    )
    return ParsedRequest(
        messages=messages,
        max_tokens=max_tokens,
        temperature=_number(body, "temperature", 0.0, 2.0),
        top_p=_number(body, "top_p", 1e-9, 1.0),
        seed=seed,
        guardrails=guardrails,
        ignored=ignored,
    )


def _batching(api: Any) -> dict[str, Any]:
    engine = getattr(api, "engine", None)
    stats = getattr(engine, "stats", None)
    if stats is None:
        backend = getattr(api, "backend", None)
        return {"backend": getattr(backend, "kind", "unknown"), "http_calls": getattr(backend, "calls", None)}
    sizes = list(stats.batch_sizes)
    recent = sizes[-100:]
    return {
        "backend": "local",
        "batches": stats.batches,
        "rows": stats.rows,
        "max_batch_size": max(sizes, default=0),
        "mean_batch_size": round(stats.rows / stats.batches, 3) if stats.batches else 0.0,
        "recent_batch_sizes": recent,
        "max_batch_size_limit": engine.settings.max_batch_size,
    }


def create_app(api: Any, *, served_name: str, max_tokens_limit: int = 512) -> Starlette:
    """An app serving `api` (a `UserLMAPI`, local or remote backend) as `served_name`."""
    from inspect_ai.model import GenerateConfig

    from ..errors import BackendError, ConfigError, UpstreamRequestError

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
                    "end_conversations": stats.end_conversations,
                    "completion_tokens": stats.completion_tokens,
                    "mean_latency_s": round(sum(latencies) / len(latencies), 4) if latencies else None,
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

    async def chat(request: Request) -> JSONResponse:
        stats.requests += 1
        stats.in_flight += 1
        stats.peak_in_flight = max(stats.peak_in_flight, stats.in_flight)
        started = time.perf_counter()
        try:
            response = await _chat(request)
        except RequestError as error:
            response = error_response(error.status, error.message, param=error.param, code=error.code)
        finally:
            stats.in_flight -= 1
        stats.statuses[response.status_code] += 1
        if response.status_code == 200:
            latencies.append(time.perf_counter() - started)
        return response

    async def _chat(request: Request) -> JSONResponse:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
            raise RequestError(f"request body over {MAX_BODY_BYTES} bytes", status=413)
        raw = await request.body()
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as error:
            raise RequestError(f"the request body is not valid JSON: {error}") from error
        parsed = parse_chat_request(body, served_name=served_name, max_tokens_limit=max_tokens_limit)
        config = GenerateConfig(
            max_tokens=parsed.max_tokens,
            temperature=parsed.temperature,
            top_p=parsed.top_p,
            seed=parsed.seed,
            extra_body={USERLM_METADATA_KEY: parsed.guardrails} if parsed.guardrails else None,
        )
        try:
            output, _call = await api.generate(parsed.messages, [], "none", config)
        except ConfigError as error:  # bad intent, context overflow, bad guardrail overrides
            raise RequestError(str(error)) from error
        except UpstreamRequestError as error:  # the upstream server rejected what we built from this request
            raise RequestError(str(error)) from error
        except BackendError as error:
            return error_response(502, str(error), code="upstream_error")
        except Exception as error:  # noqa: BLE001 - reported to the client; the server keeps serving
            return error_response(500, f"{type(error).__name__}: {error}", code="generation_failed")
        metadata = dict((output.metadata or {}).get(USERLM_METADATA_KEY, {}))
        ended = metadata.get("end_reason") is not None
        if ended:
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
        return JSONResponse(
            json.loads(
                json.dumps(
                    {
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
                    },
                    default=str,
                )
            )
        )

    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        return error_response(404, f"no route {request.method} {request.url.path}; see /v1/chat/completions")

    async def bad_method(request: Request, exc: Exception) -> JSONResponse:
        return error_response(405, f"{request.method} is not allowed on {request.url.path}")

    app = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/chat/completions", chat, methods=["POST"]),
        ],
        exception_handlers={404: not_found, 405: bad_method},
    )
    app.state.stats = stats
    app.state.api = api
    return app


__all__ = [
    "END_FINISH_REASON",
    "ParsedRequest",
    "RequestError",
    "ServeStats",
    "create_app",
    "parse_chat_request",
]
