"""`userlm-plugin compare` on logs made here: two mock providers x two settings (single-turn and a simulated
user), two epochs each, with costs; numbers in the table are checked against the logs, the PNG must be
written, and runs whose simulator differs within a setting must be flagged.
"""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from inspect_ai import Task, eval, task
from inspect_ai.dataset import Sample
from inspect_ai.log import read_eval_log
from inspect_ai.model import ChatMessage, ModelOutput, ModelUsage, get_model
from inspect_ai.scorer import Score, match, scorer
from inspect_ai.solver import generate, prompt_template

from userlm_plugin import END_CONVERSATION, with_simulated_user
from userlm_plugin.cli import main
from userlm_plugin.report import build_comparison, compare_logs, load_runs
from userlm_plugin.report.render import COLUMNS, row_cells

QUESTIONS = {"q1": ("How many legs do 2 cats have?", "8"), "q2": ("What is 6 times 7?", "42")}
EPOCHS = 2
COST = {"mockllm/alpha": 0.001, "mockllm/beta": 0.003}
# answer k of each question for each provider, k = that question's call number (so epochs differ)
ANSWERS = {
    "mockllm/alpha": {"q1": ["8", "8"], "q2": ["42", "41"]},  # single-turn P = 75
    "mockllm/beta": {"q1": ["8", "3"], "q2": ["1", "1"]},  # single-turn P = 25
}
SIM_ANSWERS = {
    "mockllm/alpha": {"q1": ["8", "5"], "q2": ["1", "42"]},  # simulated P = 50
    "mockllm/beta": {"q1": ["2", "2"], "q2": ["1", "1"]},  # simulated P = 0
}


def out(text: str, model: str) -> ModelOutput:
    output = ModelOutput.from_content(model, text)
    output.usage = ModelUsage(
        input_tokens=10, output_tokens=5, total_tokens=15, total_cost=COST.get(model, 0.0005)
    )
    return output


def _qid(messages: list[ChatMessage]) -> str:
    text = "\n".join(m.text for m in messages)
    return next(q for q, (question, _) in QUESTIONS.items() if question in text or question[:12] in text)


def assistant(model: str, answers: dict[str, dict[str, list[str]]]) -> Callable[..., ModelOutput]:
    """A deterministic mock provider: the k-th final answer it gives to question q is answers[q][k]."""
    table = answers.get(model, answers["mockllm/alpha"])
    calls: dict[str, int] = defaultdict(int)

    def respond(messages: list[ChatMessage], *_: Any) -> ModelOutput:
        last = next(m.text for m in reversed(messages) if m.role == "user")
        if "answer please" not in last and "Answer:" not in last:
            return out("Could you tell me more?", model)
        q = _qid(messages)
        k = calls[q]
        calls[q] += 1
        return out(f"ANSWER: {table[q][k % len(table[q])]}", model)

    return respond


def user_lm(messages: list[ChatMessage], *_: Any) -> ModelOutput:
    """Stand-in User LM (role `user`): first half of the question, then asks for the answer, then leaves."""
    question = next(q for q, _ in QUESTIONS.values() if q in messages[0].text)
    asked = sum(1 for m in messages if m.role == "assistant")
    return out(
        [f"{question[:12]} ...{question[12:]}", "answer please", END_CONVERSATION][min(asked, 2)], "user"
    )


def base_task() -> Task:
    return Task(
        dataset=[Sample(id=q, input=text, target=target) for q, (text, target) in QUESTIONS.items()],
        solver=[prompt_template("{prompt}\nAnswer: give the number."), generate()],
        scorer=match(numeric=True),
        epochs=EPOCHS,
        name="arith",
    )


