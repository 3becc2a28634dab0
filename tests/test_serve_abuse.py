"""`serve` under abuse, in process: the real app and provider, drafts from a scripted backend, requests sent straight
to the ASGI app (so a test can stream a body chunk by chunk, hold a draft, or hang up mid-request).

Each guard is attacked: a chunked body past the cap, JSON nested past the parser, wrong-typed fields, a runaway
`max_retries`, a huge prompt rendered while /health must keep answering, a client that leaves mid-generation,
every kind of error a generation can raise (which must come back as OpenAI-shaped JSON with the right status), a
missing or wrong API key, 20,000 one-character messages, 200,000 banned first words, a lone surrogate, a body
that stops halfway, a generation past the request's deadline. Then what clients read: the stream, the usage of
the returned turn, the guardrail record and the end signal.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fake_backend import FakeBackend, scripted_draft
from inspect_ai.model import get_model
from transformers import AutoTokenizer

from userlm_plugin.errors import (
    BackendError,
    BackendUnavailableError,
    ConfigError,
    RetryableBackendError,
    UpstreamRequestError,
)
from userlm_plugin.runtime.provider import OFFLOAD_CHARS
from userlm_plugin.serve import END_CONTENT, END_FIELD, RECORD_FIELD
from userlm_plugin.serve.app import create_app
from userlm_plugin.serve.protocol import ServeLimits
from userlm_plugin.turns import END_CONVERSATION

NAME = "tiny"
INTENT = "You are a user who needs a python function that sorts a list; ask the assistant for it."
GOOD = "\ncan you sort it in place please"


def body(**extra: Any) -> dict[str, Any]:
    return {
        "model": NAME,
        "messages": [
            {"role": "system", "content": INTENT},
            {"role": "assistant", "content": "Hello! How can I help?"},
        ],
        **extra,
    }


@pytest.fixture
def make_app(tiny_userlm_dir) -> Callable[..., tuple[Any, FakeBackend]]:
    """`make(script=..., limits=..., tokenizer=...) -> (app, backend)`: serve over a scripted backend."""
    base = AutoTokenizer.from_pretrained(tiny_userlm_dir, local_files_only=True)

    def make(
        script: Any = None,
        limits: ServeLimits | None = None,
        tokenizer: Any = None,
        api_key: str | None = None,
    ):
        model = get_model(f"userlm/{tiny_userlm_dir}", memoize=False)
        script = [scripted_draft(GOOD)] if script is None else script
        backend = FakeBackend(tokenizer or base, script, end_token_id=base.get_vocab()[END_CONVERSATION])
        model.api._backend = backend
        app = create_app(model.api, served_name=NAME, limits=limits or ServeLimits(), api_key=api_key)
        return app, backend

    return make


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://serve")


async def call_asgi(
    app: Any, chunks: Any, *, headers: list[tuple[bytes, bytes]] = (), disconnect: Any = None
):
    """POST /v1/chat/completions straight through ASGI: the body from `chunks` (an iterator, consumed lazily),
    then, once the body is done, `http.disconnect` when `disconnect` (an asyncio.Event) is set.
    Returns (status, JSON body, chunks the app pulled)."""
    pulled = 0
    iterator = iter(chunks)
    pending: list[bytes] = []
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        if not pending:
            try:
                pending.append(next(iterator))
                pulled += 1
            except StopIteration:
                if disconnect is not None:
                    await disconnect.wait()
                    return {"type": "http.disconnect"}
                await asyncio.Event().wait()  # a client that stays connected
        chunk = pending.pop()
        try:
            pending.append(next(iterator))
            pulled += 1
        except StopIteration:
            return {"type": "http.request", "body": chunk, "more_body": False}
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("serve", 80),
    }
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(payload), pulled


def assert_openai_error(data: dict[str, Any], *, param: str | None = None, needle: str = "") -> None:
    error = data["error"]
    assert set(error) == {"message", "type", "param", "code"} and needle in error["message"]
    if param is not None:
        assert error["param"] == param


async def test_a_chunked_body_over_the_cap_is_refused_while_streaming(make_app) -> None:
    app, backend = make_app(limits=ServeLimits(max_body_bytes=4 * 1024 * 1024))
    megabyte = b" " * (1024 * 1024)
    status, data, pulled = await call_asgi(app, (megabyte for _ in range(50)))  # 50 MB, no Content-Length
    assert status == 413 and data["error"]["code"] == "body_too_large"
    assert pulled <= 6  # stopped at the cap: the other ~44 MB were never read
    assert backend.started == 0
    status, data, pulled = await call_asgi(
        app, iter([b"{}"]), headers=[(b"content-length", str(50 * 1024 * 1024).encode())]
    )
    assert status == 413  # a declared length over the cap is refused before reading anything
    app_state = app.state.stats
    assert app_state.statuses[413] == 2 and app_state.in_flight == 0


@pytest.mark.parametrize(
    ("payload", "param", "needle"),
    [
        (b"[" * 100_000 + b"]" * 100_000, None, "nested too deeply"),
        (
            json.dumps(body(messages=[{"role": "user", "content": [[[[["x"]]]]]}])).encode(),
            None,
            "text parts",
        ),
        (
            json.dumps(
                body(messages=[body()["messages"][0], {"role": "tool", "content": "x", "tool_call_id": 123}])
            ).encode(),
            "messages[1].tool_call_id",
            "must be a string",
        ),
        (
            json.dumps(
                body(messages=[body()["messages"][0], {"role": "tool", "content": "x", "tool_call_id": {}}])
            ).encode(),
            "messages[1].tool_call_id",
            "must be a string",
        ),
        (json.dumps(body(userlm={"max_retries": 1e9})).encode(), "userlm.max_retries", "[0, 10]"),
        (json.dumps(body(userlm={"max_retries": "5"})).encode(), "userlm.max_retries", "[0, 10]"),
        (json.dumps(body(userlm={"min_words": "many"})).encode(), "userlm", "min_words"),
        (
            json.dumps(body(userlm={"repetition_min_span_words": -3})).encode(),
            "userlm",
            "repetition_min_span_words",
        ),
        (json.dumps(body(seed=10**30)).encode(), "seed", "2**63"),
        (json.dumps(body(messages=[])).encode(), "messages", "non-empty"),
        (
            json.dumps(body(messages=[{"role": "robot", "content": "x" * 100_000}])).encode(),
            "messages[0].role",
            "robot",
        ),
    ],
)
async def test_malformed_bodies_get_an_openai_shaped_4xx(make_app, payload, param, needle) -> None:
    app, backend = make_app()
    async with client(app) as http:
        response = await http.post("/v1/chat/completions", content=payload)
        assert response.status_code == 400, response.text
        assert_openai_error(response.json(), param=param, needle=needle)
        assert len(response.text) < 2000  # values are quoted short, whatever their size
        assert backend.started == 0
        ok = await http.post("/v1/chat/completions", json=body())
        assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] == GOOD.strip()


async def test_retries_up_to_the_servers_limit_are_honoured(make_app) -> None:
    app, backend = make_app(script=[scripted_draft("\nok")], limits=ServeLimits(max_retries=3))
    async with client(app) as http:
        response = await http.post("/v1/chat/completions", json=body(userlm={"max_retries": 3}))
        assert response.status_code == 200 and response.json()["userlm"]["retries"] == 3
        assert (
            backend.started == 4
        )  # every draft too short: 1 + 3 retries, then the least bad one is returned
        refused = await http.post("/v1/chat/completions", json=body(userlm={"max_retries": 4}))
        assert refused.status_code == 400 and backend.started == 4


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (ConfigError("the prompt plus max_tokens exceeds the model's context"), 400, "invalid_request"),
        (BackendUnavailableError("cannot connect to http://upstream"), 503, "backend_unavailable"),
        (RetryableBackendError("rate limited (429)", "rate_limit", retry_after=2.0), 502, "upstream_error"),
        (UpstreamRequestError("the server rejected the request (400)"), 502, "upstream_error"),
        (
            BackendError("the server counted the prompt as 3 tokens: not the served model's tokenizer"),
            502,
            None,
        ),
        (ValueError("an internal ValueError is not the client's fault"), 500, "internal_error"),
        (KeyError("boom"), 500, "internal_error"),
    ],
)
async def test_generation_errors_map_by_error_family_only(make_app, error, status, code) -> None:
    def fail(request: Any, index: int) -> Any:
        raise error

    app, _ = make_app(script=fail)
    async with client(app) as http:
        response = await http.post("/v1/chat/completions", json=body())
        assert response.status_code == status, response.text
        data = response.json()
        assert_openai_error(data)
        assert data["error"]["type"] == ("invalid_request_error" if status < 500 else "server_error")
        if code is not None:
            assert data["error"]["code"] == code
        if isinstance(error, RetryableBackendError):
            assert response.headers["retry-after"] == "2"
        assert (await http.get("/health")).json()["requests"]["by_status"][str(status)] == 1


async def test_a_disconnected_client_s_generation_is_cancelled(make_app) -> None:
    hold = asyncio.Event()
    app, backend = make_app(script=[scripted_draft("\nok")])
    backend.hold = hold  # every draft waits: a slow model
    gone = asyncio.Event()
    payload = json.dumps(body(userlm={"max_retries": 10})).encode()
    request = asyncio.create_task(call_asgi(app, iter([payload]), disconnect=gone))
    while backend.started == 0:
        await asyncio.sleep(0.01)
    gone.set()  # the client hangs up while the first draft is being drawn
    status, data, _ = await asyncio.wait_for(request, timeout=30)
    hold.set()  # had the work gone on, the next drafts would start now
    await asyncio.sleep(0.05)
    assert status == 499 and data["error"]["code"] == "client_closed"
    assert backend.started == 1 and backend.cancelled == 1  # 10 retries were allowed; none was drawn
    assert app.state.stats.cancelled == 1 and app.state.stats.in_flight == 0


class GatedTokenizer:
    """A real tokenizer whose template rendering of a long prompt waits until the test opens a gate."""

    def __init__(self, inner: Any, gate: threading.Event, events: list[str]) -> None:
        self._inner, self._gate, self._events = inner, gate, events

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def apply_chat_template(self, chat: Any, **kwargs: Any) -> Any:
        if sum(len(m["content"]) for m in chat) > OFFLOAD_CHARS:
            self._events.append("render started")
            self._gate.wait(timeout=30)
            self._events.append("render finished")
        return self._inner.apply_chat_template(chat, **kwargs)


async def test_a_huge_prompt_is_rendered_off_the_event_loop(make_app, tiny_userlm_dir) -> None:
    gate, events = threading.Event(), []
    tokenizer = GatedTokenizer(
        AutoTokenizer.from_pretrained(tiny_userlm_dir, local_files_only=True), gate, events
    )
    app, backend = make_app(tokenizer=tokenizer)
    big = body()
    big["messages"][0]["content"] = INTENT + " detail" * 200_000  # 1.4 MB of intent
    async with client(app) as http:
        chat = asyncio.create_task(http.post("/v1/chat/completions", json=big))
        while "render started" not in events:
            await asyncio.sleep(0.01)
        health = await http.get("/health")  # answered while the prompt is still being rendered
        events.append("health answered")
        gate.set()
        response = await chat
    assert health.status_code == 200 and response.status_code == 200
    assert events == ["render started", "health answered", "render finished"]
    assert len(backend.requests[0].prompt_ids) > 200_000


# ----- bounded by construction (issue 19) -----


async def test_the_api_key_is_checked_before_anything_is_read(make_app) -> None:
    key = "sk-serve-0123456789"
    app, backend = make_app(api_key=key)
    payload = json.dumps(body()).encode()
    for headers in (
        [],
        [(b"authorization", b"Bearer sk-serve-0123456780")],
        [(b"authorization", key.encode())],
    ):
        status, data, pulled = await call_asgi(app, iter([payload]), headers=headers)
        assert status == 401 and data["error"]["code"] == "invalid_api_key" and pulled == 0  # body never read
        assert_openai_error(data)
    status, data, _ = await call_asgi(
        app, iter([payload]), headers=[(b"authorization", f"Bearer {key}".encode())]
    )
    assert status == 200 and data["choices"][0]["message"]["content"] == GOOD.strip()
    async with client(app) as http:
        assert (await http.get("/health")).status_code == 200  # open: liveness probes carry no key
        assert (await http.get("/metrics")).status_code == 401
        assert (await http.get("/v1/models")).status_code == 401
        ok = await http.get(
            "/v1/models", headers={"Authorization": f"bearer {key}"}
        )  # the scheme is any case
        assert ok.status_code == 200
    assert app.state.stats.unauthorized == 5 and backend.started == 1


def one_char_messages(n: int) -> dict[str, Any]:
    """The round-3 attack: `n` one-character messages after the intent, roles alternating (0.73 MB at 20,000)."""
    turns = [{"role": "user" if i % 2 else "assistant", "content": "x"} for i in range(n)]
    return body(messages=[body()["messages"][0], *turns])


async def test_more_messages_than_the_limit_are_a_400_naming_it(make_app) -> None:
    app, backend = make_app()
    started = time.perf_counter()
    async with client(app) as http:
        response = await http.post("/v1/chat/completions", json=one_char_messages(20_000))
    assert response.status_code == 400 and time.perf_counter() - started < 10
    assert_openai_error(response.json(), param="messages", needle="limit is 1024")
    assert response.json()["error"]["code"] == "limit_exceeded" and backend.started == 0


async def test_20000_messages_under_a_raised_limit_never_stall_health(make_app) -> None:
    """Round 3: 20,000 one-character messages froze /health for 52-63 s (quadratic rendering on the event loop).
    With the limit lifted to let them in, parsing and rendering run off the loop and in linear time."""
    app, backend = make_app(limits=ServeLimits(max_messages=20_001))
    latencies: list[float] = []
    async with client(app) as http:
        chat = asyncio.create_task(http.post("/v1/chat/completions", json=one_char_messages(20_000)))
        started = time.perf_counter()
        while not chat.done():
            asked = time.perf_counter()
            assert (await http.get("/health")).status_code == 200
            latencies.append(time.perf_counter() - asked)
            await asyncio.sleep(0.02)
            assert time.perf_counter() - started < 120, "the request did not finish"
        response = await chat
    assert response.status_code == 200 and len(backend.requests[0].prompt_ids) > 100_000
    assert len(latencies) >= 3 and max(latencies) < 1.0, max(latencies)  # answered all along


@pytest.mark.parametrize(
    ("words", "needle"),
    [
        ([f"w{i}" for i in range(65)], "holds 65 words; this server's limit is 64"),
        ([f"w{i}" for i in range(200_000)], "holds 200000 words"),
        (["x" * 33], "is 33 characters long; this server's limit is 32"),
        ({"I": 1}, "must be a list of strings"),
        (["ok", 7], "must be a list of strings"),
        (["\ud800"], "lone surrogate"),
    ],
    ids=["65", "200k", "long", "dict", "int", "surrogate"],
)
async def test_banned_first_words_are_bounded_in_count_and_size(make_app, words, needle) -> None:
    app, backend = make_app()
    started = time.perf_counter()
    # ASCII JSON: a surrogate travels as "\ud800"
    payload = json.dumps(body(userlm={"banned_first_words": words})).encode()
    async with client(app) as http:
        response = await http.post("/v1/chat/completions", content=payload)
    assert response.status_code == 400 and time.perf_counter() - started < 10  # round 3: 200k words > 400 s
    assert_openai_error(response.json(), needle=needle)
    assert response.json()["error"]["param"].startswith("userlm.banned_first_words") and backend.started == 0


async def test_banned_first_words_at_the_limit_are_served(make_app) -> None:
    app, backend = make_app()
    words = [f"{i:02d}" + "z" * 30 for i in range(64)]  # 64 words of 32 characters
    async with client(app) as http:
        response = await http.post("/v1/chat/completions", json=body(userlm={"banned_first_words": words}))
    assert response.status_code == 200 and len(backend.requests[0].first_bans) >= 64


async def test_thousands_of_unknown_guardrail_settings_get_a_short_400(make_app) -> None:
    app, _ = make_app()
    async with client(app) as http:
        response = await http.post(
            "/v1/chat/completions", json=body(userlm={f"setting_{i}": i for i in range(10_000)})
        )
    assert response.status_code == 400 and len(response.text) < 2000
    assert_openai_error(response.json(), param="userlm", needle="and 9995 more")


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([{"role": "system", "content": "intent \ud800"}], "messages[0].content"),
        ([body()["messages"][0], {"role": "assistant", "content": "hi \udfff there"}], "messages[1].content"),
        (
            [body()["messages"][0], {"role": "assistant", "content": [{"type": "text", "text": "\ud83d"}]}],
            "messages[1].content",
        ),
        (
            [body()["messages"][0], {"role": "tool", "content": "x", "tool_call_id": "\udc00"}],
            "messages[1].tool_call_id",
        ),
    ],
)
async def test_a_lone_surrogate_is_a_400_not_a_500(make_app, messages, param) -> None:
    app, backend = make_app()
    payload = json.dumps(body(messages=messages)).encode()  # ensure_ascii: the surrogate travels as "\ud800"
    assert b"\\ud" in payload
    async with client(app) as http:
        response = await http.post("/v1/chat/completions", content=payload)
        assert response.status_code == 400, response.text
        assert_openai_error(response.json(), param=param, needle="lone surrogate")
        assert response.json()["error"]["code"] == "invalid_unicode" and backend.started == 0
        paired = json.dumps(
            body(messages=[body()["messages"][0], {"role": "assistant", "content": "ok \U0001f600"}])
        )
        assert (await http.post("/v1/chat/completions", content=paired.encode())).status_code == 200


async def test_a_half_sent_body_is_cut_after_the_body_timeout(make_app) -> None:
    app, backend = make_app(limits=ServeLimits(body_timeout_s=0.3))
    sent: list[dict[str, Any]] = []
    first = True

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b'{"messages": [', "more_body": True}
        await asyncio.Event().wait()  # the rest never comes
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")],
        "client": ("127.0.0.1", 1),
        "server": ("serve", 80),
    }
    started = time.perf_counter()
    await asyncio.wait_for(app(scope, receive, send), timeout=10)
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 408 and (b"connection", b"close") in start["headers"]
    assert json.loads(b"".join(m.get("body", b"") for m in sent[1:]))["error"]["code"] == "body_timeout"
    assert time.perf_counter() - started < 5 and backend.started == 0


async def test_a_request_past_its_deadline_is_a_504_and_its_generation_is_cancelled(make_app) -> None:
    app, backend = make_app(limits=ServeLimits(request_timeout_s=0.5))
    backend.hold = asyncio.Event()  # a draft that never finishes
    async with client(app) as http:
        started = time.perf_counter()
        response = await http.post("/v1/chat/completions", json=body(userlm={"max_retries": 10}))
        assert response.status_code == 504 and time.perf_counter() - started < 10
        assert_openai_error(response.json(), needle="deadline (0.5 s")
        assert response.json()["error"]["code"] == "request_timeout"
        await asyncio.sleep(0.05)
        assert backend.started == 1 and backend.cancelled == 1  # no further draft was drawn
        assert (await http.get("/health")).json()["requests"]["timed_out"] == 1


# ----- what clients read (issue 21): the stream, usage, the guardrail record, the end signal -----


def sse_events(text: str) -> list[Any]:
    """The `data:` payloads of a server-sent-events body (JSON decoded; `[DONE]` kept as the string)."""
    events = [line[len("data: ") :] for line in text.split("\n\n") if line.startswith("data: ")]
    return [e if e == "[DONE]" else json.loads(e) for e in events]


async def test_stream_sends_the_turn_then_the_end_signal_record_and_usage(make_app) -> None:
    app, backend = make_app(script=[scripted_draft("\nok"), scripted_draft(GOOD)])  # one rejected, then GOOD
    async with client(app) as http:
        response = await http.post(
            "/v1/chat/completions", json=body(stream=True, stream_options={"include_usage": True})
        )
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    role, content, final, usage = events[:-1]
    assert role["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert content["choices"][0]["delta"]["content"] == GOOD.strip()
    assert all(e["object"] == "chat.completion.chunk" and e["id"] == role["id"] for e in events[:-1])
    assert final["choices"][0]["finish_reason"] == "stop" and final["choices"][0]["delta"] == {}
    record = final[RECORD_FIELD]
    assert record[END_FIELD] is False and [r["reason"] for r in record["rejected"]] == ["too_short"]
    assert record["retries"] == 1 and record["guardrails_exhausted"] is False
    assert usage["choices"] == [] and all(e["usage"] is None for e in events[:3])
    turn = scripted_draft(GOOD).output_tokens
    assert usage["usage"]["completion_tokens"] == turn  # the returned turn's tokens only
    assert usage["usage"]["drafts"] == {
        "count": 2,
        "prompt_tokens": 20,
        "completion_tokens": turn + scripted_draft("\nok").output_tokens,
        "total_tokens": 20 + turn + scripted_draft("\nok").output_tokens,
    }
    app, backend = make_app(script=[scripted_draft("\nok"), scripted_draft(GOOD)])
    async with client(app) as http:
        plain = (await http.post("/v1/chat/completions", json=body())).json()  # the same, not streamed
    assert plain["usage"]["completion_tokens"] == turn and plain["usage"]["drafts"]["count"] == 2
    assert plain["usage"]["prompt_tokens"] == len(backend.requests[-1].prompt_ids)  # the turn's prompt, once


async def test_the_end_signal_and_a_spelled_end_as_clients_read_them(make_app) -> None:
    allow = {"min_turns_before_end": 0}
    app, _ = make_app(script=[scripted_draft("\nthanks, bye", ended=True)])
    async with client(app) as http:
        data = (await http.post("/v1/chat/completions", json=body(userlm=allow))).json()
    choice, record = data["choices"][0], data[RECORD_FIELD]
    assert choice["message"]["content"] == END_CONTENT and choice["finish_reason"] == "stop"
    assert record[END_FIELD] is True and record["end_reason"] == "end_token"
    assert record["text_before_end"] == "thanks, bye"
    # the end string spelled in ordinary tokens: just text while ending is allowed, never the literal signal
    app, _ = make_app(script=[scripted_draft(f"\nok {END_CONVERSATION} sure thing")])
    async with client(app) as http:
        for guardrails in (allow, None):  # allowed: the text; banned: rejected, and the fallback is no end
            data = (await http.post("/v1/chat/completions", json=body(userlm=guardrails))).json()
            content = data["choices"][0]["message"]["content"]
            assert END_CONTENT not in content and data[RECORD_FIELD][END_FIELD] is False
            assert data[RECORD_FIELD]["end_reason"] is None


def test_the_api_key_comes_from_the_flag_the_file_or_the_environment(tmp_path) -> None:
    from userlm_plugin.errors import ConfigError
    from userlm_plugin.serve.auth import API_KEY_ENV, resolve_api_key

    key_file = tmp_path / "key"
    key_file.write_text("sk-from-file\nsecond line ignored\n")
    assert resolve_api_key(None, str(key_file), {API_KEY_ENV: "sk-env"}) == "sk-from-file"
    assert resolve_api_key("sk-flag", None, {API_KEY_ENV: "sk-env"}) == "sk-flag"
    assert resolve_api_key(None, None, {API_KEY_ENV: " sk-env\n"}) == "sk-env"
    assert resolve_api_key(None, None, {}) is None  # no key: an open server, as before
    (tmp_path / "empty").write_text("\n")
    for flag, file, env, needle in (
        ("a", str(key_file), {}, "not both"),
        (None, str(tmp_path / "empty"), {}, "empty"),
        (None, str(tmp_path / "missing"), {}, "cannot read"),
        (None, None, {API_KEY_ENV: "  "}, "empty"),
    ):
        with pytest.raises(ConfigError, match=needle):
            resolve_api_key(flag, file, env)


def test_serve_model_args_refuse_yaml_aliases() -> None:
    """`-M` values are YAML (as in Inspect); an alias could stand for gigabytes, so it is refused, naming the -M."""
    from userlm_plugin.errors import ConfigError
    from userlm_plugin.serve.cli import parse_model_args

    assert parse_model_args(["max_words=30", "device=cpu"]) == {"max_words": 30, "device": "cpu"}
    with pytest.raises(ConfigError, match=r"-M banned_first_words: line 1: YAML aliases"):
        parse_model_args(["banned_first_words=[&a [x, x], *a, *a]"])
