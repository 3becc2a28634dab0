"""No secret reaches an Inspect log: real evals against a scripted upstream server on 127.0.0.1, then every member of
the `.eval` file (journal, header, samples, summaries) is searched for a canary (docs/grading.md#secrets-in-logs).

The server answers 401 echoing everything it was sent (the Authorization header, every other header, the query
string and the body), as servers that quote a bad key do; `/ok/...` answers like a real server and records what it
got, to show the calls still carry the real values. The rule itself (names, headers, URLs, values) is tested on its
own below.
"""

from __future__ import annotations

import asyncio
import base64
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from inspect_ai import Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.model import (
    ChatMessageAssistant,
    ChatMessageSystem,
    GenerateConfig,
    RetryDecision,
    get_model,
)
from inspect_ai.solver import Generate, TaskState, generate, solver
from local_servers import app_in_thread

import userlm_plugin._registry  # noqa: F401
from userlm_plugin.errors import RedactedError, RetryableBackendError, UsageError
from userlm_plugin.providers.credentials import loggable, redact_url, redact_urls_in
from userlm_plugin.providers.scrub import Secrets, scrubbed_error

CANARY = "CANARY-pw-5f3a9c"
KEY = "CANARY-key-7d1e42"
SESSION = "CANARY-session-88b2"
SIG = "CANARY-sig-19c4d7"
RECEIVED: list[dict[str, Any]] = []


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def echo(request: Request) -> JSONResponse:
        body = (await request.body()).decode(errors="replace")
        said = f"Incorrect API key provided: {request.headers.get('authorization')}; headers {dict(request.headers)}"
        said += f"; query {request.url.query}; body {body[:2000]}"
        return JSONResponse(
            {"error": {"message": said, "type": "invalid_request_error", "code": "invalid_api_key"}},
            status_code=401,
        )

    async def ok(request: Request) -> JSONResponse:
        body = await request.json()
        RECEIVED.append({"headers": dict(request.headers), "body": body, "query": request.url.query})
        if "prompt" in body:  # /v1/completions (the userlm/ remote backend)
            choice = {"text": "\nok can you sort it in place", "finish_reason": "stop"}
            return JSONResponse({"choices": [choice], "usage": {"completion_tokens": 8}})
        message = {"role": "assistant", "content": "fine"}
        return JSONResponse(
            {
                "id": "c1",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model", "m"),
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
            }
        )

    app = Starlette(
        routes=[
            Route("/ok/{rest:path}", ok, methods=["POST"]),
            Route("/{rest:path}", echo, methods=["POST", "GET"]),
        ]
    )
    with app_in_thread(app) as url:
        yield url


def log_text(log_dir: Path) -> str:
    """Every member of every .eval file under `log_dir`, decoded."""
    [path] = list(log_dir.glob("*.eval"))
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        assert {"header.json", "_journal/start.json"} <= set(names) and any(
            n.startswith("samples/") for n in names
        )
        return "\n".join(archive.read(name).decode(errors="replace") for name in names)


def assert_no_canary(log_dir: Path, *secrets: str) -> str:
    text = log_text(log_dir)
    forms = {s for secret in secrets for s in (secret, json.dumps(secret)[1:-1])}
    forms.add(base64.b64encode(f"user:{CANARY}".encode()).decode())
    assert not [f for f in forms if f in text], [
        text[max(0, text.find(f) - 300) : text.find(f) + 50] for f in forms
    ]
    return text


def one_sample(task: Task | None = None, **kwargs: Any) -> Any:
    [log] = eval(
        task or Task(dataset=[Sample(input="hi", id="s1")], solver=generate()),
        display="none",
        fail_on_error=False,
        **kwargs,
    )
    [sample] = log.samples or []
    return log, sample


# ---- litellm/ ------------------------------------------------------------------------------------------------


def test_a_key_the_server_echoes_is_scrubbed_from_every_error_and_traceback(
    upstream: str, tmp_path: Path
) -> None:
    """The 401 that quotes the key: Inspect writes the message, the traceback (every chained exception) and the
    error body into the sample, the model event and the summaries."""
    log, sample = one_sample(
        model="litellm/openai/m",
        model_args={"api_base": f"{upstream}/v1", "api_key": KEY},
        log_dir=str(tmp_path),
        max_retries=2,
    )
    assert sample.error is not None and "Incorrect API key provided: Bearer ***" in sample.error.message
    assert "litellm.AuthenticationError" in sample.error.message  # the useful part stays
    assert "RedactedError" in sample.error.traceback and "litellm" in sample.error.traceback  # frames kept
    [event] = [e for e in sample.events if e.event == "model"]  # an auth failure is not retried
    assert event.error is not None and "Bearer ***" in event.error
    assert_no_canary(tmp_path, KEY)