def run(
    log_dir: Path, model: str, simulated: bool, simulator: Any = "userlm", setting: str | None = None
) -> None:
    task = base_task()
    roles = {}
    if simulated:
        task = with_simulated_user(task, simulator=simulator, max_turns=4, setting=setting)
        roles = {"user": get_model("mockllm/user", custom_outputs=user_lm)}
    answers = SIM_ANSWERS if simulated else ANSWERS
    log = eval(
        task,
        model=get_model(model, custom_outputs=assistant(model, answers)),
        model_roles=roles or None,
        log_dir=str(log_dir),
        display="none",
        max_samples=1,
    )[0]
    assert log.status == "success", log.error


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    log_dir = tmp_path_factory.mktemp("logs")
    for model in ANSWERS:
        run(log_dir, model, simulated=False)
        run(log_dir, model, simulated=True)
    return log_dir


def _expected_from_log(path: str) -> dict[str, float]:
    """P/A90/U/cost computed straight from the log with numpy, independently of the report code."""
    log = read_eval_log(path)
    by_id: dict[str, list[float]] = defaultdict(list)
    for s in log.samples:
        by_id[str(s.id)].append(100.0 if s.scores["match"].value == "C" else 0.0)
    per = [
        (np.mean(v), np.percentile(v, 90), np.percentile(v, 90) - np.percentile(v, 10))
        for v in by_id.values()
    ]
    return {
        "P": float(np.mean([p[0] for p in per])),
        "A90": float(np.mean([p[1] for p in per])),
        "U": float(np.mean([p[2] for p in per])),
        "cost": log.stats.model_usage[log.eval.model].total_cost,
    }


def test_table_numbers_match_the_logs(logs: Path, tmp_path: Path) -> None:
    comparison, files = compare_logs(logs, tmp_path / "report")
    assert comparison.flags == [], [f.message for f in comparison.flags]
    rows = {(r.model, r.setting): r for r in comparison.rows}
    # an unlabelled simulated run is labelled by its simulator (here the User LM preset), not "simulated"
    assert set(rows) == {(m, s) for m in ANSWERS for s in ("single-turn", "userlm")}
    assert {r.base_task for r in comparison.rows} == {"arith"}  # wrapped runs compare with the original

    # hand-known P (order-invariant): alpha 75 -> 50, beta 25 -> 0
    assert rows[("mockllm/alpha", "single-turn")].metrics.P == pytest.approx(75.0)
    assert rows[("mockllm/alpha", "userlm")].metrics.P == pytest.approx(50.0)
    assert rows[("mockllm/beta", "userlm")].metrics.P == pytest.approx(0.0)
    for row in comparison.rows:
        expected = _expected_from_log(row.log)
        assert row.metrics.P == pytest.approx(expected["P"])
        assert row.metrics.A90 == pytest.approx(expected["A90"])
        assert row.metrics.U == pytest.approx(expected["U"])
        assert row.metrics.instructions == 2 and row.metrics.runs == 2 * EPOCHS
        assert row.cost == pytest.approx(expected["cost"])
    # alpha single-turn: q1 [100,100], q2 [100,0] -> A90 = (100 + 90)/2, U = (0 + 80)/2
    alpha = rows[("mockllm/alpha", "single-turn")]
    assert (alpha.metrics.A90, alpha.metrics.U) == (pytest.approx(95.0), pytest.approx(40.0))
    # costs: single-turn = 1 call per conversation; simulated = 2 assistant calls, 3 user calls
    assert alpha.cost == pytest.approx(4 * 0.001)
    sim = rows[("mockllm/alpha", "userlm")]
    assert sim.cost == pytest.approx(8 * 0.001) and sim.user_cost == pytest.approx(12 * 0.0005)
    assert sim.turns == pytest.approx(2.0) and alpha.turns == pytest.approx(1.0)
    assert sim.baseline == "single-turn"
    assert sim.delta_P == pytest.approx(-25.0) and sim.drop_P == pytest.approx(-100 / 3)
    assert rows[("mockllm/beta", "userlm")].drop_P == pytest.approx(-100.0)

    # the rendered table shows the same numbers
    md = files.markdown.read_text()
    cells = row_cells(sim)
    assert "| " + " | ".join(cells) + " |" in md
    assert cells[COLUMNS.index("P")] == "50.0" and cells[COLUMNS.index("ΔP %")] == "-33.3"
    html = files.html.read_text()
    assert "<td>mockllm/beta</td>" in html and "-100.0" in html
    assert json.loads(files.json.read_text())["rows"][0]["metrics"]["P"] >= 0
    assert files.png is not None and files.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert files.png.stat().st_size > 5000


