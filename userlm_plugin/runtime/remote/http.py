"""One POST to `/v1/completions`, with server failures sorted into the error family.

    429                                   -> RetryableBackendError("rate_limit", Retry-After): Inspect backs off
    5xx, 408, read timeout, dropped conn. -> RetryableBackendError("transient"): Inspect retries
    connection refused (after quick tries) -> BackendUnavailableError: the sample fails with the URL (retried only
                                              when the user set --max-retries/--timeout: provider.py)
    other 4xx                              -> UpstreamRequestError with the server's own message (also a 500
                                              that is a request validation error: llama-cpp-python's way)
    200 without JSON                       -> BackendError

An `httpx.AsyncClient` belongs to one event loop, and Inspect may run several (tests, `asyncio.run` per call), so
there is one client and one concurrency limit per loop.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from ...errors import BackendError, BackendUnavailableError, RetryableBackendError, UpstreamRequestError
from ...providers.scrub import Secrets
from ..settings import RemoteArgs

API_KEY_ENV = "USERLM_API_KEY"
"""The variable the remote backend reads its key from when `-M api_key` is not given."""


class _LoopState:
    def __init__(self, client: Any, limit: int) -> None:
        self.client = client
        self.semaphore = asyncio.Semaphore(limit)


class CompletionsClient:
    """POSTs request bodies to `url`; `where` names the model and URL in every error."""

    def __init__(
        self,
        url: str,
        api_key: str | None,
        args: RemoteArgs,
        *,
        where: str,
        server_model: str,
        secrets: Secrets | None = None,
    ) -> None:
        self.url = url
        self.api_key = api_key
        self.args = args
        self.where = where
        """The model and URL as every error names them (the URL without credentials: credentials.py)."""
        self.server_model = server_model
        self.secrets = secrets or Secrets([api_key])
        """Scrubbed by value from every server message quoted in an error (a server may echo the key)."""
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )

    def semaphore(self) -> asyncio.Semaphore:
        """The running loop's limit on drafts in flight (`max_concurrency`)."""
        return self._state().semaphore

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

    async def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """The server's JSON answer to `body`, or an error of the family (module docstring)."""
        import httpx

        client = self._state().client
        where = self.where
        for attempt in range(self.args.connect_retries + 1):
            try:
                response = await client.post(self.url, json=body)
                break
            except (httpx.ConnectError, httpx.ConnectTimeout) as error:
                if attempt < self.args.connect_retries:
                    await asyncio.sleep(0.5 * 2**attempt)
                    continue
                raise BackendUnavailableError(
                    f"{where}: cannot connect ({type(error).__name__}: {error}) after "
                    f"{self.args.connect_retries + 1} tries. Is the server running and is -M base_url right "
                    "(e.g. http://127.0.0.1:8000/v1)? Not retried (a dead server fails the sample); pass --max-retries or "
                    "--timeout to keep retrying."
                ) from error
            except httpx.TimeoutException as error:
                raise RetryableBackendError(
                    f"{where}: no answer within {self.args.timeout:.0f} s ({type(error).__name__}); retried by "
                    "Inspect (bound it with --max-retries/--timeout; raise -M timeout= for slow servers)",
                    "transient",
                ) from error
            except (httpx.LocalProtocolError, httpx.UnsupportedProtocol) as error:
                # our request cannot be sent (an API key with a newline, ...): the same every time, never retried
                raise BackendError(
                    f"{where}: the request cannot be sent ({type(error).__name__}: "
                    f"{self.secrets.scrub(str(error))}); check -M base_url and -M api_key / {API_KEY_ENV}"
                ) from None
            except httpx.TransportError as error:  # dropped connection, protocol error
                raise RetryableBackendError(
                    f"{where}: connection failed mid-request ({type(error).__name__}: {error}); retried by Inspect",
                    "transient",
                ) from error
        status = response.status_code
        if status == 200:
            try:
                data = response.json()
            except ValueError as error:
                raise BackendError(
                    f"{where}: answered 200 with a non-JSON body: {self.secrets.scrub(response.text[:300])}"
                ) from error
            if not isinstance(data, dict):
                raise BackendError(
                    f"{where}: answered 200 with JSON that is not an object: {self.secrets.scrub(str(data)[:300])}"
                )
            return data
        message = self.secrets.scrub(error_message(response))
        retry_after = retry_after_seconds(response)
        if status == 429:
            raise RetryableBackendError(f"{where}: rate limited (429): {message}", "rate_limit", retry_after)
        # llama-cpp-python answers a request it cannot parse with a 500: retrying that cannot help
        unparsable = status >= 500 and "validation error" in message.lower()
        if (status >= 500 or status == 408) and not unparsable:
            raise RetryableBackendError(
                f"{where}: server error {status}: {message}", "transient", retry_after
            )
        if status in (401, 403):
            raise UpstreamRequestError(
                f"{where}: the server refused the credentials ({status}): {message}. Pass the key with -M "
                f"api_key=... (a role's model_args) or set {API_KEY_ENV}; under `inspect eval-retry`, which takes "
                f"no -M, set {API_KEY_ENV}: keys are never written to the log, so the retried run does not have "
                "the one the first run was given."
            )
        raise UpstreamRequestError(
            f"{where}: the server rejected the request ({status}): {message}. Check -M server_model (the "
            f"served model name, now {self.server_model!r}), server_params, prompt_format (llama-cpp-python "
            "takes no token-id prompts) and that the server has a /v1/completions endpoint."
        )

    async def aclose(self) -> None:
        """Close the HTTP client of the running loop (others close with their loop)."""
        state = self._states.pop(asyncio.get_running_loop(), None)
        if state is not None:
            await state.client.aclose()


def error_message(response: Any) -> str:
    """The server's own error text: OpenAI's `error.message`, FastAPI's `detail`, or the body."""
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


def retry_after_seconds(response: Any) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


__all__ = ["API_KEY_ENV", "CompletionsClient", "error_message", "retry_after_seconds"]