def test_an_environment_key_is_scrubbed_too(
    upstream: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    _, sample = one_sample(
        model="litellm/openai/m", model_args={"api_base": f"{upstream}/v1"}, log_dir=str(tmp_path)
    )
    assert sample.error is not None and "Bearer ***" in sample.error.message
    assert_no_canary(tmp_path, KEY)


def test_a_password_in_api_base_fails_at_once_with_the_url_redacted(upstream: str, tmp_path: Path) -> None:
    """aiohttp refuses a URL with credentials beside the API key's header; LiteLLM reports that as a 500, which
    Inspect would retry forever (no --max-retries here). One line, naming the URL without its password."""
    url = upstream.replace("http://", f"http://user:{CANARY}@") + "/ok/v1"
    log, sample = one_sample(
        model="litellm/openai/m", model_args={"api_base": url, "api_key": KEY}, log_dir=str(tmp_path)
    )
    shown = upstream.replace("http://", "http://***@") + "/ok/v1"
    assert sample.error is not None and f"the request to {shown} failed in the client" in sample.error.message
    assert "take them out of the URL" in sample.error.message
    assert len([e for e in sample.events if e.event == "model"]) == 1  # not retried
    assert log.eval.model_args["api_base"] == shown
    assert_no_canary(tmp_path, CANARY, KEY)


def test_a_key_in_the_query_string_is_redacted(upstream: str, tmp_path: Path) -> None:
    url = f"{upstream}/v1?api-version=2024-06-01&api-key={KEY}"
    log, sample = one_sample(
        model="litellm/openai/m", model_args={"api_base": url, "api_key": "x"}, log_dir=str(tmp_path)
    )
    assert log.eval.model_args["api_base"] == f"{upstream}/v1?api-version=2024-06-01&api-key=***"
    assert sample.error is not None  # the server's echo of the query string is scrubbed by value
    assert_no_canary(tmp_path, KEY)


def test_headers_and_body_fields_outside_the_word_list_are_kept_out_but_sent(
    upstream: str, tmp_path: Path
) -> None:
    """`X-Session` (every header is a credential unless known harmless) and `extra_body.sig` (a word of the
    name rule): dropped from model_args, role args and every request, scrubbed from the echo, and sent."""
    args = {
        "api_key": KEY,
        "extra_headers": {"X-Session": SESSION, "X-Trace-Id": "trace-1"},
        "extra_body": {"sig": SIG, "min_p": 0.1},
    }
    ok = get_model("litellm/openai/m", memoize=False, api_base=f"{upstream}/ok/v1", **args)

    @solver
    def ask_grader() -> Any:
        async def solve(state: TaskState, generate: Generate) -> TaskState:
            await get_model(role="grader").generate("hello")  # the real request, recorded by /ok
            return await generate(state)

        return solve

    RECEIVED.clear()
    log, sample = one_sample(
        Task(dataset=[Sample(input="hi", id="s1")], solver=ask_grader()),
        model="litellm/openai/m",
        model_args={"api_base": f"{upstream}/v1", **args},
        model_roles={"grader": ok},
        log_dir=str(tmp_path),
    )
    assert log.eval.model_args["extra_headers"] == {"X-Trace-Id": "trace-1"}
    assert log.eval.model_args["extra_body"] == {"min_p": 0.1}
    assert log.eval.model_roles["grader"].args["extra_headers"] == {"X-Trace-Id": "trace-1"}
    [sent] = RECEIVED
    assert sent["headers"]["x-session"] == SESSION and sent["body"]["sig"] == SIG
    assert sent["headers"]["authorization"] == f"Bearer {KEY}"
    assert sample.error is not None and "Bearer ***" in sample.error.message
    text = assert_no_canary(tmp_path, KEY, SESSION, SIG)
    assert "trace-1" in text and "X-Session" not in text


DEBUG_RUN = """
import sys

from inspect_ai import Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.solver import generate

url, key, session, log_dir = sys.argv[1:]
eval(
    Task(dataset=[Sample(input="hi", id="s1")], solver=generate()),
    model="litellm/openai/m",
    model_args={"api_base": url, "api_key": key, "extra_headers": {"X-Session": session}},
    log_dir=log_dir,
    log_level="debug",
    log_level_transcript="debug",
    display="none",
)
"""


def test_debug_records_of_the_libraries_are_scrubbed_too(upstream: str, tmp_path: Path) -> None:
    """With `--log-level debug` Inspect copies LiteLLM's records into the sample, and they print the whole
    request. Its own process: Inspect sets the log levels once per process."""
    import subprocess
    import sys

    from inspect_ai.log import read_eval_log

    subprocess.run(
        [sys.executable, "-c", DEBUG_RUN, f"{upstream}/v1", KEY, SESSION, str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=240,
        cwd=Path(__file__).parents[1],
    )
    [path] = list(tmp_path.glob("*.eval"))
    [sample] = read_eval_log(str(path)).samples or []
    records = [
        e.message.message for e in sample.events if e.event == "logger" and e.message.name == "LiteLLM"
    ]
    assert any("litellm.acompletion(" in r and "'X-Session': '***'" in r for r in records)  # the request...
    assert_no_canary(tmp_path, KEY, SESSION)  # ... without its secrets


def test_model_config_file_gets_the_same_rule(upstream: str, tmp_path: Path) -> None:
    """`--model-config` (here `model_args=<file>`, the same code path): a YAML file of model args."""
    config = tmp_path / "model.yaml"
    config.write_text(
        f"api_base: {upstream}/v1?key={KEY}\napi_key: {KEY}\nextra_headers:\n  X-Session: {SESSION}\n",
        encoding="utf-8",
    )
    logs = tmp_path / "logs"
    log, sample = one_sample(model="litellm/openai/m", model_args=str(config), log_dir=str(logs))
    assert log.eval.model_args == {"api_base": f"{upstream}/v1?key=***", "extra_headers": {}}
    assert sample.error is not None
    assert_no_canary(logs, KEY, SESSION)


# ---- userlm/ (the remote backend) -------------------------------------------------------------------------------


@solver
def ask_user() -> Any:
    async def solve(state: TaskState, generate: Generate) -> TaskState:
        output = await get_model(role="user").generate(
            [ChatMessageSystem(content="You want a sort function."), ChatMessageAssistant(content="Hi")]
        )
        state.output.completion = output.completion
        return state

    return solve


def userlm_role(url: str, tokenizer: Path, **args: Any) -> Any:
    return get_model(
        "userlm/tiny",
        base_url=url,
        tokenizer=str(tokenizer),
        memoize=False,
        **{"connect_retries": 0, "min_words": 0, "first_token_filter": False, **args},
    )


def test_userlm_base_url_password_and_key_stay_out_of_the_log(
    upstream: str, tiny_userlm_dir: Path, tmp_path: Path
) -> None:
    """`--model-role 'user={model: userlm/..., model_args: {base_url: http://user:PW@host/v1, api_key: KEY}}'`:
    the role's base URL in the header, the backend's URL in every ModelCall, the 401's echo in the error."""
    bad = upstream.replace("http://", f"http://user:{CANARY}@") + "/v1"
    log, sample = one_sample(
        Task(dataset=[Sample(input="hi", id="s1")], solver=ask_user()),
        model="mockllm/model",
        model_roles={"user": userlm_role(bad, tiny_userlm_dir, api_key=KEY)},
        log_dir=str(tmp_path),
    )
    assert log.eval.model_roles["user"].base_url == upstream.replace("http://", "http://***@") + "/v1"
    assert sample.error is not None and "refused the credentials (401)" in sample.error.message
    assert "USERLM_API_KEY" in sample.error.message and "eval-retry" in sample.error.message
    assert_no_canary(tmp_path, CANARY, KEY)

    RECEIVED.clear()
    good = upstream.replace("http://", f"http://user:{CANARY}@") + "/ok/v1"
    logs = tmp_path / "ok"
    log, sample = one_sample(
        Task(dataset=[Sample(input="hi", id="s1")], solver=ask_user()),
        model="mockllm/model",
        model_roles={"user": userlm_role(good, tiny_userlm_dir)},
        log_dir=str(logs),
    )
    assert sample.error is None and sample.output.completion == "ok can you sort it in place"
    [event] = [e for e in sample.events if e.event == "model" and e.role == "user"]
    assert event.call is not None and event.call.request["backend"]["url"].startswith("http://***@")
    # the server got the URL's credentials (httpx sends a URL's userinfo as Basic auth)
    basic = base64.b64encode(f"user:{CANARY}".encode()).decode()
    assert RECEIVED[0]["headers"]["authorization"] == f"Basic {basic}"
    assert_no_canary(logs, CANARY)


async def test_userlm_errors_keep_their_class_and_retry_after_scrubbing(
    upstream: str, tiny_userlm_dir: Path
) -> None:
    """A scrubbed error of our own keeps its class and attributes, so Inspect retries it as before."""
    model = userlm_role(upstream + "/v1", tiny_userlm_dir, api_key=KEY)
    messages = [ChatMessageSystem(content="You want a sort function."), ChatMessageAssistant(content="Hi")]
    with pytest.raises(Exception) as info:
        await model.api.generate(messages, [], "none", GenerateConfig(seed=1))
    # the remote client scrubs the server's message itself: a clean error of its own class, no chain
    assert type(info.value).__name__ == "UpstreamRequestError" and info.value.__cause__ is None
    assert KEY not in str(info.value) and "Bearer ***" in str(info.value)
    assert not model.api.should_retry(info.value)
    secrets = Secrets([KEY])
    retryable = RetryableBackendError(f"server error 503: {KEY} is busy", "rate_limit", 2.0)
    copy = scrubbed_error(retryable, secrets)
    assert type(copy) is RetryableBackendError and copy.kind == "rate_limit" and copy.retry_after == 2.0
    assert str(copy) == "server error 503: *** is busy"
    assert model.api.should_retry(copy).kind == "rate_limit"  # type: ignore[union-attr]


# ---- deterministic failures are never retried (Inspect retries a transient error forever by default) ---------


@pytest.fixture(scope="module")
def failing_server() -> Iterator[str]:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def fail(request: Request) -> JSONResponse:
        if request.path_params["mode"] == "invalid":  # llama-cpp-python's answer to a body it cannot parse
            return JSONResponse(
                {"error": {"message": "1 validation error for request: prompt"}}, status_code=500
            )
        return JSONResponse({"error": {"message": "overloaded"}}, status_code=500)

    app = Starlette(routes=[Route("/{mode}/{rest:path}", fail, methods=["POST"])])
    with app_in_thread(app) as url:
        yield url


async def test_litellm_retries_a_server_500_but_not_a_request_it_cannot_send(failing_server: str) -> None:
    from inspect_ai.model import ChatMessageUser

    async def outcome(url: str, key: str) -> Any:
        model = get_model("litellm/openai/m", memoize=False, api_base=url, api_key=key)
        try:
            output, _ = await model.api.generate(
                [ChatMessageUser(content="hi")], [], "auto", GenerateConfig()
            )
        except Exception as ex:
            output = ex
        assert isinstance(output, Exception)
        return output, model.api.should_retry(output)

    error, decision = await outcome(f"{failing_server}/busy/v1", "key-1")
    assert isinstance(decision, RetryDecision) and decision.kind == "transient"  # a real 500 may heal
    error, decision = await outcome(f"{failing_server}/invalid/v1", "key-1")
    assert not decision and "validation error" in str(error)
    error, decision = await outcome(f"{failing_server}/busy/v1", "key\nwith-a-newline")  # never sent
    assert not decision and "failed in the client before anything was sent" in str(error)


async def test_userlm_does_not_retry_a_request_it_cannot_send(
    failing_server: str, tiny_userlm_dir: Path
) -> None:
    model = userlm_role(f"{failing_server}/busy/v1", tiny_userlm_dir, api_key="key\nwith-a-newline")
    messages = [ChatMessageSystem(content="You want a sort function."), ChatMessageAssistant(content="Hi")]
    with pytest.raises(Exception) as info:
        await model.api.generate(messages, [], "none", GenerateConfig(seed=1))
    assert "the request cannot be sent" in str(info.value) and not model.api.should_retry(info.value)
    busy = userlm_role(f"{failing_server}/busy/v1", tiny_userlm_dir)
    with pytest.raises(RetryableBackendError, match="server error 500: overloaded") as error:
        await busy.api.generate(messages, [], "none", GenerateConfig(seed=1))
    assert busy.api.should_retry(error.value).kind == "transient"


# ---- eval-retry ---------------------------------------------------------------------------------------------

TASK_FILE = """
from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.solver import generate


@task
def once():
    return Task(dataset=[Sample(input="hi", id="s1")], solver=generate())
"""


def test_eval_retry_of_a_run_whose_key_was_dropped_says_how_to_give_it_again(
    upstream: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inspect's real eval_retry passes the logged model args back, without the key; it takes no -M."""
    from inspect_ai import eval_retry

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "retry_task.py").write_text(TASK_FILE, encoding="utf-8")
    [first] = eval(
        "retry_task.py@once",
        model="litellm/openai/m",
        model_args={"api_base": f"{upstream}/v1", "api_key": KEY},  # the echo server: a 401, the run fails
        display="none",
        log_dir=str(tmp_path / "logs"),
    )
    assert first.status == "error" and "api_key" not in first.eval.model_args
    [retried] = eval_retry(first.location, display="none", log_dir=str(tmp_path / "logs"))
    assert retried.status == "error" and retried.error is not None
    assert "Missing credentials" in retried.error.message
    assert "Under `inspect eval-retry` (which takes no -M) set OPENAI_API_KEY" in retried.error.message

    monkeypatch.setenv("OPENAI_API_KEY", KEY)  # the hint, followed: the key reaches the server again
    RECEIVED.clear()
    ok = first.model_copy(deep=True)
    ok.eval.model_args["api_base"] = f"{upstream}/ok/v1"
    [again] = eval_retry(ok, display="none", log_dir=str(tmp_path / "logs"))
    assert again.status == "success", again.error
    assert RECEIVED[0]["headers"]["authorization"] == f"Bearer {KEY}"


def test_eval_retry_of_a_redacted_url_fails_before_any_call(upstream: str, tiny_userlm_dir: Path) -> None:
    """The logged copy of a URL with a password cannot be sent; the error says why, before anything runs."""
    with pytest.raises(UsageError, match=r"is the copy written to the log.*cannot reuse it"):
        userlm_role(upstream.replace("http://", "http://***@") + "/v1", tiny_userlm_dir)
    with pytest.raises(UsageError, match="set OPENAI_API_KEY"):
        get_model("litellm/openai/m", memoize=False, api_base=f"{upstream}/v1?key=***")


# ---- the rule on its own --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pw@host:8/v1", "http://***@host:8/v1"),
        ("https://TOKEN@github.com/x", "https://***@github.com/x"),
        ("http://h/v1?api-key=K&api-version=2024-06-01", "http://h/v1?api-key=***&api-version=2024-06-01"),
        ("http://h/v1?sig=S&code=C#frag", "http://h/v1?sig=***&code=***#frag"),
        ("http://h/v1?flag", "http://h/v1?flag"),
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
        ("http://[::1/v1", "http://***"),  # not parsable: nothing of it is kept
    ],
)
def test_urls_lose_userinfo_and_query_values(url: str, shown: str) -> None:
    found: set[str] = set()
    assert redact_url(url, found) == shown
    if "pw" in url:
        assert {"user:pw", "pw", base64.b64encode(b"user:pw").decode()} <= found