def test_mismatched_simulators_in_one_setting_are_flagged(logs: Path, tmp_path: Path) -> None:
    mixed = tmp_path / "mixed"
    shutil.copytree(logs, mixed)
    # a third provider run whose simulator differs (scripted instead of the User LM) under the same label
    # (labelled like the others on purpose: left unlabelled it would get its own row, "scripted")
    script = {"simulator": "scripted", "turns": ["How many legs do 2 cats have? answer please"]}
    run(mixed, "mockllm/gamma", simulated=True, simulator=script, setting="userlm")
    runs, skipped = load_runs(str(mixed))
    assert skipped == []
    comparison = build_comparison(runs)
    kinds = [f.kind for f in comparison.flags]
    assert "simulator_mismatch" in kinds
    flag = comparison.flags[kinds.index("simulator_mismatch")]
    assert flag.setting == "userlm" and len(flag.logs) == 3
    assert "scripted" in flag.message and "userlm" in flag.message
    flagged = {r.model for r in comparison.rows if r.setting == "userlm" and r.flags}
    assert flagged == {"mockllm/alpha", "mockllm/beta", "mockllm/gamma"}
    assert all(not r.flags for r in comparison.rows if r.setting == "single-turn")

    # the CLI writes the report, lists the flag, and --strict fails
    assert main(["compare", str(mixed), "--out", str(tmp_path / "out")]) == 0
    assert "simulator_mismatch" in (tmp_path / "out" / "comparison.md").read_text()
    assert "⚠" in (tmp_path / "out" / "comparison.md").read_text()
    assert main(["compare", str(mixed), "--out", str(tmp_path / "out"), "--strict"]) == 2


def test_a_separate_setting_label_is_not_a_mismatch(logs: Path, tmp_path: Path) -> None:
    labelled = tmp_path / "labelled"
    shutil.copytree(logs, labelled)
    script = {"simulator": "scripted", "turns": ["What is 6 times 7? answer please"]}
    run(labelled, "mockllm/alpha", simulated=True, simulator=script, setting="scripted")
    comparison = build_comparison(load_runs(str(labelled))[0])
    assert [f.kind for f in comparison.flags] == []
    row = next(r for r in comparison.rows if r.setting == "scripted")
    assert row.baseline == "single-turn" and row.turns == pytest.approx(1.0)


def test_dataset_and_eval_arg_differences_are_flagged(logs: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(logs, other)
    task = base_task()
    task.dataset = type(task.dataset)(list(task.dataset), name="arith-v2", location="arith-v2.jsonl")
    log = eval(
        task,
        model=get_model("mockllm/delta", custom_outputs=assistant("mockllm/delta", ANSWERS)),
        log_dir=str(other),
        display="none",
    )[0]
    assert log.status == "success"
    comparison = build_comparison(load_runs(str(other))[0])
    (flag,) = [f for f in comparison.flags if f.kind == "dataset_mismatch"]
    assert "arith-v2" in flag.message


def test_cli_errors_on_an_empty_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(tmp_path)]) == 1
    assert "No comparable runs" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "nonexistent")]) == 1
    assert f"LOG_DIR {tmp_path / 'nonexistent'} does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["nonsense"])


