"""with_simulated_user / userlm_plugin/simulate on real tasks nobody in this project wrote: inspect_evals'
gsm8k (system_message few-shot + prompt_template + generate, scorer `match`) and humaneval (generate, scorer
`verify` in a `local` sandbox). Their datasets live on the hub, so `hf_dataset` is replaced by the same
records fed through the task's own `record_to_sample`; solver and scorer stay untouched.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from typing import Any

import pytest
from inspect_ai import Task, eval
from inspect_ai._eval.registry import task_create
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessage, ModelOutput, ModelUsage, get_model
from inspect_ai.scorer import match
from inspect_ai.solver import (
    Generate,
    TaskState,
    generate,
    multiple_choice,
    prompt_template,
    self_critique,
    solver,
)

from userlm_plugin import END_CONVERSATION, with_simulated_user
from userlm_plugin.records import conversation_from_store
from userlm_plugin.report import compare_logs
from userlm_plugin.wrap import WRAP_METADATA_KEY, UnwrappableTaskError, simulate

# inspect-evals is a test dependency (pyproject `test` extra): a hard import, so a missing install fails loudly
gsm8k_module = importlib.import_module("inspect_evals.gsm8k.gsm8k")
humaneval_module = importlib.import_module("inspect_evals.humaneval.humaneval")

GSM8K_RECORDS = [
    {
        "question": "Janet has 3 apples and buys 4 more. How many apples does she have now?",
        "answer": "She has 3 + 4 = <<3+4=7>>7 apples.\n#### 7",
    },
    {
        "question": "A box holds 12 eggs. How many eggs are in 5 boxes?",
        "answer": "5 boxes hold 12 * 5 = <<12*5=60>>60 eggs.\n#### 60",
    },
]
HUMANEVAL_RECORDS = [
    {
        "task_id": "HumanEval/0",
        "prompt": 'def add(a: int, b: int) -> int:\n    """Return the sum of a and b.\n    >>> add(2, 3)\n    5\n    """\n',
        "canonical_solution": "    return a + b\n",
        "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n",
        "entry_point": "add",
    }
]


def _offline(records: list[dict[str, Any]]):
    def hf_dataset(path: str, sample_fields, limit: int | None = None, **kwargs: Any) -> MemoryDataset:
        return MemoryDataset([sample_fields(r) for r in records[:limit]], name=path, location=path)

    return hf_dataset


@pytest.fixture
def offline_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gsm8k_module, "hf_dataset", _offline(GSM8K_RECORDS))
    monkeypatch.setattr(humaneval_module, "hf_dataset", _offline(HUMANEVAL_RECORDS))


def out(text: str, cost: float = 0.001) -> ModelOutput:
    output = ModelOutput.from_content("mockllm/model", text)
    output.usage = ModelUsage(
        input_tokens=10, output_tokens=5, total_tokens=15, total_cost=cost
    )  # mockllm needs a usage offline
    return output


def _last_user(messages: list[ChatMessage]) -> str:
    return next((m.text for m in reversed(messages) if m.role == "user"), "")


def piecewise_user(messages: list[ChatMessage], *_: Any) -> ModelOutput:
    """A user LM stand-in: sees [system=intent, ...view]; gives the question, then asks for the answer, then ends."""
    intent = messages[0].text
    asked = sum(1 for m in messages if m.role == "assistant")
    question = next(line for line in intent.splitlines() if "?" in line)
    return out(
        [f"hi, I need help: {question}", "ok so what's the final answer?", END_CONVERSATION][min(asked, 2)]
    )


def math_assistant(messages: list[ChatMessage], *_: Any) -> ModelOutput:
    """Answers only when asked for the final answer; right for the apples, wrong for the eggs."""
    if "final answer" not in _last_user(messages):
        return out("Let me think. Anything else I should know?")
    first_user = next(m.text for m in messages if m.role == "user")
    return out("ANSWER: 7" if "apples" in first_user else "ANSWER: 17")


def test_gsm8k_keeps_prompt_template_as_intent_and_scores_final_answer(offline_hub: None, tmp_path) -> None:
    original = gsm8k_module.gsm8k(fewshot=1)
    version, metadata, dataset = original.version, dict(original.metadata or {}), original.dataset
    wrapped = with_simulated_user(original, simulator="userlm", max_turns=4)
    assert wrapped.name == "gsm8k+simulated_user"
    assert wrapped.dataset is dataset and wrapped.version == version
    assert wrapped.metadata[WRAP_METADATA_KEY]["message_steps"] == ["system_message", "prompt_template"]

    user = get_model("mockllm/user", custom_outputs=piecewise_user)
    log = eval(wrapped, model=get_model("mockllm/alpha", custom_outputs=math_assistant),
               model_roles={"user": user}, display="none", log_dir=str(tmp_path))[0]  # fmt: skip
    assert log.status == "success", log.error
    assert log.eval.task == "gsm8k+simulated_user"
    assert {k: v for k, v in log.eval.metadata.items() if k != WRAP_METADATA_KEY} == metadata
    by_id = {s.metadata["reasoning"][:8]: s for s in log.samples}  # record_to_sample's metadata survives
    apples, eggs = by_id["She has "], by_id["5 boxes "]
    assert apples.scores["match"].value == "C" and eggs.scores["match"].value == "I"

    for sample, record in ((apples, GSM8K_RECORDS[0]), (eggs, GSM8K_RECORDS[1])):
        intent = sample.metadata["intent"]
        # the intent is the task's own template applied to the question (the full single-turn instruction)
        assert intent == gsm8k_module.MATH_PROMPT_TEMPLATE.format(prompt=record["question"])
        roles = [m.role for m in sample.messages]
        assert roles == ["system", "user", "assistant", "user", "assistant"]  # few-shot system message kept
        assert "ANSWER: " in sample.messages[0].text  # the few-shot block, for the assistant only
        assert sample.messages[1].text == f"hi, I need help: {record['question']}"
        conversation = conversation_from_store(dict(sample.store))
        assert conversation.user_turns == 2 and conversation.assistant_turns == 2
        assert conversation.intent == intent
        assert sample.input == record["question"]  # the original input is kept for scorers


def code_assistant(messages: list[ChatMessage], *_: Any) -> ModelOutput:
    """First a wrong implementation, then (after the second user turn) a right one, or wrong again."""
    wrong = "```python\ndef add(a: int, b: int) -> int:\n    return a - b\n```"
    right = "```python\ndef add(a: int, b: int) -> int:\n    return a + b\n```"
    fixed = "sum" in _last_user(messages)
    return out(right if fixed else wrong)


@pytest.mark.parametrize(
    "turns, expected",
    [(["write add(a, b)", "it should return the sum"], "C"), (["write add(a, b)", "thanks"], "I")],
)
def test_humaneval_verify_scores_the_final_answer_in_local_sandbox(offline_hub: None, turns: list[str], expected: str, tmp_path) -> None:  # fmt: skip
    wrapped = with_simulated_user(
        humaneval_module.humaneval(sandbox="local"),
        simulator={"simulator": "scripted", "turns": turns},
        max_turns=3,
    )
    assert wrapped.name == "humaneval+simulated_user" and wrapped.sandbox.type == "local"
    log = eval(
        wrapped,
        model=get_model("mockllm/alpha", custom_outputs=code_assistant),
        display="none",
        log_dir=str(tmp_path),
    )[0]
    assert log.status == "success", log.error
    (sample,) = log.samples
    # the task's own scorer ran the task's own tests on the *last* assistant answer
    assert sample.scores["verify"].value == expected
    assert [m.text for m in sample.messages if m.role == "user"] == turns
    assert (
        sample.metadata["intent"] == (humaneval_module.INSTRUCTION + HUMANEVAL_RECORDS[0]["prompt"]).strip()
    )
    assert sample.metadata["entry_point"] == "add"


def test_registered_simulate_task_passes_args_to_wrapped_task(offline_hub: None, tmp_path) -> None:
    user = get_model("mockllm/user", custom_outputs=piecewise_user)
    task = simulate(task="inspect_evals/gsm8k", simulator="userlm", max_turns=3, setting="userlm", fewshot=0)
    log = eval(
        task,
        model=get_model("mockllm/alpha", custom_outputs=math_assistant),
        model_roles={"user": user},
        display="none",
        log_dir=str(tmp_path),
    )[0]
    assert log.status == "success", log.error
    assert log.eval.task == "gsm8k+simulated_user"
    assert log.eval.task_args["task"] == "inspect_evals/gsm8k" and log.eval.task_args["fewshot"] == 0
    assert log.eval.metadata[WRAP_METADATA_KEY]["setting"] == "userlm"
    assert log.eval.metadata[WRAP_METADATA_KEY]["message_steps"] == [
        "prompt_template"
    ]  # fewshot=0: no system
    for sample in log.samples:
        assert [m.role for m in sample.messages] == ["user", "assistant", "user", "assistant"]
    assert sorted(s.scores["match"].value for s in log.samples) == ["C", "I"]

    # the documented recipe: the unwrapped task in the same log dir compares with it, unflagged
    single = task_create("inspect_evals/gsm8k", fewshot=0)
    answers = [out("ANSWER: 7"), out("ANSWER: 60")]
    eval(single, model=get_model("mockllm/alpha", custom_outputs=answers), display="none", log_dir=str(tmp_path),
         max_samples=1)  # fmt: skip
    comparison, _ = compare_logs(tmp_path, tmp_path / "report")
    assert comparison.flags == [], [f.message for f in comparison.flags]
    rows = {(r.base_task, r.setting): r.metrics.P for r in comparison.rows}
    assert rows == {("inspect_evals/gsm8k", "single-turn"): 100.0, ("inspect_evals/gsm8k", "userlm"): 50.0}


def test_simulate_is_registered_under_the_package_namespace(tmp_path) -> None:
    """What `inspect eval userlm_plugin/simulate` looks up (run outside the repo root: a stale
    userlm_plugin.egg-info there shadows the editable install's metadata and drops the namespace)."""
    code = (
        "from inspect_ai._util.registry import registry_lookup;"
        "import sys; sys.exit(registry_lookup('task', 'userlm_plugin/simulate') is None)"
    )
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True)


