"""`userlm-plugin compare --view fidelity`: simulators side by side with the people as their own row, two user
models of one preset as two rows, runs on different conversations compared on the ones they share, and a chart."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

import pytest
from inspect_ai import Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.model import ChatMessage, GenerateConfig, ModelOutput, ModelUsage, get_model
from inspect_ai.scorer import match

from userlm_plugin.cli import main
from userlm_plugin.report.fidelity import HUMAN, build_fidelity_report, load_fidelity_runs

REPO = Path(__file__).resolve().parents[1]
EVAL_FILE = os.path.relpath(REPO / "evals" / "human_fidelity.py")
CONVERSATIONS = str(REPO / "tests" / "fixtures" / "human" / "conversations.jsonl")


def user_model(name: str, texts: list[str]) -> Any:
    cycle = itertools.cycle(texts)

    def reply(input: list[ChatMessage], tools: Any, tool_choice: Any, config: GenerateConfig) -> ModelOutput:
        output = ModelOutput.from_content(model=name, content=next(cycle))
        output.usage = ModelUsage(input_tokens=5, output_tokens=5, total_tokens=10)
        return output

    return get_model(name, custom_outputs=reply, memoize=False)


def replay(log_dir: Path, simulator: Any, user: Any = None, **task_args: Any) -> None:
    [log] = eval(
        EVAL_FILE,
        task_args={"data": CONVERSATIONS, "simulator": simulator, **task_args},
        model_roles={"user": user} if user is not None else None,
        display="none",
        log_dir=str(log_dir),
    )
    assert log.status == "success", log.error


@pytest.fixture(scope="module")
def fidelity_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    logs = tmp_path_factory.mktemp("fidelity-logs")
    replay(logs, "scripted", user_model("mockllm/unused", ["-"]))  # scripted uses no model, bound or not
    chatty = ["Certainly! Here is a detailed and comprehensive plan for your request, step by step."]
    terse = ["ok", "more pls", "thx"]
    replay(logs, "prompted", user_model("mockllm/chatty", chatty))
    replay(logs, "prompted", user_model("mockllm/terse", terse), limit=3)  # fewer conversations
    # a log of another eval in the same folder is skipped, not compared
    eval(
        Task(dataset=[Sample(input="x", target="x")], scorer=match()),
        model="mockllm/model",
        display="none",
        log_dir=str(logs),
    )
    return logs


def test_people_first_then_one_row_per_simulator_and_user_model(fidelity_logs: Path) -> None:
    runs, skipped = load_fidelity_runs(fidelity_logs)
    assert len(runs) == 3 and len(skipped) == 1 and "not a human_fidelity log" in skipped[0][1]
    report = build_fidelity_report(runs, skipped)
    [table] = report.tables
    labels = [r.label for r in table.rows]
    assert labels[0] == HUMAN and table.rows[0].human
    assert set(labels[1:]) == {"prompted · mockllm/chatty", "prompted · mockllm/terse", "scripted · —"}
    # every row is computed on the 3 conversations all runs replayed, and the reader is told
    assert {r.conversations for r in table.rows} == {3}
    assert any(
        "replayed different conversations" in f and "every row is computed on the 3" in f
        for f in report.flags
    )
    people = table.rows[0].metrics
    scripted = next(r for r in table.rows if r.simulator == "scripted").metrics
    for name in ("words", "typo_pct", "lower_pct", "question_pct", "me_pct"):
        assert scripted[name] == people[name], name
    assert scripted["auroc"] == 0.5 and scripted["len_jsd"] == 0.0
    chatty = next(r for r in table.rows if r.label == "prompted · mockllm/chatty").metrics
    terse = next(r for r in table.rows if r.label == "prompted · mockllm/terse").metrics
    assert chatty["words"] > people["words"] > terse["words"]  # type: ignore[operator]
    assert chatty["auroc"] >= scripted["auroc"]  # type: ignore[operator]


def test_the_cli_writes_tables_and_a_chart(
    fidelity_logs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    assert main(["compare", str(fidelity_logs), "--view", "fidelity", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "3 simulator rows from 3 runs (1 logs skipped)" in printed.out
    assert "replayed different conversations" in printed.err
    markdown = (out / "fidelity.md").read_text()
    assert f"| **{HUMAN}** | 3 |" in markdown and "| scripted · — | 3 |" in markdown
    assert "0.500 [0.50–0.50]" in markdown or "| 0.500 |" in markdown
    assert (out / "fidelity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (out / "fidelity.html").read_text()
    assert "<tr class='human'>" in html and "fidelity.png" in html
    data = json.loads((out / "fidelity.json").read_text())
    assert data["tables"][0]["rows"][0]["human"] is True
    assert main(["compare", str(fidelity_logs), "--view", "fidelity", "--out", str(out), "--strict"]) == 2


def test_a_folder_without_fidelity_runs_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", str(tmp_path), "--view", "fidelity"]) == 1
    assert "No human_fidelity replay runs" in capsys.readouterr().err
