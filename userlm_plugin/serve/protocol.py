"""What `serve` accepts and how it answers errors: OpenAI chat-completions requests in, OpenAI error bodies out.

Every field the server reads is listed in docs/serving.md "Request fields". Every client mistake is a 4xx with
`{"error": {"message", "type", "param", "code"}}`, never a plain-text 500: a wrong type anywhere (a `tool_call_id`
that is not a string, a number that is a string), JSON nested too deeply to parse, a body over the size cap, text
that is not valid Unicode (a lone surrogate), more messages than the server's limit, and guardrail overrides that
would make a request do unbounded work (`max_retries` over the server's limit, too many or too long
`banned_first_words`, unknown settings), each 400 naming the limit. Errors raised while generating are sorted by the plugin's error family only
(`error_for_exception`): the caller's input (`ConfigError`) -> 400, nothing answering upstream
(`BackendUnavailableError`) -> 503, any other backend failure (`BackendError`, including an upstream server's
rejection of a request we built, `UpstreamRequestError`) -> 502, and anything else, a bug, -> 500 in the same shape.
"""

from __future__ import annotations

import reprlib
from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse

from ..errors import ConfigError
from ..turns import USERLM_METADATA_KEY

_ROLES = ("system", "developer", "user", "assistant", "tool")
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 80
_SHORT.maxlevel = 3


def short(value: Any) -> str:
    """A bounded repr for error messages (a client value may be megabytes long or nested thousands deep)."""
    try:
        return _SHORT.repr(value)
    except RecursionError:  # pragma: no cover - reprlib bounds depth; belt and braces
        return f"<{type(value).__name__}>"


@dataclass(frozen=True)
class ServeLimits:
    """Per-request bounds an untrusted client cannot lift (`userlm-plugin serve --max-...`; docs/serving.md)."""

    max_body_bytes: int = 8 * 1024 * 1024
    """Request body cap, enforced while the body streams in (chunked uploads too)."""
    max_tokens: int = 512
    """Largest `max_tokens` a request may ask for (a user turn is ~40 tokens)."""
    max_retries: int = 10
    """Largest guardrail `max_retries` a request may ask for: drafts per request <= (max_retries + 1) x 2 + 1."""
    max_messages: int = 1024
    """Most messages in one request (a long real conversation has a few hundred)."""
    max_banned_first_words: int = 64
    """Most `userlm.banned_first_words` in one request (the paper bans 3, in two cases: 6)."""
    max_banned_word_chars: int = 32
    """Longest banned first word, in characters."""
    body_timeout_s: float = 30.0
    """Seconds the whole body may take to arrive; a client that sends half a body and stalls gets a 408."""
    request_timeout_s: float = 300.0
    """Seconds a request may take from its first byte to its answer (504 after; its generation is cancelled)."""


