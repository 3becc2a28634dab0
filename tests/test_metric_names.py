"""Every scorer and metric name we register fits the width Inspect's terminal results table gives it (issue 21: a
user saw `first_tur…`). The table puts up to 4 scorers side by side and shares the console between them, so the
budget depends on how many a run shows: rendered here with Inspect's own table code, from real eval results, at
80 columns (a terminal's default, and what `--display plain` gets when stdout is not a terminal) for the runs the
README shows, and at 132 for the runs with 4 scorers per row (`-T probe=all`, `simulation_quality_scorers()`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from inspect_ai import Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.log import EvalLog
from inspect_ai.model import ModelOutput, ModelUsage, get_model
from rich.console import Console

from userlm_plugin import simulated_user, simulation_quality_scorers
from userlm_plugin.evals.simulator_quality.task import simulator_quality_task

PANEL = 4
"""Columns the task panel's border and padding take from the console."""


def out(text: str) -> ModelOutput:
    output = ModelOutput.from_content(model="mockllm/model", content=text)
    output.usage = ModelUsage(input_tokens=5, output_tokens=5, total_tokens=10)  # no tokenizer download
    return output


def respond(input: Any, tools: Any, tool_choice: Any, config: Any) -> ModelOutput:
    prompt = input[-1].text if input else ""
    if "JSON" in prompt or "json" in prompt:  # the judge
        return out('{"label": "REFUSED", "reason": "stays on task"}')
    return out("i need a regex for emails, can you help")


def cut_names(log: EvalLog, width: int) -> list[str]:
    """The names Inspect's results table shortens with `…` at console `width` (its own rendering code)."""
    from inspect_ai._display.core.results import task_scores

    assert log.status == "success", log.error
    console = Console(width=width - PANEL, record=True, file=open(__import__("os").devnull, "w"))
    for row in task_scores(log.results.scores):
        console.print(row)
    return [word for word in console.export_text().split() if "…" in word]


@pytest.fixture(scope="module")
def mock() -> Any:
    return get_model("mockllm/model", custom_outputs=respond, memoize=False)


@pytest.mark.parametrize(
    ("probe", "width"), [("first_turn", 80), ("termination", 80), ("role", 80), ("intent", 80), ("all", 132)]
)
def test_simulator_quality_names_fit(tmp_path: Path, mock: Any, probe: str, width: int) -> None:
    log = eval(
        simulator_quality_task(probe, simulator="prompted", limit=2),
        model=mock,
        model_roles={"user": mock, "judge": mock},
        display="none",
        log_dir=str(tmp_path),
    )[0]
    assert cut_names(log, width) == []


def test_simulation_quality_scorers_on_any_task_fit(tmp_path: Path, mock: Any) -> None:
    task = Task(
        dataset=[
            Sample(id=k, input="", metadata={"intent": "You are a user chatting ... to sort a list"})
            for k in "ab"
        ],
        solver=simulated_user({"simulator": "scripted", "turns": ["sort this", "thanks"]}),
        scorer=simulation_quality_scorers(),
    )
    log = eval(task, model=mock, display="none", log_dir=str(tmp_path))[0]
    assert len(log.results.scores) >= 4 and cut_names(log, 132) == []
