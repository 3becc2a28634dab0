"""The `litellm/` provider offline: request mapping, output/usage/cost mapping, and error mapping with LiteLLM's
own `mock_response` machinery (a real `litellm.acompletion` call that raises the real exception classes)."""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from inspect_ai import Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.model import (
    ChatMessageAssistant,
    ChatMessageTool,
    ChatMessageUser,
    GenerateConfig,
    ModelOutput,
    ResponseSchema,
    get_model,
)
from inspect_ai.solver import generate
from inspect_ai.tool import ToolCall, ToolFunction, ToolInfo, ToolParam, ToolParams
from inspect_ai.util import JSONSchema
from tenacity import wait_none

import userlm_plugin._registry  # noqa: F401
from userlm_plugin.providers.credentials import is_credential, without_credentials
from userlm_plugin.providers.litellm_api import LiteLLMAPI
from userlm_plugin.providers.litellm_errors import (
    LiteLLMBadRequest,
    LiteLLMClientSetupError,
    ModelServerUnreachable,
    classify_litellm_error,
)
from userlm_plugin.providers.litellm_request import config_to_litellm

MODEL = "litellm/openai/gpt-4o-mini"  # priced in LiteLLM's bundled price map
ADD = ToolInfo(
    name="add",
    description="Add two integers",
    parameters=ToolParams(
        properties={"a": ToolParam(type="integer"), "b": ToolParam(type="integer")}, required=["a", "b"]
    ),
)


def api(model: str = MODEL, **model_args: Any) -> LiteLLMAPI:
    m = get_model(model, memoize=False, **model_args)
    assert isinstance(m.api, LiteLLMAPI)
    return m.api


async def call(a: LiteLLMAPI, config: GenerateConfig | None = None, **kw: Any) -> tuple[Any, Any]:
    return await a.generate(
        kw.get("input", [ChatMessageUser(content="hi")]),
        kw.get("tools", []),
        kw.get("tool_choice", "auto"),
        config or GenerateConfig(),
    )


async def test_generate_maps_output_usage_cost_and_records_call_without_key() -> None:
    a = api(mock_response="Hello from mock", api_key="sk-secret")
    output, model_call = await call(a, GenerateConfig(temperature=0.3, max_tokens=50))
    assert isinstance(output, ModelOutput)
    assert output.completion == "Hello from mock"
    assert output.stop_reason == "stop"
    assert output.usage is not None and output.usage.input_tokens == 10 and output.usage.output_tokens == 20
    assert output.usage.total_cost is not None and output.usage.total_cost > 0
    assert "api_key" not in model_call.request and "sk-secret" not in str(model_call.request)
    assert model_call.request["num_retries"] == 0 and model_call.request["max_retries"] == 0
    assert model_call.request["temperature"] == 0.3 and model_call.request["max_tokens"] == 50
    assert model_call.response["choices"][0]["message"]["content"] == "Hello from mock"


async def test_cost_is_none_when_litellm_has_no_price() -> None:
    output, _ = await call(api("litellm/openai/no-such-model-in-price-map", mock_response="ok"))
    assert output.usage is not None and output.usage.total_cost is None
    assert output.usage.total_tokens == 30


