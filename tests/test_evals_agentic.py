"""End to end: `evals/agentic_coding.py` through Inspect's eval(), offline, on Lost in Conversation-schema records
(tests/fixtures/lic_mini.json): a scripted `react` agent (mockllm) that asks with `ask_user` and in plain
messages, runs code in the confined python tool and submits, against the scripted user and the tiny User LM;
scored as the coding eval scores; every question and answer in the transcript."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from agent_models import ScriptedModel, call
from inspect_ai import eval
from inspect_ai.log import EvalSample, resolve_sample_attachments
from inspect_ai.model import ChatMessage, ChatMessageAssistant

from userlm_plugin.errors import UsageError
from userlm_plugin.evals.agentic.task import agentic_coding_task
from userlm_plugin.records import conversation_from_store
from userlm_plugin.turns import StopReason

ROOT = Path(__file__).parent.parent
FIXTURE = str(ROOT / "tests" / "fixtures" / "lic_mini.json")
AGENTIC = f"{ROOT / 'evals' / 'agentic_coding.py'}@agentic_coding"
DETAILS = {
    "type": "object",
    "properties": {"details": {"type": "string", "description": "inputs"}},
    "required": ["details"],
}
SOLUTION = "```python\ndef add(x, y):\n    return x + y\n```"
CHECK = "def add(x, y):\n    return x + y\n\nprint(add(2, 3))"


def careful_agent(messages: list[ChatMessage], n: int) -> Any:  # noqa: ARG001
    """Asks for the inputs (ask_user), then for the output (a message), tests its code, submits: each step only
    once what it needs has been said."""
    users = " ".join(m.text for m in messages if m.role == "user")
    tools = [m for m in messages if m.role == "tool"]
    if not any(m.function == "ask_user" for m in tools):
        return call("ask_user", message="What are the function's inputs?", schema=DETAILS)
    if "sum" not in users:
        return "Thanks. And what should it return?"
    if not any(m.function == "python" for m in tools):
        return call("python", code=CHECK)
    return call("submit", answer=SOLUTION)


def fixed_agent(messages: list[ChatMessage], n: int) -> Any:  # noqa: ARG001
    """The same steps in a fixed order, whatever the user says (for the tiny User LM, whose words are random)."""
    steps = [
        call("ask_user", message="What are the function's inputs?", schema=DETAILS),
        "Thanks. And what should it return?",
        call("python", code=CHECK),
        call("submit", answer=SOLUTION),
    ]
    return steps[n - 1] if n <= len(steps) else "(done)"


def run(tmp_path: Path, agent: ScriptedModel, **task_args: Any) -> EvalSample:
    roles = task_args.pop("model_roles", None)
    [log] = eval(
        AGENTIC,
        model=agent.model(),
        model_roles=roles,
        task_args={"data": FIXTURE, "sources": ["humaneval"], **task_args},
        epochs=1,
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "success", log.error
    [sample] = log.samples
    assert sample.error is None, sample.error
    return resolve_sample_attachments(sample)


def assert_every_question_and_answer_is_in_the_transcript(sample: EvalSample) -> None:
    conv = conversation_from_store(sample.store)
    asked = [
        c
        for m in sample.messages
        if isinstance(m, ChatMessageAssistant)
        for c in m.tool_calls or []
        if c.function == "ask_user"
    ]
    questions = [t for t in conv.turns if "question" in t.metadata]
    assert [q.metadata["question"] for q in questions] == [c.arguments["message"] for c in asked]
    spans = {
        e.name: e.id for e in sample.events if e.event == "span_begin" and e.name.startswith("user turn")
    }
    for record in questions:
        span_id = spans[f"user turn {record.index} ({conv.simulator})"]
        inside = [e for e in sample.events if getattr(e, "span_id", None) == span_id]
        assert any(e.event == "input" and e.message == record.metadata["question"] for e in inside)
        assert any(e.event == "info" and "Asked by the agent" in str(e.data) for e in inside)
    # every message the agent wrote without a tool call got the user's reply, a user turn of the same record
    for i, message in enumerate(sample.messages[:-1]):
        if isinstance(message, ChatMessageAssistant) and not message.tool_calls and message.text:
            reply = sample.messages[i + 1]
            assert reply.role == "user" and reply.metadata["simulator"] == conv.simulator
            assert conv.turns[reply.metadata["turn"] - 1].text == reply.text


def test_scripted_user_agent_asks_tests_and_submits(tmp_path: Path) -> None:
    agent = ScriptedModel(careful_agent)
    sample = run(tmp_path, agent, setting="scripted")

    score = sample.scores["code_scorer"]
    assert score.value["correct"] == 1.0 and score.metadata["stop_reason"] == "stop_when"
    assert score.metadata["scoring"] == "corrected"
    conv = conversation_from_store(sample.store)
    assert conv.stop_reason == StopReason.STOP_WHEN and conv.revealed_shards == [1, 2, 3]
    assert [t.text for t in conv.turns][0] == "write a python function that adds stuff"
    assert json.loads(conv.turns[1].text) == {
        "details": "it takes two integers x and y"
    }  # shard 2, asked for
    assert conv.turns[2].text == "return their sum"  # shard 3, in reply to the agent's message
    assert sample.scores["shard_coverage"].value["coverage"] == 1.0
    # the python tool ran the agent's code, confined, and showed what it printed
    [ran] = [m for m in sample.messages if m.role == "tool" and m.function == "python"]
    assert ran.text == "5\n"
    # the agent saw neither shard 2 nor 3 before the user gave them
    first_input = "\n".join(m.text for m in agent.inputs[0])
    assert "two integers" not in first_input and "sum" not in first_input
    assert_every_question_and_answer_is_in_the_transcript(sample)


def test_lic_exact_scoring_grades_the_submission_too(tmp_path: Path) -> None:
    sample = run(tmp_path, ScriptedModel(careful_agent), setting="scripted", scoring="lic_exact")
    score = sample.scores["code_scorer"]
    assert score.value["correct"] == 1.0 and score.metadata["scoring"] == "lic_exact"


def test_tiny_userlm_plays_the_user_end_to_end(
    tmp_path: Path, tiny_userlm_dir: Path, tiny_userlm_model
) -> None:
    user = tiny_userlm_model(tiny_userlm_dir)
    sample = run(tmp_path, ScriptedModel(fixed_agent), setting="userlm", model_roles={"user": user})

    conv = conversation_from_store(sample.store)
    assert conv.simulator == "userlm" and conv.user_turns == 3  # opening, the ask_user answer, the reply
    assert conv.stop_reason == StopReason.STOP_WHEN and sample.scores["code_scorer"].value["correct"] == 1.0
    question = conv.turns[1]
    assert question.metadata["ask_user"]["outcome"] == "accepted"
    assert json.loads(question.text) == {"details": question.metadata["user_reply"]}
    model_calls = [e for e in sample.events if e.event == "model" and e.role == "user"]
    assert len(model_calls) >= 3 and all(str(e.model).startswith("userlm/") for e in model_calls)
    assert_every_question_and_answer_is_in_the_transcript(sample)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            {"setting": "full", "data": FIXTURE},
            r"-T setting='full': not an agentic setting; use one of sharded",
        ),
        ({"paper": True, "data": FIXTURE}, r"-T paper=True"),
        ({"tool_timeout": 0, "data": FIXTURE}, r"-T tool_timeout=0"),
        ({"setting": "sharded", "dataset": "humaneval"}, r"needs sharded instructions"),
        ({"max_turn": 3, "data": FIXTURE}, r"unknown -T argument\(s\) max_turn"),
    ],
)
def test_wrong_arguments_are_one_line_errors(args: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        agentic_coding_task(**args)


def test_the_documented_inspect_evals_wrapping_builds(tmp_path: Path) -> None:
    """docs/agents.md's `ipi_coding_agent` wrapping, as written, builds a task that keeps the original's dataset,
    setup, sandbox and limits and runs its agent under the simulated user (running it needs Docker)."""
    from inspect_ai.util import registry_info

    from userlm_plugin._inspect_compat import chain_steps, load_tasks

    doc = (ROOT / "docs" / "agents.md").read_text(encoding="utf-8")
    block = doc.split("<!-- tested: tests/test_evals_agentic.py builds this task -->", 1)[1]
    code = block.split("```python\n", 1)[1].split("```", 1)[0]
    file = tmp_path / "ipi_with_user.py"
    file.write_text(code, encoding="utf-8")
    [wrapped] = load_tasks([f"{file}@ipi_coding_agent_with_user"], {})

    from inspect_evals.ipi_coding_agent import ipi_coding_agent

    original = ipi_coding_agent()
    assert wrapped.name == "ipi_coding_agent+simulated_user"
    assert len(wrapped.dataset) == len(original.dataset) and wrapped.sandbox == original.sandbox
    assert wrapped.message_limit == original.message_limit and wrapped.setup is not None
    steps = [registry_info(s).name for s in chain_steps(wrapped.solver)]
    assert steps == ["userlm_plugin/set_intent", "userlm_plugin/simulated_user"]


def test_the_python_tool_runs_confined_and_reports_like_inspects(tmp_path: Path, monkeypatch) -> None:
    from inspect_ai import Task
    from inspect_ai.dataset import Sample
    from inspect_ai.solver import solver

    from userlm_plugin.evals.agentic.tools import confined_python

    monkeypatch.setenv("AGENTIC_TEST_SECRET", "s3cret")
    programs = {
        "prints": "import sys\nprint('out')\nprint('err', file=sys.stderr)",
        "raises": "raise ValueError('boom')",
        "environment": "import os\nprint(os.environ.get('AGENTIC_TEST_SECRET'))",
        "loops": "while True:\n    pass",
    }

    @solver
    def probe():
        async def solve(state, generate):
            tool = confined_python(timeout=2)
            for name, code in programs.items():
                state.metadata[name] = await tool(code=code)
            return state

        return solve

    [log] = eval(
        Task(dataset=[Sample(input="-")], solver=probe(), sandbox="local"),
        model="mockllm/model",
        display="none",
        log_dir=str(tmp_path),
    )
    out = log.samples[0].metadata
    assert out["prints"] == "err\n\nout\n"  # Inspect's python(): stderr, a newline, stdout
    assert "ValueError: boom" in out["raises"] and "Traceback" in out["raises"]
    assert out["environment"] == "None\n"  # the eval's environment stays out of the agent's code
    assert "timed out after 2s" in out["loops"]