@scorer(metrics=[])
def lic_like() -> Any:
    """The project's sharded-eval score shape: {"correct", "turns", "ended_correct"}."""

    async def score(state: Any, target: Any) -> Score:
        correct = 1.0 if target.text in state.output.completion else 0.0
        return Score(value={"correct": correct, "turns": 1.0, "ended_correct": 0.0})

    return score


@task
def lic_arith(setting: str = "full") -> Task:
    """A task with a `setting` arg, like evals/math_sharded.py."""
    return Task(
        dataset=[Sample(id=q, input=text, target=target) for q, (text, target) in QUESTIONS.items()],
        solver=generate(),
        scorer=lic_like(),
    )


def test_dict_scores_and_full_baseline_from_setting_arg(tmp_path: Path) -> None:
    for setting, answer in (("full", "8 and 42"), ("concat", "8")):
        log = eval(
            lic_arith(setting=setting),
            model=get_model("mockllm/alpha", custom_outputs=lambda *_, a=answer: out(a, "mockllm/alpha")),
            log_dir=str(tmp_path),
            display="none",
        )[0]
        assert log.status == "success", log.error
    comparison, _ = compare_logs(tmp_path, tmp_path / "out")
    rows = {r.setting: r for r in comparison.rows}
    assert rows["full"].metrics.P == 100.0 and rows["concat"].metrics.P == 50.0
    assert rows["concat"].baseline == "full" and rows["concat"].drop_P == pytest.approx(-50.0)
    assert comparison.flags == []
    with pytest.raises(ValueError, match="--score-key"):
        compare_logs(tmp_path, score_key="nope")
    runs, skipped = load_runs(str(tmp_path), score_key="nope")
    assert runs == [] and all("no 'nope'" in why for _, why in skipped)


def test_default_labels_keep_two_simulators_of_one_model_apart(logs: Path, tmp_path: Path) -> None:
    """A prompted-like (here scripted) and a User LM run of one model, both left at the default label: two rows
    named after their simulators, no `duplicate_runs`, nothing merged."""
    both = tmp_path / "both"
    shutil.copytree(logs, both)
    script = {"simulator": "scripted", "turns": ["What is 6 times 7? answer please"]}
    run(both, "mockllm/alpha", simulated=True, simulator=script)
    comparison = build_comparison(load_runs(str(both))[0])
    assert [f.kind for f in comparison.flags] == []
    alpha = {(r.setting, r.simulator) for r in comparison.rows if r.model == "mockllm/alpha"}
    assert alpha == {("single-turn", ""), ("userlm", "userlm"), ("scripted", "scripted")}


def test_runs_that_differ_only_in_simulator_are_flagged_not_merged(logs: Path, tmp_path: Path) -> None:
    same = tmp_path / "same"
    shutil.copytree(logs, same)
    script = {"simulator": "scripted", "turns": ["What is 6 times 7? answer please"]}
    run(same, "mockllm/alpha", simulated=True, simulator=script, setting="userlm")
    comparison = build_comparison(load_runs(str(same))[0])
    kinds = [f.kind for f in comparison.flags]
    assert "duplicate_runs" not in kinds and kinds.count("simulator_mismatch") == 1
    flag = comparison.flags[kinds.index("simulator_mismatch")]
    assert "differ only in the simulator" in flag.message
    rows = [r for r in comparison.rows if r.model == "mockllm/alpha" and r.setting == "userlm"]
    assert sorted(r.simulator for r in rows) == ["scripted", "userlm"] and all(r.flags for r in rows)


def _run_local_model(log_dir: Path, path: str, answers: list[str]) -> None:
    model = get_model(
        "mockllm/local", model_path=path, custom_outputs=[out(a, "mockllm/local") for a in answers]
    )
    [log] = eval(base_task(), model=model, log_dir=str(log_dir), display="none", max_samples=1)
    assert log.status == "success"