def test_generate_config_is_mapped() -> None:
    config = GenerateConfig(
        temperature=0.2,
        top_p=0.9,
        max_tokens=7,
        stop_seqs=["\n\n"],
        seed=3,
        logit_bias={2: -100.0},
        attempt_timeout=12,
        timeout=99,
        extra_body={"min_p": 0.1},
        response_schema=ResponseSchema(
            name="answer",
            json_schema=JSONSchema(type="object", properties={"x": JSONSchema(type="integer")}),
            strict=True,
        ),
    )
    params = config_to_litellm(config, has_tools=False)
    assert params["temperature"] == 0.2 and params["top_p"] == 0.9 and params["max_tokens"] == 7
    assert params["stop"] == ["\n\n"] and params["seed"] == 3 and params["logit_bias"] == {"2": -100.0}
    assert params["timeout"] == 12  # per attempt, not the overall budget
    assert params["extra_body"] == {"min_p": 0.1}
    fmt = params["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "answer"
    assert fmt["json_schema"]["schema"]["properties"] == {"x": {"type": "integer"}}
    assert fmt["json_schema"]["strict"] is True
    assert config_to_litellm(GenerateConfig(timeout=30), has_tools=False) == {"timeout": 30}
    assert config_to_litellm(GenerateConfig(), has_tools=False) == {}


def test_model_args_base_url_and_connection_key() -> None:
    a = api("litellm/openai/local", api_base="http://127.0.0.1:9/v1", api_key="x", drop_params=True)
    req = a.request([{"role": "user", "content": "hi"}], [], "auto", GenerateConfig())
    assert req["api_base"] == "http://127.0.0.1:9/v1" and req["drop_params"] is True and req["api_key"] == "x"
    assert a.connection_key() == "openai@http://127.0.0.1:9/v1"
    b = LiteLLMAPI("openai/local", base_url="http://127.0.0.1:8/v1")  # --model-base-url
    assert b.connection_key() == "openai@http://127.0.0.1:8/v1" != a.connection_key()
    assert LiteLLMAPI("anthropic/claude-x").connection_key() == "anthropic@default"


@pytest.mark.parametrize("arg", ["num_retries", "max_retries", "stream"])
def test_retry_and_stream_args_are_refused_with_the_inspect_option(arg: str) -> None:
    with pytest.raises(ValueError, match=rf"-M {arg}=.*use "):
        LiteLLMAPI("openai/gpt-4o-mini", **{arg: 3})


def test_empty_model_name_is_refused() -> None:
    with pytest.raises(ValueError, match="litellm/openai/gpt-4o"):
        LiteLLMAPI("")


async def test_tools_and_tool_calls_map_both_ways() -> None:
    mock_calls = [
        {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'}}
    ]
    a = api(mock_response="", mock_tool_calls=mock_calls)
    history = [
        ChatMessageUser(content="2+3?"),
        ChatMessageAssistant(
            content="", tool_calls=[ToolCall(id="c0", function="add", arguments={"a": 1, "b": 1})]
        ),
        ChatMessageTool(content="2", tool_call_id="c0", function="add"),
        ChatMessageUser(content="and 2+3?"),
    ]
    output, model_call = await call(a, input=history, tools=[ADD], tool_choice=ToolFunction("add"))
    req = model_call.request
    assert req["tools"][0]["function"]["name"] == "add"
    assert req["tools"][0]["function"]["parameters"]["required"] == ["a", "b"]
    assert req["tool_choice"] == {"type": "function", "function": {"name": "add"}}
    assert req["messages"][1]["tool_calls"][0]["function"] == {"name": "add", "arguments": '{"a": 1, "b": 1}'}
    assert req["messages"][2] == {"role": "tool", "content": "2", "tool_call_id": "c0"}
    assert output.message.tool_calls is not None
    assert output.message.tool_calls[0].function == "add"
    assert output.message.tool_calls[0].arguments == {"a": 2, "b": 3}
    _, any_call = await call(a, tools=[ADD], tool_choice="any")
    assert any_call.request["tool_choice"] == "required"


async def test_error_mapping_rate_limit_server_error_timeout() -> None:
    import litellm

    for mock, kind in [
        ("litellm.RateLimitError", "rate_limit"),
        ("litellm.InternalServerError", "transient"),
    ]:
        a = api(mock_response=mock)
        with pytest.raises(Exception) as info:
            await call(a)
        decision = a.should_retry(info.value)
        assert decision and decision.kind == kind, mock
        assert not a.is_auth_failure(info.value)
    a = api(mock_timeout=True)
    with pytest.raises(litellm.Timeout) as timeout:
        await call(a, GenerateConfig(attempt_timeout=1))
    decision = a.should_retry(timeout.value)
    assert decision and decision.kind == "transient"


async def test_bad_request_is_not_retried_and_names_the_model() -> None:
    import litellm

    bad = litellm.BadRequestError(message="unknown field 'foo'", model="gpt-4o-mini", llm_provider="openai")
    a = api(mock_response=bad)
    output, model_call = await call(a)
    assert isinstance(output, LiteLLMBadRequest)
    assert "litellm/openai/gpt-4o-mini" in str(output) and "unknown field 'foo'" in str(output)
    assert not a.should_retry(output) and not a.should_retry(bad)
    assert model_call.response is not None  # the error body is in the transcript


async def test_context_overflow_becomes_model_length_output() -> None:
    output, _ = await call(api(mock_response="litellm.ContextWindowExceededError"))
    assert isinstance(output, ModelOutput) and output.stop_reason == "model_length"


def test_auth_and_not_found_are_not_retried() -> None:
    import litellm

    auth = litellm.AuthenticationError(message="bad key", llm_provider="openai", model="m")
    missing = litellm.NotFoundError(message="no model", llm_provider="openai", model="m")
    unavailable = litellm.ServiceUnavailableError(message="busy", llm_provider="openai", model="m")
    a = LiteLLMAPI("openai/m")
    assert a.is_auth_failure(auth) and not a.should_retry(auth)
    assert not a.should_retry(missing) and not a.is_auth_failure(missing)
    assert classify_litellm_error(unavailable) is not None and a.should_retry(unavailable)
    assert not a.should_retry(ValueError("not an API error"))


async def test_refused_connection_names_the_endpoint_and_is_not_retried_by_default() -> None:
    """Inspect retries a transient error forever when the user set no --max-retries/--timeout; a server that
    refuses connections gets our few quick tries instead, then one line naming the URL."""
    from local_servers import free_port

    port = free_port()  # a loopback port with nothing listening
    a = api("litellm/openai/local", api_base=f"http://127.0.0.1:{port}/v1", api_key="x")
    started = time.monotonic()
    with pytest.raises(
        ModelServerUnreachable, match=rf"cannot connect to http://127.0.0.1:{port}/v1"
    ) as info:
        await call(a, GenerateConfig(max_tokens=5))
    assert time.monotonic() - started < 10  # 3 tries, 0.5 s and 1 s apart
    assert "after 3 tries" in str(info.value) and "pass --max-retries or --timeout" in str(info.value)
    assert not a.should_retry(info.value)


@pytest.mark.parametrize("bound", [{"max_retries": 2}, {"timeout": 30}])
async def test_refused_connection_is_retried_when_the_user_bounds_the_retries(bound: dict[str, int]) -> None:
    from local_servers import free_port

    a = api(
        "litellm/openai/local", api_base=f"http://127.0.0.1:{free_port()}/v1", api_key="x", connect_retries=0
    )
    with pytest.raises(ModelServerUnreachable, match="retried within your --max-retries/--timeout") as info:
        await call(a, GenerateConfig(max_tokens=5, **bound))
    decision = a.should_retry(info.value)
    assert decision and decision.kind == "transient"


def test_an_eval_against_a_refused_port_fails_its_sample_in_seconds(tmp_path: Path) -> None:
    """The user's view: no retry options given, nothing listening; the sample fails with the URL, the eval and
    its log survive, and nothing waits on Inspect's unbounded backoff."""
    from local_servers import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    model = get_model("litellm/openai/local", memoize=False, api_base=url, api_key="x")
    started = time.monotonic()
    [log] = eval(_task(), model=model, display="none", log_dir=str(tmp_path), fail_on_error=False)
    assert time.monotonic() - started < 30
    [sample] = log.samples or []
    assert sample.error is not None and f"cannot connect to {url}" in sample.error.message
    assert "RetryError" not in sample.error.message  # not retried: our one line, not Inspect's wrapper


def test_connect_retries_is_validated() -> None:
    with pytest.raises(ValueError, match="connect_retries"):
        api("litellm/openai/local", api_base="http://127.0.0.1:9/v1", api_key="x", connect_retries=-1)


async def test_missing_credentials_fail_at_once_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    """LiteLLM reports the OpenAI client's "Missing credentials" as a retryable 500; it must not be retried."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    a = api("litellm/openai/local", api_base="http://127.0.0.1:9/v1")
    output, model_call = await call(a)
    assert isinstance(output, LiteLLMClientSetupError)
    assert "-M api_key=" in str(output) and "Missing credentials" in str(output)
    # a role model never sees -M: the hint says how to give the key to the role
    assert "--model-role 'user={model: litellm/openai/local, model_args: {api_key: ...}}'" in str(output)
    assert not a.should_retry(output)
    assert model_call.response is not None


def _task() -> Task:
    return Task(dataset=[Sample(input="hi", id="s1")], solver=generate())


def test_eval_retries_rate_limit_then_succeeds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Through Inspect's real retry loop: the first call is rate limited, the retry answers."""
    import litellm

    monkeypatch.setattr(LiteLLMAPI, "retry_wait", lambda self: wait_none())
    calls: list[str] = []
    real = litellm.acompletion

    async def flaky(**request: Any) -> Any:
        calls.append("call")
        mock = "litellm.RateLimitError" if len(calls) == 1 else "recovered"
        return await real(**{**request, "mock_response": mock})

    monkeypatch.setattr(litellm, "acompletion", flaky)
    [log] = eval(_task(), model=MODEL, max_retries=3, display="none", log_dir=str(tmp_path))
    assert log.status == "success", log.error
    assert len(calls) == 2
    assert log.samples is not None and log.samples[0].output.completion == "recovered"
    usage = log.stats.model_usage[MODEL]
    assert usage.total_tokens == 30


def test_eval_bad_request_fails_sample_without_retry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import litellm

    monkeypatch.setattr(LiteLLMAPI, "retry_wait", lambda self: wait_none())
    bad = litellm.BadRequestError(message="max_tokens too large", model="gpt-4o-mini", llm_provider="openai")
    calls: list[str] = []
    real = litellm.acompletion

    async def counted(**request: Any) -> Any:
        calls.append("call")
        return await real(**request)

    monkeypatch.setattr(litellm, "acompletion", counted)
    [log] = eval(
        _task(),
        model=MODEL,
        model_args={"mock_response": bad},
        max_retries=3,
        fail_on_error=False,
        display="none",
        log_dir=str(tmp_path),
    )
    assert len(calls) == 1  # not retried
    assert log.samples is not None and log.samples[0].error is not None
    assert "rejected the request" in log.samples[0].error.message
    assert "max_tokens too large" in log.samples[0].error.message


def test_eval_rate_limit_exhausts_retries_into_a_sample_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(LiteLLMAPI, "retry_wait", lambda self: wait_none())
    [log] = eval(
        _task(),
        model=MODEL,
        model_args={"mock_response": "litellm.RateLimitError"},
        max_retries=2,
        fail_on_error=False,
        display="none",
        log_dir=str(tmp_path),
    )
    assert log.status == "success"  # the eval completes; the sample carries the error
    assert log.samples is not None and log.samples[0].error is not None
    assert "RateLimitError" in log.samples[0].error.message
    model_events = [e for e in log.samples[0].events if e.event == "model"]
    assert len(model_events) == 3  # the first attempt and 2 retries, each recorded
    assert all(e.error is not None and "RateLimitError" in e.error for e in model_events)


# ---- no secrets in logs ------------------------------------------------------------------------------------

SECRETS = {
    "aws_secret_access_key": "aws-secret-value-1",
    "azure_ad_token": "azure-token-value-2",
    "vertex_credentials": '{"private_key": "vertex-key-value-3"}',
    "client_secret": "client-secret-value-4",
}
HEADERS = {"Authorization": "Bearer header-secret-5", "X-Api-Key": "header-key-6", "X-Trace-Id": "trace-7"}
BODY = {"api_token": "body-token-8", "min_p": 0.1, "nested": {"password": "body-password-9", "mode": "fast"}}
SECRET_VALUES = [
    *SECRETS.values(),
    "header-secret-5",
    "header-key-6",
    "body-token-8",
    "body-password-9",
    "sk-10",
]


@pytest.mark.parametrize(
    "name",
    [
        "api_key",
        "API_KEY",
        "X-Api-Key",
        "apiKey",
        "x-goog-api-key",
        "Ocp-Apim-Subscription-Key",
        "aws_secret_access_key",
        "aws_access_key_id",
        "aws_session_token",
        "azure_ad_token",
        "api_token",
        "access_token",
        "accessToken",
        "vertex_credentials",
        "client_secret",
        "password",
        "Authorization",
        "Proxy-Authorization",
        "Cookie",
    ],
)
def test_credential_names(name: str) -> None:
    assert is_credential(name, "value")


@pytest.mark.parametrize(
    "name",
    [
        "max_tokens",
        "max_completion_tokens",
        "budget_tokens",
        "top_k",
        "keep_alive",
        "monkey",
        "keyword",
        "tokenizer",
        "api_base",
        "api_version",
        "drop_params",
        "aws_region_name",
        "reasoning_effort",
        "mock_response",
    ],
)
def test_harmless_names(name: str) -> None:
    assert not is_credential(name, "value")


def test_numbers_are_never_credentials_and_copies_leave_the_original_alone() -> None:
    assert not is_credential("token_count", 12) and is_credential("token_count", "12")
    original = {"extra_headers": dict(HEADERS), "n": [{"secret": "s"}]}
    cleaned = without_credentials(original)
    assert cleaned == {"extra_headers": {"X-Trace-Id": "trace-7"}, "n": [{}]}
    assert original["extra_headers"] == HEADERS and original["n"] == [{"secret": "s"}]


def _capture(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    import litellm

    sent: list[dict[str, Any]] = []
    real = litellm.acompletion

    async def capture(**request: Any) -> Any:
        sent.append(request)
        return await real(**request)

    monkeypatch.setattr(litellm, "acompletion", capture)
    return sent


async def test_model_calls_leave_credentials_out_but_send_them(monkeypatch: pytest.MonkeyPatch) -> None:
    sent = _capture(monkeypatch)
    a = api(
        mock_response="ok", api_key="sk-10", extra_headers=HEADERS, extra_body=BODY, max_tokens=7, **SECRETS
    )
    _, model_call = await call(a)
    logged = json.dumps(model_call.request)
    assert not [v for v in SECRET_VALUES if v in logged]
    request = model_call.request
    assert request["extra_headers"] == {"X-Trace-Id": "trace-7"}
    assert request["extra_body"] == {"min_p": 0.1, "nested": {"mode": "fast"}}
    assert "aws_secret_access_key" not in request and "api_key" not in request and request["max_tokens"] == 7
    [actual] = sent  # the call itself got every credential
    assert (
        actual["extra_headers"] == HEADERS and actual["extra_body"] == BODY and actual["api_key"] == "sk-10"
    )
    assert all(actual[k] == v for k, v in SECRETS.items())


def test_eval_log_keeps_credentials_out_of_model_args_and_roles(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sent = _capture(monkeypatch)
    headers = dict(HEADERS)
    args = {
        "mock_response": "ok",
        "api_key": "sk-10",
        "extra_headers": headers,
        "extra_body": BODY,
        **SECRETS,
    }
    grader = get_model("litellm/openai/gpt-4o-mini", memoize=False, **args)
    [log] = eval(
        _task(),
        model=MODEL,
        model_args=args,
        model_roles={"grader": grader},
        display="none",
        log_dir=str(tmp_path),
    )
    assert log.status == "success", log.error
    assert log.eval.model_args["extra_headers"] == {"X-Trace-Id": "trace-7"}
    assert log.eval.model_args["extra_body"] == {"min_p": 0.1, "nested": {"mode": "fast"}}
    assert log.eval.model_args["mock_response"] == "ok" and "aws_secret_access_key" not in log.eval.model_args
    [path] = list(tmp_path.glob("*.eval"))
    with zipfile.ZipFile(path) as archive:  # every file the log holds: header, samples, summaries
        written = "\n".join(archive.read(n).decode(errors="replace") for n in archive.namelist())
    assert "trace-7" in written and "aws_secret_access_key" not in written and "Authorization" not in written
    role_args = log.eval.model_roles["grader"].args
    assert role_args["extra_headers"] == {"X-Trace-Id": "trace-7"} and "client_secret" not in role_args
    assert not [v for v in SECRET_VALUES if v in written]
    assert sent and sent[0]["extra_headers"]["Authorization"] == "Bearer header-secret-5"
    assert headers == HEADERS  # the caller's dict is untouched


def test_a_client_side_bug_reported_as_a_connection_error_is_not_retried() -> None:
    """LiteLLM reports its own exceptions (e.g. an AttributeError building the request) as APIConnectionError;
    Inspect would retry that forever. Only a real network failure behind it is transient."""
    import httpx
    import litellm

    a = LiteLLMAPI("openai/m")
    bug = litellm.APIConnectionError(
        message="'int' object has no attribute 'lower'", llm_provider="openai", model="m"
    )
    bug.__cause__ = AttributeError("'int' object has no attribute 'lower'")
    assert not a.should_retry(bug)
    dropped = litellm.APIConnectionError(message="Connection error.", llm_provider="openai", model="m")
    dropped.__cause__ = httpx.ReadError("Server disconnected")
    decision = a.should_retry(dropped)
    assert decision and decision.kind == "transient"


def test_logit_bias_token_ids_are_sent_as_string_keys() -> None:
    assert config_to_litellm(GenerateConfig(logit_bias={2: -100.0}), has_tools=False)["logit_bias"] == {
        "2": -100.0
    }
