"""Inspect's generate config and tools as `litellm.acompletion` arguments, and the request as it is logged.

The logged copy (`logged_request`) never holds credentials: the api key, every argument or body field whose name
is a credential and every header not known to be harmless are dropped from it, URLs lose their userinfo and query
values, and any configured secret left is scrubbed by value (`credentials.py`, `scrub.py`); the call itself gets
everything.
"""

from __future__ import annotations

import json
from typing import Any

from inspect_ai.model import GenerateConfig
from inspect_ai.tool import ToolChoice, ToolFunction, ToolInfo

from .credentials import loggable
from .scrub import Secrets


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
        # OpenAI's JSON wants token ids as string keys; LiteLLM 1.110 fails on Inspect's int keys with an
        # AttributeError it reports as a (retryable) APIConnectionError
        "logit_bias": {str(k): v for k, v in config.logit_bias.items()} if config.logit_bias else None,
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


CONVERSATION_KEYS = ("messages", "tools", "tool_choice")
"""Request entries that are the conversation (logged by Inspect in the model event anyway): shown as they are."""


def logged_request(request: dict[str, Any], secrets: Secrets | None = None) -> dict[str, Any]:
    """What the transcript shows of a request: JSON-safe, without credentials, `secrets` scrubbed by value."""
    secrets = secrets or Secrets()
    settings = {k: v for k, v in request.items() if k not in CONVERSATION_KEYS}
    cleaned = secrets.scrub_value({k: _loggable(v) for k, v in loggable(settings).items()})
    logged: dict[str, Any] = {}
    for key, value in request.items():  # in the request's order
        if key in CONVERSATION_KEYS:
            logged[key] = _loggable(value)
        elif key in cleaned:
            logged[key] = cleaned[key]
    return logged