class RequestError(Exception):
    """A client error: becomes a 4xx with this message."""

    def __init__(self, message: str, *, param: str | None = None, status: int = 400, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.status = status
        self.code = code


def error_response(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """OpenAI's error body."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": param, "code": code}},
        status_code=status,
        headers=headers,
    )


def error_for_exception(error: BaseException) -> JSONResponse:
    """The response for an exception raised while serving a request (module docstring)."""
    from ..errors import BackendError, BackendUnavailableError, ConfigError, RetryableBackendError

    if isinstance(error, RequestError):
        return error_response(error.status, error.message, param=error.param, code=error.code)
    if isinstance(error, ConfigError):  # the intent, the conversation's length, guardrail overrides
        return error_response(400, str(error), code="invalid_request")
    if isinstance(error, BackendUnavailableError):
        return error_response(503, str(error), code="backend_unavailable")
    if isinstance(error, BackendError):
        headers = None
        if isinstance(error, RetryableBackendError) and error.retry_after is not None:
            headers = {"Retry-After": str(int(error.retry_after + 0.999))}
        return error_response(502, str(error), code="upstream_error", headers=headers)
    return error_response(500, f"internal error ({type(error).__name__}): {error}", code="internal_error")


@dataclass
class ParsedRequest:
    messages: list[Any]
    max_tokens: int | None
    temperature: float | None
    top_p: float | None
    seed: int | None
    guardrails: dict[str, Any] | None
    ignored: list[str]
    stream: bool = False
    include_usage: bool = False
    """`stream_options.include_usage`: a last chunk carries `usage` (OpenAI's streaming convention)."""


def _number(body: dict[str, Any], name: str, lo: float, hi: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise RequestError(f"'{name}' must be a number in [{lo}, {hi}], got {short(value)}", param=name)
    return float(value)


def unicode_text(value: str, param: str) -> str:
    """`value` if it is valid Unicode text; a 400 naming `param` for a lone surrogate (JSON's `"\\ud800"` parses
    to one, and no tokenizer or UTF-8 encoder takes it)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise RequestError(
            f"{param} is not valid Unicode text: a lone surrogate ({value[error.start]!r}) at character "
            f"{error.start}; send UTF-8 text (surrogates only in valid pairs)",
            param=param,
            code="invalid_unicode",
        ) from None
    return value


def _text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return unicode_text(content, f"{where}.content")
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                parts.append(unicode_text(part["text"], f"{where}.content"))
            else:
                raise RequestError(
                    f"{where}.content: only text parts ({{'type': 'text', 'text': ...}}) are supported, got "
                    f"{short(part)}",
                    param=f"{where}.content",
                )
        return "\n".join(parts)
    raise RequestError(
        f"{where}.content must be a string or a list of text parts, got {short(content)}",
        param=f"{where}.content",
    )


def _message(message: Any, where: str) -> Any:
    from inspect_ai.model import ChatMessageAssistant, ChatMessageSystem, ChatMessageTool, ChatMessageUser

    if not isinstance(message, dict):
        raise RequestError(f"{where} must be an object with 'role' and 'content'", param=where)
    role = message.get("role")
    if role not in _ROLES:
        raise RequestError(
            f"{where}.role must be one of {list(_ROLES)}, got {short(role)}", param=f"{where}.role"
        )
    content = _text(message.get("content"), where)
    if role in ("system", "developer"):
        return ChatMessageSystem(content=content)
    if role == "user":
        return ChatMessageUser(content=content)
    if role == "assistant":
        return ChatMessageAssistant(content=content)
    tool_call_id = message.get("tool_call_id")
    if tool_call_id is not None and not isinstance(tool_call_id, str):
        raise RequestError(
            f"{where}.tool_call_id must be a string, got {short(tool_call_id)}", param=f"{where}.tool_call_id"
        )
    if tool_call_id is not None:
        unicode_text(tool_call_id, f"{where}.tool_call_id")
    return ChatMessageTool(content=content, tool_call_id=tool_call_id)


def _guardrails(body: dict[str, Any], limits: ServeLimits) -> dict[str, Any] | None:
    guardrails = body.get(USERLM_METADATA_KEY)
    if guardrails is None:
        return None
    if not isinstance(guardrails, dict):
        raise RequestError(
            f"'{USERLM_METADATA_KEY}' must be an object of guardrail settings, got {short(guardrails)}",
            param=USERLM_METADATA_KEY,
        )
    from ..runtime.guardrails import GuardrailConfig

    fields = GuardrailConfig.model_fields
    unknown = [k for k in guardrails if k not in fields]
    if unknown:
        names = ", ".join(short(k) for k in unknown[:5]) + (
            f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        )
        raise RequestError(
            f"Unknown guardrail setting(s) in '{USERLM_METADATA_KEY}': {names}; valid: {sorted(fields)}",
            param=USERLM_METADATA_KEY,
        )
    retries = guardrails.get("max_retries")
    if retries is not None and (
        isinstance(retries, bool)
        or not isinstance(retries, (int, float))
        or not 0 <= retries <= limits.max_retries
    ):
        raise RequestError(
            f"'{USERLM_METADATA_KEY}.max_retries' must be an integer in [0, {limits.max_retries}] (this server's "
            f"limit, `userlm-plugin serve --max-retries-limit`), got {short(retries)}",
            param=f"{USERLM_METADATA_KEY}.max_retries",
        )
    if "banned_first_words" in guardrails:
        _banned_words(guardrails["banned_first_words"], limits)
    from ..runtime.guardrails import check_overrides

    try:  # every field's type and range, so a bad value is this request's 400 naming the field
        return check_overrides(guardrails, USERLM_METADATA_KEY)
    except ConfigError as error:
        raise RequestError(str(error), param=USERLM_METADATA_KEY) from None


def _banned_words(words: Any, limits: ServeLimits) -> None:
    """`userlm.banned_first_words`: a word or a list of at most `max_banned_first_words` words of at most
    `max_banned_word_chars` characters (each word costs tokenizer work and a ban row on every draft)."""
    param = f"{USERLM_METADATA_KEY}.banned_first_words"
    listed = [words] if isinstance(words, str) else words
    if not isinstance(listed, list) or not all(isinstance(w, str) for w in listed):
        raise RequestError(f"'{param}' must be a list of strings, got {short(words)}", param=param)
    if len(listed) > limits.max_banned_first_words:
        raise RequestError(
            f"'{param}' holds {len(listed)} words; this server's limit is {limits.max_banned_first_words}",
            param=param,
            code="limit_exceeded",
        )
    for i, word in enumerate(listed):
        if len(word) > limits.max_banned_word_chars:
            raise RequestError(
                f"'{param}[{i}]' is {len(word)} characters long; this server's limit is "
                f"{limits.max_banned_word_chars}",
                param=param,
                code="limit_exceeded",
            )
        unicode_text(word, f"{param}[{i}]")


def parse_chat_request(body: Any, *, served_name: str, limits: ServeLimits) -> ParsedRequest:
    """Validate an OpenAI chat-completions body into Inspect messages and settings (RequestError when bad)."""
    if not isinstance(body, dict):
        raise RequestError(f"the request body must be a JSON object, got {type(body).__name__}")
    model = body.get("model")
    if model is not None and model != served_name:
        raise RequestError(
            f"The model {short(model)} does not exist; this server serves {served_name!r} (see GET /v1/models)",
            param="model",
            status=404,
            code="model_not_found",
        )
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise RequestError(f"'stream' must be true or false, got {short(stream)}", param="stream")
    options = body.get("stream_options")
    if options is not None and (
        not isinstance(options, dict) or not isinstance(options.get("include_usage", False), bool)
    ):
        raise RequestError(
            f"'stream_options' must be an object like {{'include_usage': true}}, got {short(options)}",
            param="stream_options",
        )
    n = body.get("n", 1)
    if n not in (1, None):
        raise RequestError(f"'n' must be 1 (one next user turn per request), got {short(n)}", param="n")
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise RequestError(
            "'messages' must be a non-empty list: the intent as a system message first, then the conversation "
            "with real roles (user = the simulated user's turns, assistant = the assistant under test)",
            param="messages",
        )
    if len(raw) > limits.max_messages:
        raise RequestError(
            f"'messages' holds {len(raw)} messages; this server's limit is {limits.max_messages} "
            "(`userlm-plugin serve --max-messages`)",
            param="messages",
            code="limit_exceeded",
        )
    messages = [_message(message, f"messages[{i}]") for i, message in enumerate(raw)]
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and (
        isinstance(max_tokens, bool)
        or not isinstance(max_tokens, int)
        or not 1 <= max_tokens <= limits.max_tokens
    ):
        raise RequestError(
            f"'max_tokens' must be an integer in [1, {limits.max_tokens}] (a user turn is ~40 tokens; the server's "
            f"limit is set by `userlm-plugin serve --max-tokens-limit`), got {short(max_tokens)}",
            param="max_tokens",
        )
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63):
        raise RequestError(f"'seed' must be an integer in [0, 2**63), got {short(seed)}", param="seed")
    ignored = sorted(
        k for k in ("tools", "tool_choice", "stop", "logit_bias", "response_format") if k in body
    )
    return ParsedRequest(
        messages=messages,
        max_tokens=max_tokens,
        temperature=_number(body, "temperature", 0.0, 2.0),
        top_p=_number(body, "top_p", 1e-9, 1.0),
        seed=seed,
        guardrails=_guardrails(body, limits),
        ignored=ignored,
        stream=bool(stream),
        include_usage=bool(stream and (options or {}).get("include_usage", False)),
    )


__all__ = [
    "ParsedRequest",
    "RequestError",
    "ServeLimits",
    "error_for_exception",
    "error_response",
    "parse_chat_request",
    "short",
    "unicode_text",
]