def test_a_model_is_its_name_plus_its_weights_or_server(tmp_path: Path) -> None:
    """Two runs of one provider name with different weights folders are two models, not duplicates."""
    _run_local_model(tmp_path, "/models/small-v1", ["8", "42", "8", "42"])
    _run_local_model(tmp_path, "/models/large-v2", ["3", "1", "3", "1"])
    comparison, _ = compare_logs(tmp_path, tmp_path / "out")
    assert [f.kind for f in comparison.flags] == []
    assert {r.model: r.metrics.P for r in comparison.rows} == {
        "mockllm/local (large-v2)": 0.0,
        "mockllm/local (small-v1)": 100.0,
    }
    # same folder name in two places: the labels fall back to the full paths instead of merging
    _run_local_model(tmp_path / "more", "/elsewhere/small-v1", ["8", "42", "8", "42"])
    runs, _ = load_runs(str(tmp_path))
    assert {r.model for r in runs} == {
        "mockllm/local (large-v2)",
        "mockllm/local (/models/small-v1)",
        "mockllm/local (/elsewhere/small-v1)",
    }


def test_html_has_runs_with_log_links_and_no_literal_backticks(logs: Path, tmp_path: Path) -> None:
    import re

    comparison, files = compare_logs(logs, tmp_path / "report")
    page = files.html.read_text()
    assert "`" not in page and "<code>full</code>" in page
    assert "<h2>Runs</h2>" in page
    links = re.findall(r"<a href='([^']+)'>", page)
    assert len(links) == len(comparison.runs) == 4
    assert all((files.html.parent / link).resolve().is_file() for link in links)
    assert "<img src='comparison.png'" in page


def test_without_matplotlib_the_chart_is_skipped_with_a_clear_message(
    logs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    out_dir = tmp_path / "report"
    assert main(["compare", str(logs), "--out", str(out_dir)]) == 0
    err = capsys.readouterr().err
    assert "no chart: The comparison chart (comparison.png) requires the `matplotlib` package" in err
    assert 'pip install "userlm-plugin[report]"' in err
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "comparison.html",
        "comparison.json",
        "comparison.md",
    ]
    assert "comparison.png" not in (out_dir / "comparison.html").read_text()


def test_a_failure_while_rendering_writes_nothing(
    logs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from userlm_plugin.report import render

    def broken(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("renderer broke")

    monkeypatch.setattr(render, "to_html", broken)
    with pytest.raises(RuntimeError, match="renderer broke"):
        compare_logs(logs, tmp_path / "report")
    assert not (tmp_path / "report").exists() or not any((tmp_path / "report").iterdir())


def test_dataframe_api_on_inspect_analysis(logs: Path) -> None:
    from userlm_plugin.report.frames import comparison_frame, conversations_frame, runs_frame

    runs = runs_frame(logs)
    assert len(runs) == 4 and set(runs["setting"]) == {"single-turn", "userlm"}
    assert (
        set(runs["model_label"]) == set(ANSWERS) and "task_name" in runs.columns
    )  # Inspect's own columns too
    convs = conversations_frame(logs)
    assert len(convs) == 4 * len(QUESTIONS) * EPOCHS
    simulated = convs[convs["setting"] == "userlm"]
    assert set(simulated["stop_reason"]) == {"user_ended"} and (simulated["user_turns"] == 2).all()
    assert convs[convs["setting"] == "single-turn"]["stop_reason"].isna().all()
    comparison = build_comparison(load_runs(str(logs))[0])
    table = comparison_frame(comparison)
    by_key = table.set_index(["model", "setting"])["P"]
    assert by_key[("mockllm/alpha", "single-turn")] == pytest.approx(75.0)
    assert by_key[("mockllm/alpha", "userlm")] == pytest.approx(50.0)
    # the per-conversation frame reproduces the report's P with pandas
    scores = simulated[simulated["model_label"] == "mockllm/alpha"]["score_match"].map({"C": 100.0, "I": 0.0})
    assert scores.mean() == pytest.approx(50.0)