def test_urls_inside_text_are_redacted() -> None:
    text = (
        "cannot connect to http://u:hunter22@h/v1?key=K2 (refused); see https://docs.example/x?api-version=1."
    )
    assert redact_urls_in(text) == (
        "cannot connect to http://***@h/v1?key=*** (refused); see https://docs.example/x?api-version=1."
    )


def test_every_header_is_a_credential_unless_known_harmless() -> None:
    found: set[str] = set()
    cleaned = loggable(
        {
            "extra_headers": {"X-Session": "s-1", "Content-Type": "application/json", "Referer": "r"},
            "default_headers": {"anthropic-version": "2023-06-01", "X-Custom": "c"},
            "extra_body": {"sig": "S", "nested": {"jwt": "J", "mode": "fast"}, "callback": "http://u:p@h/"},
        },
        found,
    )
    assert cleaned == {
        "extra_headers": {"Content-Type": "application/json"},
        "default_headers": {"anthropic-version": "2023-06-01"},
        "extra_body": {"nested": {"mode": "fast"}, "callback": "http://***@h/"},
    }
    assert {"s-1", "r", "c", "S", "J", "u:p", "p"} <= found


def test_values_are_scrubbed_in_every_form_but_short_ones_are_left() -> None:
    secrets = Secrets(["sk-abcdef123456", "p@ss word!", "x"])
    assert secrets.scrub('key sk-abcdef123456, quoted p%40ss%20word%21, json "p@ss word!"') == (
        'key ***, quoted ***, json "***"'
    )
    assert secrets.scrub("x marks the spot") == "x marks the spot"  # `api_key=x` does not eat every x


