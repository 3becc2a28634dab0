"""End to end: `evals/coding_sharded.py` and `evals/math_sharded.py` through Inspect's eval(), offline,
with a scripted user and a scripted (mockllm) assistant."""

from pathlib import Path

import pytest
from inspect_ai import eval
from inspect_ai.model import ModelOutput, ModelUsage, get_model

ROOT = Path(__file__).parent.parent
FIXTURE = str(ROOT / "tests" / "fixtures" / "lic_mini.json")
CODING = f"{ROOT / 'evals' / 'coding_sharded.py'}@coding_sharded"  # absolute paths need @task (notes G8)
MATH = f"{ROOT / 'evals' / 'math_sharded.py'}@math_sharded"


def assistant(*texts: str):
    outputs = []
    for text in texts:
        output = ModelOutput.from_content("mockllm/model", text)
        output.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)  # no tiktoken offline (G4)
        outputs.append(output)
    return get_model("mockllm/model", custom_outputs=outputs)


def metrics(log) -> dict[str, float]:
    return {k: v.value for k, v in log.results.scores[0].metrics.items()}


def test_coding_scripted_ends_early_on_the_first_correct_answer(tmp_path) -> None:
    wrong = "Here:\n```python\ndef add(x, y):\n    return x - y\n```"
    right = "Fixed:\n```python\ndef plus(a, b):\n    return a + b\n```"
    model = assistant("What should it add?", wrong, right)
    [log] = eval(
        CODING,
        model=model,
        task_args={"setting": "scripted", "data": FIXTURE, "sources": ["humaneval"], "epochs": 1},
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "success", log.error
    assert metrics(log) == {
        "performance_P": 100.0,
        "aptitude_A90": 100.0,
        "unreliability_U90_10": 0.0,
        "turns_used": 3.0,
        "ended_correct": 1.0,
    }
    [sample] = log.samples
    users = [m.text for m in sample.messages if m.role == "user"]
    assert users == [
        "write a python function that adds stuff",
        "it takes two integers x and y",
        "return their sum",
    ]
    score = sample.scores["code_scorer"]
    assert score.metadata["stop_reason"] == "stop_when" and score.metadata["answer_turn"] == 3
    checks = sample.store["AnswerChecks:checks"]
    assert [(c["assistant_turn"], c["correct"], c["by"]) for c in checks][:2] == [
        (2, False, "stop_when"),
        (3, True, "stop_when"),
    ]
    assert '"got": "-1"' in checks[0]["explanation"]


def test_coding_full_humaneval_wrong_answer_scores_zero_with_explanation(tmp_path) -> None:
    model = assistant("```python\ndef has_close_elements(numbers, threshold):\n    return False\n```")
    [log] = eval(
        CODING,
        model=model,
        task_args={"setting": "full", "dataset": "humaneval", "limit": 1, "epochs": 1},
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "success", log.error
    [sample] = log.samples
    score = sample.scores["code_scorer"]
    assert score.value["correct"] == 0.0 and score.metadata["stop_reason"] == "max_turns"
    assert "AssertionError" in score.explanation
    assert len([m for m in sample.messages if m.role == "user"]) == 1


def test_math_concat_over_epochs(tmp_path) -> None:
    model = assistant("So each friend gets 5 lollipops.", "Each friend gets 4.")
    [log] = eval(
        MATH,
        model=model,
        task_args={"setting": "concat", "data": FIXTURE, "limit": 1, "epochs": 2},
        log_dir=str(tmp_path),
        display="none",
        max_samples=1,
    )
    assert log.status == "success", log.error
    # one instruction, scores [100, 0]: P 50, A90 90, U 80
    assert metrics(log)["performance_P"] == pytest.approx(50.0)
    assert metrics(log)["aptitude_A90"] == pytest.approx(90.0)
    assert metrics(log)["unreliability_U90_10"] == pytest.approx(80.0)
    assert metrics(log)["ended_correct"] == pytest.approx(0.5)


def test_bad_options_fail_clearly() -> None:
    from userlm_plugin.evals.sharded.task import sharded_task

    with pytest.raises(ValueError, match="humaneval dataset has none"):
        sharded_task("code", setting="sharded", dataset="humaneval")
    with pytest.raises(ValueError, match="not a setting"):
        sharded_task("code", setting="multi", data=FIXTURE)
    with pytest.raises(ValueError, match="sandbox"):
        sharded_task("code", setting="full", data=FIXTURE, sandbox="vm")
    with pytest.raises(ValueError, match="single-turn"):
        sharded_task("math", setting="full", data=FIXTURE, max_turns=3)
