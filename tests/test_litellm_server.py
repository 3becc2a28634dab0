"""End to end through the `litellm/` provider against a real OpenAI-compatible server running real weights
(llama.cpp serving SmolLM2-135M-Instruct on 127.0.0.1; see tests/llama_server.py).

Replies are capped at a few dozen tokens so the whole module stays within ~1 minute on 2 cores.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from inspect_ai import Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.log import read_eval_log
from inspect_ai.model import (
    ChatMessageAssistant,
    ChatMessageTool,
    ChatMessageUser,
    GenerateConfig,
    Model,
    get_model,
)
from inspect_ai.solver import TaskState
from inspect_ai.tool import ToolCall, ToolFunction, ToolInfo, ToolParam, ToolParams
from llama_server import LlamaServer

import userlm_plugin._registry  # noqa: F401

pytestmark = [pytest.mark.server, pytest.mark.slow]

INTENT = "You want to learn how to bake a simple loaf of bread at home."
ADD = ToolInfo(
    name="add",
    description="Add two integers and return the sum.",
    parameters=ToolParams(
        properties={
            "a": ToolParam(type="integer", description="first number"),
            "b": ToolParam(type="integer", description="second number"),
        },
        required=["a", "b"],
    ),
)


def server_model(server: LlamaServer, **config: Any) -> Model:
    """A fresh `litellm/openai/smollm2` model on this server (not memoized: each role gets its own), every call
    bounded: 60 s per attempt and 2 retries at most (a stuck server fails the test, it never stalls the run)."""
    return get_model(
        server.model,
        memoize=False,
        config=GenerateConfig(**{"max_retries": 2, **config}),
        **server.model_args,
    )


async def test_plain_generate_records_usage_and_call(llama_server: LlamaServer) -> None:
    model = server_model(llama_server)
    output, call = await model.api.generate(
        [ChatMessageUser(content="What is the capital of France? Answer in one sentence.")],
        [],
        "auto",
        GenerateConfig(max_tokens=16, temperature=0.0, seed=7),
    )
    assert not isinstance(output, Exception)
    assert output.completion.strip()
    assert output.stop_reason in ("stop", "max_tokens")
    assert output.usage is not None
    assert output.usage.input_tokens > 0 and 0 < output.usage.output_tokens <= 16
    assert output.usage.total_tokens == output.usage.input_tokens + output.usage.output_tokens
    assert output.usage.total_cost is None  # LiteLLM has no price for a local model: unknown, not 0
    assert call.request["api_base"] == llama_server.base_url and "api_key" not in call.request
    assert call.response["usage"]["completion_tokens"] == output.usage.output_tokens


async def test_tool_calls_round_trip(llama_server: LlamaServer) -> None:
    """llama.cpp honours a forced tool choice with a grammar, so the real server returns a real tool call."""
    api = server_model(llama_server).api
    ask = [ChatMessageUser(content="What is 2 plus 3? Use the add tool.")]
    output, call = await api.generate(
        ask, [ADD], ToolFunction("add"), GenerateConfig(max_tokens=40, temperature=0)
    )
    assert output.stop_reason == "tool_calls", call.response
    [tool_call] = output.message.tool_calls or []
    assert tool_call.function == "add" and set(tool_call.arguments) == {"a", "b"}
    assert all(isinstance(v, int) for v in tool_call.arguments.values())
    # ... and the tool result goes back as an OpenAI `tool` message the server accepts
    history = [
        *ask,
        ChatMessageAssistant(
            content="", tool_calls=[ToolCall(id="c1", function="add", arguments={"a": 2, "b": 3})]
        ),
        ChatMessageTool(content="5", tool_call_id="c1", function="add"),
    ]
    answer, answer_call = await api.generate(
        history, [ADD], "none", GenerateConfig(max_tokens=20, temperature=0)
    )
    assert answer.completion.strip() and not answer.message.tool_calls
    sent = answer_call.request["messages"]
    assert sent[1]["tool_calls"][0]["function"]["name"] == "add"
    assert sent[2] == {"role": "tool", "content": "5", "tool_call_id": "c1"}


def _conversation_task(max_turns: int = 3, **solver_args: Any) -> Task:
    from userlm_plugin import prompted_user, simulated_user

    simulator = prompted_user(max_tokens=24, max_retries=1, seed=11)
    return Task(
        dataset=[
            Sample(
                input="(unused: the simulated user writes turn 1)", id="bread", metadata={"intent": INTENT}
            )
        ],
        solver=simulated_user(simulator=simulator, max_turns=max_turns, **solver_args),
    )


def test_three_turn_conversation_both_roles_on_the_server(llama_server: LlamaServer, tmp_path: Path) -> None:
    from userlm_plugin.records import conversation_from_store

    [log] = eval(
        _conversation_task(),
        model=server_model(llama_server),
        model_roles={"user": server_model(llama_server)},
        max_tokens=32,
        temperature=0.0,
        seed=5,
        log_model_api=True,  # keep every call (Inspect keeps the first 5 per model by default)
        display="none",
        log_dir=str(tmp_path),
    )
    assert log.status == "success", log.error
    [sample] = log.samples or []
    assert sample.error is None
    conv = conversation_from_store(sample.store)
    assert (conv.user_turns, conv.assistant_turns, conv.stop_reason) == (3, 3, "max_turns")
    assert [m.role for m in sample.messages] == ["user", "assistant"] * 3
    assert all(m.text.strip() for m in sample.messages if m.role == "user")
    # usage per role: the simulated user's calls are recorded under its role, the assistant's under the model
    user_usage = log.stats.role_usage["user"]
    assert user_usage.input_tokens > 0 and user_usage.output_tokens > 0
    total = log.stats.model_usage[llama_server.model]
    assert total.output_tokens > user_usage.output_tokens  # the assistant's three replies are on top
    assert sample.role_usage["user"].output_tokens == user_usage.output_tokens
    # every call to the server is in the transcript with its request (no key) and response
    calls = [e.call for e in sample.events if e.event == "model"]
    assert len(calls) >= 6 and all(c is not None and c.response and "api_key" not in c.request for c in calls)


def test_server_killed_mid_run_fails_the_sample_not_the_eval(
    llama_server_factory,
    tmp_path: Path,
) -> None:
    """The server dies after the first assistant turn: the next call is retried (Inspect's backoff, bounded by
    max_retries=1), then the sample fails with the connection error; the eval completes and its log is written."""
    from userlm_plugin.records import conversation_from_store

    server = llama_server_factory()  # a private server: this test stops it

    def kill_server_after_first_turn(state: TaskState) -> bool:
        server.stop()
        return False

    [log] = eval(
        _conversation_task(stop_when=kill_server_after_first_turn),
        model=server_model(server),
        model_roles={"user": server_model(server)},
        max_tokens=16,
        max_retries=1,
        timeout=60,
        fail_on_error=False,
        display="none",
        log_dir=str(tmp_path),
    )
    assert server.stopped
    assert log.status == "success"  # the eval itself completed
    assert log.location and os.path.exists(log.location)
    [sample] = read_eval_log(log.location).samples or []
    assert sample.error is not None
    assert "ModelServerUnreachable" in sample.error.message  # Inspect: "RetryError(... raised <class>)"
    assert f"cannot connect to {server.base_url}" in sample.error.traceback
    conv = conversation_from_store(sample.store)  # what happened before the failure is still there
    assert (conv.user_turns, conv.assistant_turns) == (1, 1)
    assert conv.stop_reason == "simulator_error"
    failed = [e for e in sample.events if e.event == "model" and e.error]
    assert len(failed) == 2  # the first attempt and the one retry
    assert all(f"cannot connect to {server.base_url}" in (e.error or "") for e in failed)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (utime and stime, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_server_crashing_mid_generation_fails_the_eval_within_60_s(
    llama_server_factory, tmp_path: Path
) -> None:
    """What an AMX machine did to a natively built server, on purpose: the server dies (SIGSEGV) in the middle of a
    completion. With the user's defaults (no --max-retries, no --timeout: Inspect alone would retry forever) the
    sample fails within 60 s naming the URL, and the eval and its log survive."""
    import signal
    import threading
    import time

    from userlm_plugin import scripted_user, simulated_user

    server = llama_server_factory()  # private: this test kills it
    pid = server.process.pid
    # defaults as a user would have them: only the endpoint and key, nothing bounding the retries
    model = get_model(server.model, memoize=False, api_base=server.base_url, api_key="x")
    idle = _cpu_seconds(pid)
    killed = threading.Event()

    def crash_once_generating() -> None:
        deadline = time.monotonic() + 50
        while time.monotonic() < deadline:
            if _cpu_seconds(pid) - idle > 0.3:  # it is busy with the completion
                os.kill(pid, signal.SIGSEGV)
                killed.set()
                return
            time.sleep(0.02)

    task = Task(
        dataset=[Sample(input="", id="crash", metadata={"intent": INTENT})],
        solver=simulated_user(
            simulator=scripted_user(turns=["Tell me a very long story about bread."]), max_turns=1
        ),
    )
    killer = threading.Thread(target=crash_once_generating, daemon=True)
    killer.start()
    started = time.monotonic()
    [log] = eval(
        task,
        model=model,
        max_tokens=1500,
        logit_bias={2: -100},  # SmolLM2's <|im_end|> banned: the completion runs until the server dies
        fail_on_error=False,
        display="none",
        log_dir=str(tmp_path),
    )
    elapsed = time.monotonic() - started
    killer.join(timeout=5)
    assert killed.is_set(), "the server never started generating"
    assert elapsed < 60, f"the eval took {elapsed:.0f} s after the server died"
    assert server.process.wait(timeout=10) == -signal.SIGSEGV
    assert log.status == "success" and log.location and os.path.exists(log.location)
    [sample] = read_eval_log(log.location).samples or []
    assert sample.error is not None
    assert f"cannot connect to {server.base_url}" in sample.error.message
    assert "not retried" in sample.error.message