def test_a_foreign_error_becomes_a_redacted_error_without_its_chain() -> None:
    secrets = Secrets([KEY])
    try:
        try:
            raise ConnectionError(f"peer said {KEY}")
        except ConnectionError as inner:
            raise RuntimeError("request failed") from inner
    except RuntimeError as outer:
        error = scrubbed_error(outer, secrets, retry=RetryDecision.transient(), auth_failure=True)
    assert isinstance(error, RedactedError) and error.original == "builtins.RuntimeError"
    assert error.message == (
        "RuntimeError: request failed; caused by ConnectionError: peer said *** "
        "[secrets in this error were replaced by ***]"
    )
    assert error.retry.kind == "transient" and error.auth_failure and error.__cause__ is None
    clean = ValueError("nothing secret")
    assert scrubbed_error(clean, secrets) is clean  # an error without secrets keeps its chain


def test_a_traceback_of_a_scrubbed_error_shows_no_secret() -> None:
    """What Inspect does with a sample's error: its plain and rich tracebacks (every chained message)."""
    from inspect_ai._util.rich import format_traceback

    async def failing() -> None:
        try:
            raise PermissionError(f"denied for {KEY}")
        except PermissionError as ex:
            error = scrubbed_error(ex, Secrets([KEY]))
            traceback = ex.__traceback__
        raise error.with_traceback(traceback) from None

    with pytest.raises(RedactedError) as info:
        asyncio.run(failing())
    plain, ansi = format_traceback(type(info.value), info.value, info.value.__traceback__)
    assert "PermissionError: denied for ***" in plain and KEY not in plain and KEY not in ansi
    assert "raise PermissionError" in plain  # the frames are kept


