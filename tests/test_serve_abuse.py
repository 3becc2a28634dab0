"""`serve` under abuse, in process: the real app and provider, drafts from a scripted backend, requests sent straight
to the ASGI app (so a test can stream a body chunk by chunk, hold a draft, or hang up mid-request).

Each guard is attacked: a chunked body past the cap, JSON nested past the parser, wrong-typed fields, a runaway
`max_retries`, a huge prompt rendered while /health must keep answering, a client that leaves mid-generation,
and every kind of error a generation can raise (which must come back as OpenAI-shaped JSON with the right status).
"""

from __future__ import annotations

import asyncio
import json
import threading
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
from userlm_plugin.serve.app import create_app
from userlm_plugin.serve.protocol import ServeLimits

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

    def make(script: Any = None, limits: ServeLimits | None = None, tokenizer: Any = None):
        model = get_model(f"userlm/{tiny_userlm_dir}", memoize=False)
        script = [scripted_draft(GOOD)] if script is None else script
        backend = FakeBackend(tokenizer or base, script)
        model.api._backend = backend
        return create_app(model.api, served_name=NAME, limits=limits or ServeLimits()), backend

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