def test_intent_from_raw_input(tmp_path) -> None:
    task = Task(
        dataset=[Sample(input="What is 2 + 2?", target="4")],
        solver=[prompt_template("Answer briefly. {prompt}"), generate()],
        scorer=match(),
    )
    wrapped = with_simulated_user(
        task, simulator={"simulator": "scripted", "turns": ["2+2?"]}, intent="input"
    )
    log = eval(
        wrapped,
        model=get_model("mockllm/a", custom_outputs=[out("4")]),
        display="none",
        log_dir=str(tmp_path),
    )[0]
    assert log.samples[0].metadata["intent"] == "What is 2 + 2?"
    assert log.samples[0].scores["match"].value == "C"
    assert log.eval.task == "task+simulated_user"


@solver
def tidy_prompt():
    async def solve(state: TaskState, generate: Generate) -> TaskState:
        return state

    return solve


@pytest.mark.parametrize(
    "solvers, needle",
    [
        ([multiple_choice()], "multiple_choice"),
        ([generate(), self_critique()], "followed by ['self_critique']"),
        ([prompt_template("{prompt}")], "no generate() step"),
        ([tidy_prompt(), generate()], "'tidy_prompt' is not a known message step"),
    ],
)
def test_refuses_solvers_it_cannot_wrap(solvers: list[Any], needle: str) -> None:
    task = Task(dataset=[Sample(input="q", target="a")], solver=solvers, scorer=match())
    with pytest.raises(UnwrappableTaskError, match="Cannot wrap task") as info:
        with_simulated_user(task)
    assert needle in str(info.value)