def test_a_main_model_base_url_with_credentials_is_refused(upstream: str, tmp_path: Path) -> None:
    """Inspect writes `--model-base-url` to the log as given (eval.model_base_url), after the provider exists:
    refused with the way that keeps the credentials out; a role's base URL (read from the provider) is fine."""
    url = upstream.replace("http://", f"http://user:{CANARY}@") + "/v1"
    with pytest.raises(UsageError, match=r"http://\*\*\*@.* carries credentials.*-M api_base=") as info:
        eval(
            Task(dataset=[Sample(input="hi")]),
            model="litellm/openai/m",
            model_base_url=url,
            display="none",
            log_dir=str(tmp_path),
        )
    assert CANARY not in str(info.value) and not list(tmp_path.glob("*.eval"))
    role = get_model("litellm/openai/m", memoize=False, base_url=url, api_key="x")  # not the main model
    assert role.api.base_url == upstream.replace("http://", "http://***@") + "/v1"


def test_reports_never_print_credentials_even_from_an_older_log() -> None:
    from types import SimpleNamespace

    from userlm_plugin.report.runs import model_identity, model_label

    old = SimpleNamespace(
        eval=SimpleNamespace(
            model="litellm/openai/m",
            model_args={"api_base": f"http://user:{CANARY}@h:8/v1?key={KEY}"},
            model_base_url=None,
        )
    )
    identity = model_identity(old)
    assert identity["api_base"] == "http://***@h:8/v1?key=***"
    assert model_label(identity) == "litellm/openai/m (h:8)"


