"""LiteLLM's exceptions mapped to Inspect's retry classes, and the errors the `litellm/` provider raises itself.

Every LiteLLM exception subclasses the matching `openai` SDK exception, so classes are checked on the `openai`
bases. Bad requests (400-class) are never retried; a refused connection and client set-up failures, which LiteLLM
reports as 500s, are told apart here so the first is retried (with the endpoint named) and the second fails at once.
"""

from __future__ import annotations

from typing import Any

from inspect_ai.model import RetryDecision

_RETRYABLE_STATUS = {408, 409, 425, 500, 502, 503, 504, 520, 521, 522, 523, 524, 529}


def classify_litellm_error(ex: BaseException) -> RetryDecision | None:
    """Map a LiteLLM exception to Inspect's retry classes (None: do not retry).

    Every LiteLLM exception subclasses the matching `openai` SDK exception, so the classes are checked on
    the `openai` bases: 429 -> rate limit (scales the adaptive controller down); timeouts, refused or dropped
    connections (LiteLLM reports a refused connection as a 500 `InternalServerError`) and 5xx -> transient;
    400-class errors (bad request, auth, not found, unprocessable) -> not retried, they fail the same way
    every time.
    """
    import openai

    if isinstance(ex, openai.RateLimitError):
        return RetryDecision.rate_limit(retry_after=_retry_after(ex))
    if isinstance(ex, ModelServerUnreachable):
        return RetryDecision.transient() if ex.retried else None
    if isinstance(
        ex,
        openai.BadRequestError
        | openai.AuthenticationError
        | openai.PermissionDeniedError
        | openai.NotFoundError
        | openai.UnprocessableEntityError,
    ):
        return None
    if isinstance(ex, openai.APITimeoutError):  # litellm.Timeout
        return RetryDecision.transient()
    if isinstance(ex, openai.APIConnectionError):
        # LiteLLM also wraps its own client-side bugs (an AttributeError while building the request) as a
        # connection error: retrying those would loop forever, so only a real network failure is transient
        return RetryDecision.transient() if network_failure(ex) is not None else None
    if client_side_failure(ex) is not None:
        return (
            None  # the HTTP client refused the request before sending it (LiteLLM says 500): same every time
        )
    status = getattr(ex, "status_code", None)
    if isinstance(status, int) and status >= 500 and "validation error" in str(ex).lower():
        return None  # llama-cpp-python's answer to a request it cannot parse: a 400 in all but its status
    if isinstance(status, int):
        if status == 429:
            return RetryDecision.rate_limit(retry_after=_retry_after(ex))
        if status in _RETRYABLE_STATUS or status >= 500:
            return RetryDecision.transient(retry_after=_retry_after(ex))
        return None
    return None


