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
- No secrets in logs (docs/grading.md#secrets-in-logs): credentials (`api_key`, `aws_secret_access_key`, every
  header not known to be harmless, URL userinfo and query values; the rule is in `credentials.py`) are used for
  every call but taken out of the arguments Inspect logs as `eval.model_args` (and a role's model args and base
  URL) and of each ModelCall request; every configured secret value is scrubbed from the errors this provider
  raises or returns, their chains and bodies (`scrub.py`).

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
from ..errors import ConfigError, RedactedError, retries_requested
from .credentials import (
    clean_in_place,
    loggable,
    redact_url,
    refuse_logged_base_url,
    refuse_redacted_url,
)
from .litellm_errors import (
    LiteLLMBadRequest,
    LiteLLMClientSetupError,
    LiteLLMClientSideError,
    ModelServerUnreachable,
    classify_litellm_error,
    client_setup_failure,
    client_side_failure,
    connection_failure,
    error_body,
)
from .litellm_request import config_to_litellm, logged_request, tool_choice_to_openai, tools_to_openai
from .scrub import Secrets, environment_secrets, register_secrets, scrubbed_error

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


def _new_model_call(request: dict[str, Any], secrets: Secrets) -> ModelCall:
    """Record the request (without credentials) on the active model event, so the transcript shows it even
    when the call then fails; outside a sample, a free-standing `ModelCall`."""
    return set_active_model_event_call(logged_request(request, secrets))


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
        self.key_var = f"{provider.upper().replace('-', '_')}_API_KEY"
        refuse_redacted_url(f"litellm/{model_name}", "api_base", api_base, self.key_var)
        refuse_logged_base_url(
            f"litellm/{model_name}",
            base_url,
            "Pass it as -M api_base=... instead (its credentials are then kept out of the log), or keep them out "
            f"of the URL: -M api_key=... or {self.key_var}.",
        )
        found: set[str] = set()
        super().__init__(
            model_name=model_name,
            # what Inspect logs as a role's base URL: without its credentials; the calls use `api_base`
            base_url=redact_url(api_base, found) if isinstance(api_base, str) else api_base,
            api_key=model_args.pop("api_key", None) or api_key,
            api_key_vars=[self.key_var],
            config=config,
        )
        self.api_base = api_base
        """The endpoint as given, credentials included (`base_url` is its logged copy)."""
        self.provider = provider
        self.model_args = model_args  # everything, credentials included: the calls need them
        loggable(model_args, found)
        logged = model_args_being_created()  # what Inspect will log as this model's args
        if logged is not None:
            clean_in_place(logged, found)
        self.secrets = Secrets([*found, self.api_key, *environment_secrets()])
        """Every configured secret value, scrubbed from what this provider hands to Inspect's log."""
        register_secrets(self.secrets)  # and from the libraries' log records
        self._litellm = import_litellm()

    def connection_key(self) -> str:
        """One connection pool (and adaptive-concurrency controller) per LiteLLM provider and endpoint."""
        return f"{self.provider}@{self.base_url or 'default'}"

    def should_retry(self, ex: Exception) -> bool | RetryDecision:
        if isinstance(ex, RedactedError):
            return ex.retry or False  # decided on the original, before its secrets were scrubbed
        return classify_litellm_error(ex) or False

    def is_auth_failure(self, ex: Exception) -> bool:
        import openai

        if isinstance(ex, RedactedError):
            return ex.auth_failure
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
        if self.api_base:
            request["api_base"] = self.api_base
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
        # the headers and body of this call's generate config are secrets too (Inspect logs that config itself:
        # docs/grading.md#secrets-in-logs)
        found: set[str] = set()
        loggable({"extra_headers": config.extra_headers or {}, "extra_body": config.extra_body or {}}, found)
        secrets = self.secrets | Secrets(found) if found else self.secrets
        if found:
            register_secrets(secrets)
        try:
            output, call = await self._generate(input, tools, tool_choice, config, secrets)
        except Exception as ex:
            error = scrubbed_error(
                ex, secrets, retry=self.should_retry(ex), auth_failure=self.is_auth_failure(ex)
            )
            if error is ex:
                raise
            traceback = ex.__traceback__
        else:
            if isinstance(output, Exception):
                output = scrubbed_error(output, secrets)  # type: ignore[assignment]
            return output, call
        # outside the except block, so Python attaches no context: the original's text never reaches the log
        raise error.with_traceback(traceback) from None

    async def _generate(
        self,
        input: list[ChatMessage],
        tools: list[ToolInfo],
        tool_choice: ToolChoice,
        config: GenerateConfig,
        secrets: Secrets,
    ) -> tuple[ModelOutput | Exception, ModelCall]:
        import openai

        request = self.request(await messages_to_openai(input), tools, tool_choice, config)
        call = _new_model_call(request, secrets)
        start = time.monotonic()
        for attempt in range(self.connect_retries + 1):
            try:
                response = await self._litellm.acompletion(**request)
                break
            except openai.BadRequestError as ex:
                call.set_error(secrets.scrub_value(error_body(ex)), time.monotonic() - start)
                return self._bad_request(ex, secrets), call
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
                # LiteLLM reports client set-up errors and the HTTP client's own refusals (a ValueError: e.g. a
                # URL with credentials beside an API key) as a (retryable) 500: fail now instead
                setup = client_setup_failure(ex)
                if setup is not None:
                    call.set_error(secrets.scrub_value(error_body(setup)), time.monotonic() - start)
                    return LiteLLMClientSetupError(self.model_name, setup, self.key_var), call
                local = client_side_failure(ex)
                if local is not None:
                    call.set_error(secrets.scrub_value(error_body(local)), time.monotonic() - start)
                    return LiteLLMClientSideError(self.model_name, self.base_url, local), call
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

    def _bad_request(self, ex: Exception, secrets: Secrets) -> ModelOutput | Exception:
        """Context overflow and content refusals are answers (as in Inspect's OpenAI provider); any other bad
        request fails the sample, with a message that names the model."""
        litellm = self._litellm
        message = secrets.scrub(str(getattr(ex, "message", "") or ex))
        if isinstance(ex, litellm.ContextWindowExceededError):
            return ModelOutput.from_content(self.model_name, message, stop_reason="model_length")
        if isinstance(ex, litellm.ContentPolicyViolationError):
            return ModelOutput.from_content(self.model_name, message, stop_reason="content_filter")
        return LiteLLMBadRequest(self.model_name, ex)
