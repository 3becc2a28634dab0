"""`litellm/<model>`: an Inspect model provider that reaches any backend LiteLLM supports.

Usage: `--model litellm/openai/gpt-4o`, `litellm/anthropic/claude-...`, `litellm/ollama/llama3`, or any
OpenAI-compatible server with `--model litellm/openai/<served name> -M api_base=http://host:port/v1 -M api_key=x`
(`--model-base-url` works as well). Every other `-M key=value` is forwarded to `litellm.acompletion`
(e.g. `-M drop_params=true`, `-M api_version=...`, `-M mock_response=...` for offline tests).

Why a provider rather than calling LiteLLM from the solver: the assistant under test, prompted simulators and
judges then all go through Inspect's `Model`, which gives them retries with backoff, adaptive concurrency, the
model-call record in the transcript, and per-role usage in the log.

Design decisions (see shared notes `inspect_litellm.md` §6, gotchas G7/G10):
- litellm is imported only when the provider is first constructed (it costs ~3 s), and
  `LITELLM_LOCAL_MODEL_COST_MAP=True` is set before that import so it never fetches the price map.
- LiteLLM's own retries are off (`num_retries=0`, `max_retries=0`); errors are classified in `should_retry`
  so Inspect's retry/backoff (`--max-retries`, `--timeout`) and the adaptive controller see them.
- Bad requests (400-class: invalid params, unsupported params, unknown model, auth) are never retried.
  A context-window overflow becomes an output with `stop_reason="model_length"`, a content-policy refusal one
  with `stop_reason="content_filter"` (as Inspect's own OpenAI provider does); anything else fails the sample
  with a message naming the model and the request problem.
- Cost: LiteLLM's `response_cost` goes to `ModelUsage.total_cost` (None when LiteLLM has no price for the model).
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any

from inspect_ai.model import (
    ChatMessage,
    GenerateConfig,
    ModelAPI,
    ModelCall,
    ModelOutput,
    RetryDecision,
    messages_to_openai,
    model_output_from_openai,
)
from inspect_ai.tool import ToolChoice, ToolFunction, ToolInfo

if TYPE_CHECKING:
    from types import ModuleType

MANAGED_BY_INSPECT = {
    "num_retries": "--max-retries (Inspect retries with backoff)",
    "max_retries": "--max-retries (Inspect retries with backoff)",
    "stream": "nothing (this provider does not stream)",
    "messages": "the conversation itself",
    "model": "the model name after litellm/",
}
"""`-M` arguments this provider refuses, with the Inspect option to use instead."""

_RETRYABLE_STATUS = {408, 409, 425, 500, 502, 503, 504, 520, 521, 522, 523, 524, 529}


def import_litellm() -> ModuleType:
    """Import litellm configured for use inside Inspect.

    Sets `LITELLM_LOCAL_MODEL_COST_MAP=True` before the first import (otherwise litellm fetches its price map
    over the network at import, and keeps retrying offline: notes G10), silences its banner, and leaves its
    callbacks empty so prompts go nowhere but Inspect's log.
    """
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    return litellm


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
        return RetryDecision.transient()
    if isinstance(
        ex,
        openai.BadRequestError
        | openai.AuthenticationError
        | openai.PermissionDeniedError
        | openai.NotFoundError
        | openai.UnprocessableEntityError,
    ):
        return None
    if isinstance(ex, openai.APIConnectionError):  # includes APITimeoutError (litellm.Timeout)
        return RetryDecision.transient()
    status = getattr(ex, "status_code", None)
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


class LiteLLMClientSetupError(Exception):
    """The request could not even be sent (missing credentials, bad client settings). Not retried."""

    def __init__(self, model: str, cause: Exception) -> None:
        self.model = model
        super().__init__(
            f"litellm/{model}: the client could not send the request ({cause}). Set the provider's API key "
            "variable, or pass the key (any string for a local OpenAI-compatible server): -M api_key=... reaches "
            "--model only; for a role model put it in the role's model_args, e.g. "
            f"--model-role 'user={{model: litellm/{model}, model_args: {{api_key: ...}}}}'."
        )


class ModelServerUnreachable(Exception):
    """The model server could not be reached (connection refused/reset). Retried as transient by Inspect."""

    def __init__(self, model: str, api_base: str | None, cause: ConnectionError) -> None:
        self.model = model
        self.api_base = api_base
        where = api_base or "the provider's default endpoint"
        super().__init__(
            f"litellm/{model}: cannot connect to {where} ({type(cause).__name__}: {cause}); is the server running?"
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


def tools_to_openai(tools: list[ToolInfo]) -> list[dict[str, Any]]:
    """Inspect tool definitions -> OpenAI `tools` (LiteLLM translates them for other providers)."""
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.parameters.model_dump(exclude_none=True),
            },
        }
        for tool in tools
    ]


def tool_choice_to_openai(tool_choice: ToolChoice) -> str | dict[str, Any]:
    """Inspect `tool_choice` -> OpenAI's: `"any"` is OpenAI's `"required"`, a `ToolFunction` a named choice."""
    if isinstance(tool_choice, ToolFunction):
        return {"type": "function", "function": {"name": tool_choice.name}}
    return "required" if tool_choice == "any" else tool_choice


def config_to_litellm(config: GenerateConfig, has_tools: bool) -> dict[str, Any]:
    """The generation settings Inspect passes (only those set) as `litellm.acompletion` keyword arguments.

    `timeout` is per HTTP attempt: Inspect's `attempt_timeout` when given, else its overall `timeout`
    (Inspect enforces both itself as well; this makes the HTTP client give up at the same time).
    """
    params: dict[str, Any] = {}
    direct = {
        "temperature": config.temperature,
        "top_p": config.top_p,
        "top_k": config.top_k,
        "max_tokens": config.max_tokens,
        "seed": config.seed,
        "frequency_penalty": config.frequency_penalty,
        "presence_penalty": config.presence_penalty,
        "logit_bias": config.logit_bias,
        "n": config.num_choices,
        "logprobs": config.logprobs,
        "top_logprobs": config.top_logprobs,
        "reasoning_effort": config.reasoning_effort,
        "extra_headers": config.extra_headers,
        "extra_body": config.extra_body,
    }
    params.update({k: v for k, v in direct.items() if v is not None})
    if config.stop_seqs:
        params["stop"] = list(config.stop_seqs)
    if has_tools and config.parallel_tool_calls is not None:
        params["parallel_tool_calls"] = config.parallel_tool_calls
    timeout = config.attempt_timeout if config.attempt_timeout is not None else config.timeout
    if timeout is not None:
        params["timeout"] = timeout
    if config.response_schema is not None:
        schema = config.response_schema
        json_schema: dict[str, Any] = {
            "name": schema.name,
            "schema": schema.json_schema.model_dump(exclude_none=True),
        }
        if schema.description:
            json_schema["description"] = schema.description
        if schema.strict is not None:
            json_schema["strict"] = schema.strict
        params["response_format"] = {"type": "json_schema", "json_schema": json_schema}
    return params


def _loggable(value: Any) -> Any:
    """A JSON-safe copy of a request value for the transcript (an exception given as `mock_response`, ...)."""
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        if isinstance(value, dict):
            return {str(k): _loggable(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [_loggable(v) for v in value]
        return repr(value)


def _new_model_call(request: dict[str, Any]) -> ModelCall:
    """Record the request (never the api key) on the active model event, so the transcript shows it even
    when the call then fails; outside a sample, a free-standing `ModelCall`."""
    logged = {k: _loggable(v) for k, v in request.items() if k != "api_key"}
    from .._inspect_compat import set_active_model_event_call

    return set_active_model_event_call(logged)


class LiteLLMAPI(ModelAPI):
    """Inspect `ModelAPI` over `litellm.acompletion` (see the module docstring for usage)."""

    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        config: GenerateConfig = GenerateConfig(),  # noqa: B008 (the ModelAPI signature Inspect calls)
        **model_args: Any,
    ) -> None:
        if not model_name or model_name.strip("/") != model_name:
            raise ValueError(
                f"litellm/: model name {model_name!r} is not a LiteLLM model string; "
                "use e.g. --model litellm/openai/gpt-4o or litellm/ollama/llama3"
            )
        for key, instead in MANAGED_BY_INSPECT.items():
            if key in model_args:
                raise ValueError(f"litellm/: -M {key}=... is not accepted; use {instead} instead")
        provider = model_name.split("/")[0] if "/" in model_name else "openai"
        api_base = model_args.pop("api_base", None) or model_args.pop("base_url", None) or base_url
        super().__init__(
            model_name=model_name,
            base_url=api_base,
            api_key=model_args.pop("api_key", None) or api_key,
            api_key_vars=[f"{provider.upper().replace('-', '_')}_API_KEY"],
            config=config,
        )
        self.provider = provider
        self.model_args = model_args
        self._litellm = import_litellm()

    def connection_key(self) -> str:
        """One connection pool (and adaptive-concurrency controller) per LiteLLM provider and endpoint."""
        return f"{self.provider}@{self.base_url or 'default'}"

    def should_retry(self, ex: Exception) -> bool | RetryDecision:
        return classify_litellm_error(ex) or False

    def is_auth_failure(self, ex: Exception) -> bool:
        import openai

        return isinstance(ex, openai.AuthenticationError)

    def request(
        self,
        messages: list[dict[str, Any]],
        tools: list[ToolInfo],
        tool_choice: ToolChoice,
        config: GenerateConfig,
    ) -> dict[str, Any]:
        """The `litellm.acompletion` keyword arguments for one call (also what the transcript shows)."""
        request: dict[str, Any] = {"model": self.model_name, "messages": messages}
        if tools:
            request["tools"] = tools_to_openai(tools)
            request["tool_choice"] = tool_choice_to_openai(tool_choice)
        request.update(config_to_litellm(config, has_tools=bool(tools)))
        request.update(self.model_args)  # -M wins over GenerateConfig
        if self.base_url:
            request["api_base"] = self.base_url
        if self.api_key:
            request["api_key"] = self.api_key
        request["num_retries"] = 0  # Inspect retries (should_retry); LiteLLM's own retries would hide errors
        request["max_retries"] = 0  # ... and so would the OpenAI client's (3 requests per call by default)
        return request

    async def generate(
        self,
        input: list[ChatMessage],
        tools: list[ToolInfo],
        tool_choice: ToolChoice,
        config: GenerateConfig,
    ) -> tuple[ModelOutput | Exception, ModelCall]:
        import openai

        request = self.request(await messages_to_openai(input), tools, tool_choice, config)
        call = _new_model_call(request)
        start = time.monotonic()
        try:
            response = await self._litellm.acompletion(**request)
        except openai.BadRequestError as ex:
            call.set_error(_error_body(ex), time.monotonic() - start)
            return self._bad_request(ex), call
        except openai.APIError as ex:
            # LiteLLM says only "Connection error.": name the endpoint that could not be reached
            cause = connection_failure(ex)
            if cause is not None:
                raise ModelServerUnreachable(self.model_name, self.base_url, cause) from ex
            # LiteLLM reports client set-up errors as a (retryable) 500: fail now instead
            setup = client_setup_failure(ex)
            if setup is not None:
                call.set_error(_error_body(setup), time.monotonic() - start)
                return LiteLLMClientSetupError(self.model_name, setup), call
            raise
        elapsed = time.monotonic() - start
        dumped = response.model_dump()
        call.set_response(dumped, elapsed)
        output = await model_output_from_openai(dumped)
        output.time = elapsed
        cost = (getattr(response, "_hidden_params", None) or {}).get("response_cost")
        if output.usage is not None:
            output.usage.total_cost = float(cost) if cost is not None else None
        return output, call

    def _bad_request(self, ex: Exception) -> ModelOutput | Exception:
        """Context overflow and content refusals are answers (as in Inspect's OpenAI provider); any other bad
        request fails the sample, with a message that names the model."""
        litellm = self._litellm
        message = str(getattr(ex, "message", "") or ex)
        if isinstance(ex, litellm.ContextWindowExceededError):
            return ModelOutput.from_content(self.model_name, message, stop_reason="model_length")
        if isinstance(ex, litellm.ContentPolicyViolationError):
            return ModelOutput.from_content(self.model_name, message, stop_reason="content_filter")
        return LiteLLMBadRequest(self.model_name, ex)


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


def _error_body(ex: Exception) -> Any:
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