def connection_failure(ex: BaseException) -> ConnectionError | None:
    """The socket-level `ConnectionError` (refused, reset, aborted) behind a LiteLLM error, if that is what it
    is. LiteLLM reports a refused connection as a 500 `InternalServerError` saying only "Connection error."."""
    seen: BaseException | None = ex
    for _ in range(12):  # bounded walk down the __cause__/__context__ chain
        if seen is None:
            return None
        if isinstance(seen, ConnectionError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def network_failure(ex: BaseException) -> BaseException | None:
    """The network-level error (socket, HTTP transport, timeout) behind a LiteLLM connection error, if any."""
    import httpx

    network = (ConnectionError, TimeoutError, httpx.TransportError)
    try:
        import aiohttp

        network = (*network, aiohttp.ClientError)
    except ImportError:
        pass
    seen: BaseException | None = ex.__cause__ or ex.__context__
    for _ in range(12):
        if seen is None:
            return None
        if isinstance(seen, network):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def client_setup_failure(ex: BaseException) -> Exception | None:
    """An error the OpenAI client raised before sending anything (e.g. missing credentials), behind a LiteLLM
    500. It would fail identically on every retry."""
    import openai

    seen: BaseException | None = ex.__cause__ or ex.__context__
    for _ in range(12):
        if seen is None:
            return None
        if isinstance(seen, openai.OpenAIError) and not isinstance(seen, openai.APIError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


_CLIENT_SIDE = (
    ValueError,
    TypeError,
    AttributeError,
    LookupError,
    NotImplementedError,
    AssertionError,
)
"""Plain Python errors behind a LiteLLM error: raised on our side of the wire, so they fail the same way again."""


def client_side_failure(ex: BaseException) -> BaseException | None:
    """The plain Python error (a `ValueError` from the HTTP client, an `AttributeError` in LiteLLM) behind a
    LiteLLM error, when nothing was sent: e.g. aiohttp's "Cannot combine AUTHORIZATION header with ... credentials
    encoded in URL" for an `api_base` with a password, which LiteLLM reports as a retryable 500. A network error
    anywhere in the chain means the request did go out: then None."""
    if network_failure(ex) is not None:
        return None
    seen: BaseException | None = ex.__cause__ or ex.__context__
    for _ in range(12):
        if seen is None:
            return None
        if isinstance(seen, _CLIENT_SIDE) and not type(seen).__module__.startswith(("openai", "litellm")):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class LiteLLMClientSetupError(Exception):
    """The request could not even be sent (missing credentials, bad client settings). Not retried."""

    def __init__(
        self, model: str, cause: Exception, key_var: str = "the provider's API key variable"
    ) -> None:
        self.model = model
        super().__init__(
            f"litellm/{model}: the client could not send the request ({cause}). Set {key_var}, or pass the key "
            "(any string for a local OpenAI-compatible server): -M api_key=... or --model-config reaches --model "
            "only; for a role model put it in the role's model_args, e.g. "
            f"--model-role 'user={{model: litellm/{model}, model_args: {{api_key: ...}}}}'. Under `inspect "
            f"eval-retry` (which takes no -M) set {key_var}: keys are never written to the log, so the retried "
            "run does not have the one the first run was given."
        )


class LiteLLMClientSideError(Exception):
    """The HTTP client refused to send the request (LiteLLM reports it as a 500). Not retried: it would fail the
    same way every time, and Inspect retries a 500 forever unless --max-retries/--timeout is set."""

    def __init__(self, model: str, api_base: str | None, cause: BaseException) -> None:
        self.model = model
        where = api_base or "the provider's default endpoint"
        hint = (
            " The URL carries credentials (user:password@), which the client cannot send beside the API key's "
            "Authorization header: take them out of the URL and pass the key with -M api_key=... or a header in "
            "-M extra_headers=...."
            if api_base and "@" in api_base.split("//", 1)[-1].split("/", 1)[0]
            else ""
        )
        super().__init__(
            f"litellm/{model}: the request to {where} failed in the client before anything was sent "
            f"({type(cause).__name__}: {cause}); not retried.{hint}"
        )


class ModelServerUnreachable(Exception):
    """The model server could not be reached (connection refused/reset) after the provider's quick tries.

    Retried by Inspect only when the user bounded the retries (`retried`: `--max-retries` or `--timeout` set);
    otherwise the sample fails with this one line, instead of Inspect's default of retrying forever.
    """

    def __init__(
        self,
        model: str,
        api_base: str | None,
        cause: ConnectionError,
        *,
        tries: int = 1,
        retried: bool = True,
    ) -> None:
        self.model = model
        self.api_base = api_base
        self.retried = retried
        where = api_base or "the provider's default endpoint"
        then = (
            "retried within your --max-retries/--timeout"
            if retried
            else "not retried (pass --max-retries or --timeout to keep retrying)"
        )
        super().__init__(
            f"litellm/{model}: cannot connect to {where} ({type(cause).__name__}: {cause}) after {tries} "
            f"{'try' if tries == 1 else 'tries'}; is the server running? {then}"
        )


def _retry_after(ex: BaseException) -> float | None:
    """Seconds from a `Retry-After` header, when the server sent one (recorded, not yet used by Inspect)."""
    response = getattr(ex, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    try:
        value = headers.get("retry-after")
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


class LiteLLMBadRequest(Exception):
    """A request the backend rejected (HTTP 400 class). Not retried: it would fail the same way again."""

    def __init__(self, model: str, cause: Exception) -> None:
        self.model = model
        self.cause = cause
        self.status_code = getattr(cause, "status_code", 400)
        super().__init__(
            f"litellm/{model} rejected the request ({type(cause).__name__}, not retried): {cause}. "
            "Check the -M arguments and generate config (an unsupported parameter can be dropped with "
            "-M drop_params=true)."
        )


def error_body(ex: Exception) -> Any:
    body = getattr(ex, "body", None)
    if isinstance(body, dict):
        return body
    return {
        "error": {
            "type": type(ex).__name__,
            "status_code": getattr(ex, "status_code", None),
            "message": str(ex),
        }
    }