def test_settings_named_like_credentials_are_kept(upstream: str, tiny_userlm_dir: Path) -> None:
    """`userlm/`'s own validated settings are not secrets (`end_token`), nor is a value without text in it."""
    model = userlm_role(
        f"{upstream}/v1",
        tiny_userlm_dir,
        end_token="<|endconversation|>",
        server_params={"api_token": "tok-12345678"},
    )
    assert model.model_args["end_token"] == "<|endconversation|>" and model.model_args["server_params"] == {}
    assert (
        "<|endconversation|>" not in model.api.secrets.values and "tok-12345678" in model.api.secrets.values
    )
    assert loggable({"extra_body": {"stop_token_ids": [2, 3], "token": "t"}}) == {
        "extra_body": {"stop_token_ids": [2, 3]}
    }


def test_library_log_records_are_scrubbed_with_their_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from userlm_plugin.providers.scrub import register_secrets

    register_secrets(Secrets(["rec-secret-0042"]))
    with caplog.at_level(logging.DEBUG, logger="LiteLLM"):
        logging.getLogger("LiteLLM").debug("sending %s to http://u:pw@h/v1", "rec-secret-0042")
        try:
            raise ValueError("bad key rec-secret-0042")
        except ValueError:
            logging.getLogger("LiteLLM").exception("call failed (100%)")
    first, second = caplog.records
    assert first.getMessage() == "sending *** to http://***@h/v1"
    assert second.getMessage() == "call failed (100%) (ValueError: bad key ***)" and second.exc_info is None