def test_unregistered_solver_is_refused_and_allow_admits_a_registered_one() -> None:
    async def plain(state: TaskState, generate: Generate) -> TaskState:
        return state

    task = Task(dataset=[Sample(input="q", target="a")], solver=[plain, generate()], scorer=match())
    with pytest.raises(UnwrappableTaskError, match="not a registered @solver"):
        with_simulated_user(task)
    task = Task(dataset=[Sample(input="q", target="a")], solver=[tidy_prompt(), generate()], scorer=match())
    wrapped = with_simulated_user(task, allow=["tidy_prompt"], max_turns=2)
    assert wrapped.metadata[WRAP_METADATA_KEY]["message_steps"] == ["tidy_prompt"]


def test_bad_arguments_name_the_field() -> None:
    task = Task(dataset=[Sample(input="q", target="a")], solver=generate(), scorer=match())
    with pytest.raises(ValueError, match="max_turns"):
        with_simulated_user(task, max_turns=0)
    with pytest.raises(TypeError, match="task: expected an inspect_ai Task"):
        with_simulated_user("inspect_evals/gsm8k")  # type: ignore[arg-type]


def test_simulate_rejects_unknown_task_args_by_name(offline_hub: None, tmp_path) -> None:
    """`-T simulatr=prompted` must not reach the wrapped task (Inspect would only log and run the default)."""
    from userlm_plugin.errors import UsageError

    with pytest.raises(UsageError, match=r"-T simulatr \(did you mean -T simulator\?\).*gsm8k takes fewshot"):
        simulate(task="inspect_evals/gsm8k", simulatr="prompted")
    with pytest.raises(UsageError, match=r"-T fewshots \(did you mean -T fewshot\?\)"):
        simulate(task="inspect_evals/gsm8k", fewshots=0)
    # a file task is checked too (after it is loaded: its parameters are known only then)
    task_file = tmp_path / "one.py"
    task_file.write_text(
        "from inspect_ai import Task, task\nfrom inspect_ai.dataset import Sample\nfrom inspect_ai.solver import generate\n\n"
        "@task\ndef one(n: int = 1):\n    return Task(dataset=[Sample(input='q')] * n, solver=generate())\n"
    )
    with pytest.raises(UsageError, match=r"-T max_turn \(did you mean -T max_turns\?\)"):
        simulate(task=f"{task_file}@one", max_turn=3)
    wrapped = simulate(task=f"{task_file}@one", n=2, simulator="scripted")
    assert len(wrapped.dataset) == 2
    # the other build-time mistakes are one-line UsageErrors too
    with pytest.raises(UsageError, match="Unknown simulator 'userlmm'"):
        simulate(task=f"{task_file}@one", simulator="userlmm")
    with pytest.raises(UsageError, match="intent='prompts'"):
        simulate(task=f"{task_file}@one", intent="prompts")
    with pytest.raises(UsageError, match="-T task: name the task"):
        simulate(task=" ")


def test_default_setting_label_and_display_name_name_the_simulator() -> None:
    task = Task(dataset=[Sample(input="q", target="a")], solver=generate(), scorer=match(), name="quiz")
    wrapped = with_simulated_user(task, simulator="prompted")
    assert wrapped.metadata[WRAP_METADATA_KEY]["setting"] == "prompted"
    assert wrapped.display_name == "quiz · prompted"
    assert {"simulator:prompted", "setting:prompted"} <= set(wrapped.tags or [])
    labelled = with_simulated_user(
        Task(dataset=[Sample(input="q")], solver=generate(), name="quiz"), simulator="userlm", setting="hard"
    )
    assert labelled.display_name == "quiz · hard (userlm)"
