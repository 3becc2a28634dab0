"""`litellm/<model>`: an Inspect model provider that reaches any backend LiteLLM supports.

Usage: `--model litellm/openai/gpt-4o`, `litellm/anthropic/claude-...`, `litellm/ollama/llama3`, or any
OpenAI-compatible server with `--model litellm/openai/<served name> -M api_base=http://host:port/v1 -M api_key=x`
(`--model-base-url` works as well). Every other `-M key=value` is forwarded to `litellm.acompletion`
(e.g. `-M drop_params=true`, `-M api_version=...`, `-M mock_response=...` for offline tests).

Why a provider rather than calling LiteLLM from the solver: the assistant under test, prompted simulators and
judges then all go through Inspect's `Model`, which gives them retries with backoff, adaptive concurrency, the
model-call record in the transcript, and per-role usage in the log.

Design decisions (docs/inspect.md):
- litellm is imported only when the provider is first constructed (it costs ~3 s), and
  `LITELLM_LOCAL_MODEL_COST_MAP=True` is set before that import so it never fetches the price map.
- LiteLLM's own retries are off (`num_retries=0`, `max_retries=0`); errors are classified in `should_retry`
  so Inspect's retry/backoff (`--max-retries`, `--timeout`) and the adaptive controller see them.
- Bad requests (400-class: invalid params, unsupported params, unknown model, auth) are never retried.
  A context-window overflow becomes an output with `stop_reason="model_length"`, a content-policy refusal one
  with `stop_reason="content_filter"` (as Inspect's own OpenAI provider does); anything else fails the sample
  with a message naming the model and the request problem.
- Cost: LiteLLM's `response_cost` goes to `ModelUsage.total_cost` (None when LiteLLM has no price for the model).
- No secrets in logs: credential-looking `-M` arguments (`api_key`, `aws_secret_access_key`, `extra_headers=
  {"Authorization": ...}`, ...; the rule is in `credentials.py`) are used for every call but dropped from the
  arguments Inspect logs as `eval.model_args` (and a role's model args) and from each ModelCall request
  (docs/grading.md, "Secrets in logs").

Error mapping is in `litellm_errors.py`, the request mapping in `litellm_request.py`.
"""

from __future__ import annotations

import asyncio
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
from inspect_ai.tool import ToolChoice, ToolInfo

from .._inspect_compat import model_args_being_created, set_active_model_event_call
from ..errors import ConfigError, retries_requested
from .credentials import drop_credentials_in_place
from .litellm_errors import (
    LiteLLMBadRequest,
    LiteLLMClientSetupError,
    ModelServerUnreachable,
    classify_litellm_error,
    client_setup_failure,
    connection_failure,
    error_body,
)
from .litellm_request import config_to_litellm, logged_request, tool_choice_to_openai, tools_to_openai

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


DEFAULT_ATTEMPT_TIMEOUT_S = 600.0
"""Seconds one HTTP attempt may take when neither Inspect's config nor `-M timeout=` says (the OpenAI SDK's)."""

DEFAULT_CONNECT_RETRIES = 2
"""Quick reconnect tries (0.5 s, 1 s) before a refused connection fails the call (`-M connect_retries=`)."""


def _connect_retries(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 20:
        raise ConfigError(f"litellm/: -M connect_retries={value!r} must be an integer from 0 to 20")
    return value


def import_litellm() -> ModuleType:
    """Import litellm configured for use inside Inspect.

    Sets `LITELLM_LOCAL_MODEL_COST_MAP=True` before the first import (otherwise litellm fetches its price map
    over the network at import, and keeps retrying offline: docs/inspect.md#importing-litellm-is-slow-and-fetches-a-price-map), silences its banner, and leaves its
    callbacks empty so prompts go nowhere but Inspect's log.
    """
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    return litellm


def _new_model_call(request: dict[str, Any]) -> ModelCall:
    """Record the request (without credentials) on the active model event, so the transcript shows it even
    when the call then fails; outside a sample, a free-standing `ModelCall`."""
    return set_active_model_event_call(logged_request(request))


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
            raise ConfigError(
                f"litellm/: model name {model_name!r} is not a LiteLLM model string; "
                "use e.g. --model litellm/openai/gpt-4o or litellm/ollama/llama3"
            )
        for key, instead in MANAGED_BY_INSPECT.items():
            if key in model_args:
                raise ConfigError(f"litellm/: -M {key}=... is not accepted; use {instead} instead")
        provider = model_name.split("/")[0] if "/" in model_name else "openai"
        self.connect_retries = _connect_retries(model_args.pop("connect_retries", DEFAULT_CONNECT_RETRIES))
        api_base = model_args.pop("api_base", None) or model_args.pop("base_url", None) or base_url
        super().__init__(
            model_name=model_name,
            base_url=api_base,
            api_key=model_args.pop("api_key", None) or api_key,
            api_key_vars=[f"{provider.upper().replace('-', '_')}_API_KEY"],
            config=config,
        )
        self.provider = provider
        self.model_args = model_args  # everything, credentials included: the calls need them
        logged = model_args_being_created()  # what Inspect will log as this model's args
        if logged is not None:
            drop_credentials_in_place(logged)
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
        # Every attempt has a deadline, stated in the request the transcript shows: LiteLLM 1.110 maps its
        # 6,000 s `request_timeout` sentinel to 600 s for chat only, and that is a version detail, not a contract.
        # --attempt-timeout/--timeout or -M timeout= set it (README, "Servers that do not answer").
        request.setdefault("timeout", DEFAULT_ATTEMPT_TIMEOUT_S)
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
        for attempt in range(self.connect_retries + 1):
            try:
                response = await self._litellm.acompletion(**request)
                break
            except openai.BadRequestError as ex:
                call.set_error(error_body(ex), time.monotonic() - start)
                return self._bad_request(ex), call
            except openai.APIError as ex:
                # LiteLLM says only "Connection error.": name the endpoint that could not be reached, after a
                # few quick tries (a server restarting); Inspect retries it further only if the user asked
                cause = connection_failure(ex)
                if cause is not None:
                    if attempt < self.connect_retries:
                        await asyncio.sleep(0.5 * 2**attempt)
                        continue
                    raise ModelServerUnreachable(
                        self.model_name,
                        self.base_url,
                        cause,
                        tries=attempt + 1,
                        retried=retries_requested(config),
                    ) from ex
                # LiteLLM reports client set-up errors as a (retryable) 500: fail now instead
                setup = client_setup_failure(ex)
                if setup is not None:
                    call.set_error(error_body(setup), time.monotonic() - start)
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
