"""End to end: `evals/coding_sharded.py` and `evals/math_sharded.py` through Inspect's eval(), offline, on records
in Lost in Conversation's schema (tests/fixtures/lic_mini.json), with scripted (mockllm) assistants, users and
graders: early end, LiC's classifier path under the `grader` role, our stricter rule-based attempts, intent
coverage for `userlm`, LiC's generation defaults vs the user's flags, the paper switch, and early one-line
errors for wrong task arguments."""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from inspect_ai import eval
from inspect_ai.log import ModelEvent, SpanBeginEvent
from inspect_ai.model import ModelOutput, ModelUsage, get_model

from userlm_plugin.errors import UsageError
from userlm_plugin.evals.sharded.task import sharded_task

ROOT = Path(__file__).parent.parent
FIXTURE = str(ROOT / "tests" / "fixtures" / "lic_mini.json")
CODING = (
    f"{ROOT / 'evals' / 'coding_sharded.py'}@coding_sharded"  # absolute paths need @task (docs/inspect.md)
)
MATH = f"{ROOT / 'evals' / 'math_sharded.py'}@math_sharded"


def output(text: str) -> ModelOutput:
    out = ModelOutput.from_content("mockllm/model", text)
    out.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)  # no tokenizer download offline
    return out


def assistant(*texts: str):
    return get_model("mockllm/model", custom_outputs=[output(t) for t in texts])


class Scripted:
    """A mockllm `custom_outputs` callable: `reply(prompt_text)` decides each output; every prompt is kept."""

    def __init__(self, reply) -> None:
        self.reply, self.prompts = reply, []

    def __call__(self, input, tools, tool_choice, config) -> ModelOutput:  # noqa: ARG002
        prompt = "\n".join(m.text for m in input)
        self.prompts.append(prompt)
        return output(self.reply(prompt, len(self.prompts)))

    def model(self):
        return get_model("mockllm/model", custom_outputs=self, memoize=False)


def metrics(log, scorer: int = 0) -> dict[str, float]:
    return {k: v.value for k, v in log.results.scores[scorer].metrics.items()}


def test_coding_scripted_ends_early_on_the_first_correct_answer(tmp_path) -> None:
    wrong = "Here:\n```python\ndef add(x, y):\n    return x - y\n```"
    right = "Fixed:\n```python\ndef plus(a, b):\n    return a + b\n```"
    model = assistant("What should it add?", wrong, right)
    [log] = eval(
        CODING,
        model=model,
        task_args={"setting": "scripted", "data": FIXTURE, "sources": ["humaneval"]},
        epochs=1,
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "success", log.error
    assert metrics(log) == {
        "P": 100.0,
        "A90": 100.0,
        "U90_10": 0.0,
        "turns_used": 3.0,
        "ended_correct": 1.0,
        "lic_dropped": 0.0,
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
    assert score.metadata["attempt_rule"] == "rules"
    assert "conversation stopped: stop_when after 3 user / 3 assistant turn(s)" in score.explanation
    checks = sample.store["AnswerChecks:checks"]
    assert [(c["assistant_turn"], c["correct"], c["by"]) for c in checks][:2] == [
        (2, False, "stop_when"),
        (3, True, "stop_when"),
    ]
    assert '"got": -1' in checks[0]["explanation"] or '"got": "-1"' in checks[0]["explanation"]
    # the scripted user tracks shard ids, so coverage counts them
    assert sample.scores["shard_coverage"].value == {"coverage": 1.0, "verdict": "shards"}


def test_coding_full_humaneval_wrong_answer_scores_zero_with_explanation(tmp_path) -> None:
    model = assistant("```python\ndef has_close_elements(numbers, threshold):\n    return False\n```")
    [log] = eval(
        CODING,
        model=model,
        task_args={"setting": "full", "dataset": "humaneval"},
        limit=1,
        epochs=1,
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "success", log.error
    [sample] = log.samples
    score = sample.scores["code_scorer"]
    assert score.value["correct"] == 0.0 and score.metadata["stop_reason"] == "max_turns"
    assert score.metadata["attempt_rule"] == "single_turn"  # LiC's FULL grades its reply without classifying
    assert "AssertionError" in score.explanation and "conversation stopped: max_turns" in score.explanation
    assert len([m for m in sample.messages if m.role == "user"]) == 1
    assert list(sample.scores) == ["code_scorer"]  # no shards, no coverage scorer
    # the assistant ran with LiC's defaults: temperature 1.0, max_tokens 1000
    [call] = [e for e in sample.events if isinstance(e, ModelEvent)]
    assert (call.config.temperature, call.config.max_tokens) == (1.0, 1000)
    assert log.eval.task_display_name == "coding_sharded (full, corrected)" and "full" in (
        log.eval.tags or []
    )
    # the scoring mode is in the viewer's run name and tags, the task metadata and every answer score
    assert "corrected" in log.eval.tags and log.eval.metadata["scoring"] == "corrected"
    assert score.metadata["scoring"] == "corrected"


def test_user_generation_flags_win_over_lics_defaults(tmp_path) -> None:
    [log] = eval(
        MATH,
        model=assistant("Each friend gets 5."),
        task_args={"setting": "full", "data": FIXTURE},
        limit=1,
        epochs=1,
        temperature=0.2,
        max_tokens=64,
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "success", log.error
    [call] = [e for e in log.samples[0].events if isinstance(e, ModelEvent)]
    assert (call.config.temperature, call.config.max_tokens) == (0.2, 64)


def test_math_concat_over_epochs(tmp_path) -> None:
    model = assistant("So each friend gets 5 lollipops.", "Each friend gets 4.")
    [log] = eval(
        MATH,
        model=model,
        task_args={"setting": "concat", "data": FIXTURE},
        limit=1,
        epochs=2,  # Inspect's --epochs overrides the task's default of 10
        log_dir=str(tmp_path),
        display="none",
        max_samples=1,
    )
    assert log.status == "success", log.error
    assert log.eval.config.epochs == 2
    # one instruction, scores [100, 0]: P 50, A90 90, U 80
    assert metrics(log)["P"] == pytest.approx(50.0)
    assert metrics(log)["A90"] == pytest.approx(90.0)
    assert metrics(log)["U90_10"] == pytest.approx(80.0)
    assert metrics(log)["ended_correct"] == pytest.approx(0.5)


def test_rule_based_math_does_not_end_on_a_question_with_the_right_number(tmp_path) -> None:
    model = assistant(
        "Do his friends each get 5?", "I think each friend gets 4.", "Each friend gets 5 lollipops."
    )
    [log] = eval(
        MATH,
        model=model,
        task_args={"setting": "scripted", "data": FIXTURE},
        limit=1,
        epochs=1,
        log_dir=str(tmp_path),
        display="none",
    )
    [sample] = log.samples
    verdicts = sample.store["AnswerChecks:verdicts"]
    assert [(v["assistant_turn"], v["attempt"], v["rule"]) for v in verdicts] == [
        (1, False, "rules"),
        (2, True, "rules"),
        (3, True, "rules"),
    ]
    score = sample.scores["math_scorer"]
    assert score.value["correct"] == 1.0 and score.metadata["answer_turn"] == 3
    assert score.metadata["stop_reason"] == "stop_when"


def _grader_reply(prompt: str, call: int) -> str:
    """A scripted grader: malformed once, then LiC-style labels; extraction first copies a non-substring."""
    if '"response_type"' in prompt:
        turn = prompt.split("[assistant]")[-1].split("Reply with a JSON")[0]
        if "How many friends" in turn:
            return json.dumps({"response_type": "clarification"})
        if call == 2:
            return "sure, it's an answer"  # malformed: retried
        return json.dumps({"response_type": "answer_attempt"})
    if call == 4:
        return json.dumps({"answer": "five"})  # not in the reply: costs a try, as LiC
    return json.dumps({"answer": "5 lollipops"})


def test_grader_role_runs_lics_classifier_and_extractor(tmp_path) -> None:
    grader = Scripted(_grader_reply)
    model = assistant("How many friends does Ray have? Say 5?", "Each friend gets 5 lollipops, I believe.")
    [log] = eval(
        MATH,
        model=model,
        model_roles={"grader": grader.model()},
        task_args={"setting": "scripted", "data": FIXTURE},
        limit=1,
        epochs=1,
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "success", log.error
    [sample] = log.samples
    verdicts = sample.store["AnswerChecks:verdicts"]
    assert [(v["attempt"], v["rule"], v["label"]) for v in verdicts] == [
        (False, "grader", "clarification"),
        (True, "grader", "answer_attempt"),
    ]
    assert verdicts[1]["details"]["grader_tries"] == 2
    assert verdicts[1]["answer"] == "5 lollipops" and verdicts[1]["details"]["extraction_tries"] == 2
    score = sample.scores["math_scorer"]
    assert score.value["correct"] == 1.0 and score.metadata["attempt_rule"] == "grader"
    assert len(grader.prompts) == 5  # 1 + 2 classifications, 2 extractions; the scorer reuses them
    # the classifier saw LiC's inputs: shard 1 as the opening request, the other shards as details
    assert "how many lollipops did Ray's friends get?" in grader.prompts[0]
    assert '"shard_id": 2' in grader.prompts[0] and "[assistant] How many friends" in grader.prompts[0]
    # every grader call is in the log, inside a grader span
    spans = [e.name for e in sample.events if isinstance(e, SpanBeginEvent) and e.type == "grader"]
    assert spans == [
        "grader: classify assistant turn 1",
        "grader: classify assistant turn 2",
        "grader: extract answer",
    ]
    assert sum(isinstance(e, ModelEvent) and e.role == "grader" for e in sample.events) == 5


def test_malformed_grader_output_falls_back_to_rules_and_is_counted(tmp_path) -> None:
    grader = Scripted(lambda prompt, call: "no JSON here")
    model = assistant("Each friend gets 5 lollipops.")
    [log] = eval(
        MATH,
        model=model,
        model_roles={"grader": grader.model()},
        task_args={"setting": "scripted", "data": FIXTURE},
        limit=1,
        epochs=1,
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "success", log.error
    score = log.samples[0].scores["math_scorer"]
    assert score.value["correct"] == 1.0 and score.metadata["grader_failures"] == 1
    assert score.metadata["attempt_rule"] == "rules_after_grader_failure"
    assert len(grader.prompts) == 3  # three tries, then our rules decided


def test_userlm_conversations_get_intent_coverage_from_the_shard_matcher(tmp_path) -> None:
    user = Scripted(
        lambda prompt, call: [
            "i need a python function that adds some stuff",
            "it takes two integers, x and y",
            "oh and it should do something",
        ][call - 1]
    )
    meta_exhausted = {
        "userlm": {"end_reason": None, "rejected": [], "retries": 2, "guardrails_exhausted": True}
    }
    outputs = iter([None, None, meta_exhausted])

    def user_reply(input, tools, tool_choice, config):
        out = user(input, tools, tool_choice, config)
        out.metadata = next(outputs)
        return out

    model = assistant("Sure, what should it do?", "And then?", "Which operation?")
    [log] = eval(
        CODING,
        model=model,
        model_roles={"user": get_model("mockllm/model", custom_outputs=user_reply, memoize=False)},
        task_args={"setting": "userlm", "data": FIXTURE, "sources": "humaneval", "max_turns": 3},
        epochs=1,
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "success", log.error
    [sample] = log.samples
    coverage = sample.scores["shard_coverage"]
    # shards 1 and 2 said in other words; shard 3 ("return their sum") never conveyed
    assert coverage.value == {"coverage": pytest.approx(2 / 3), "verdict": "matched"}
    assert metrics(log, scorer=1)["intent_coverage_pct"] == pytest.approx(200 / 3)
    code = sample.scores["code_scorer"]
    assert code.value["correct"] == 0.0 and code.metadata["guardrails_exhausted"] == 1
    assert "guardrails exhausted on user turn(s) 3" in code.explanation


# ---------------------------------------------------------------- scoring modes (docs/scoring.md, "Scoring modes")

CLASS_UNCLOSED = "Here:\n```python\nclass Solution:\n    def scaleAll(self, nums, k):\n        return [x * {op} k for x in nums]\n"
CLASS_FENCED = (
    "```python\nclass Solution:\n    def scaleAll(self, nums, k):\n        return [x * k for x in nums]\n```"
)


def test_lic_exact_leaves_out_a_conversation_lic_would_crash_on(tmp_path) -> None:
    """LiC raises on a `class Solution` outside a closed fence and logs nothing for that conversation; lic_exact
    scores it 0 with the reason, and P/A90/U and the other metrics leave it out. corrected grades it."""
    results = {}
    for scoring in ("lic_exact", "corrected"):
        [log] = eval(
            CODING,
            model=assistant(CLASS_UNCLOSED.format(op=""), CLASS_FENCED),
            task_args={"setting": "full", "data": FIXTURE, "sources": "lcb", "scoring": scoring},
            epochs=2,
            log_dir=str(tmp_path),
            display="none",
            max_samples=1,
        )
        assert log.status == "success", log.error
        results[scoring] = log
    lic, corrected = results["lic_exact"], results["corrected"]
    first = lic.samples[0].scores["code_scorer"]  # epoch 1: the unclosed class answer
    assert first.value["correct"] == 0.0 and "IndexError" in first.metadata["lic_crash"]
    assert (
        "LiC aborts the conversation here" in first.explanation and first.metadata["scoring"] == "lic_exact"
    )
    assert lic.samples[1].scores["code_scorer"].value["correct"] == 1.0
    assert metrics(lic)["P"] == 100.0  # epoch 1 left out, as LiC's results hold no such conversation
    assert metrics(lic)["lic_dropped"] == 1.0 and metrics(corrected)["lic_dropped"] == 0.0
    assert metrics(corrected)["P"] == 100.0 and metrics(corrected)["ended_correct"] == 1.0
    assert "lic_crash" not in corrected.samples[0].scores["code_scorer"].metadata


def test_lic_exact_ends_the_conversation_where_lic_crashes(tmp_path) -> None:
    wrong_unclosed = CLASS_UNCLOSED.format(op="2 *")
    ends = {}
    for scoring in ("lic_exact", "corrected"):
        [log] = eval(
            CODING,
            model=assistant(wrong_unclosed, CLASS_FENCED, CLASS_FENCED),
            task_args={"setting": "scripted", "data": FIXTURE, "sources": "lcb", "scoring": scoring},
            epochs=1,
            log_dir=str(tmp_path),
            display="none",
        )
        assert log.status == "success", log.error
        score = log.samples[0].scores["code_scorer"]
        ends[scoring] = (score.metadata["user_turns"], score.metadata["stop_reason"], score.value["correct"])
        ends[scoring] += (score.value["ended_correct"],)
    assert ends["lic_exact"] == (1, "stop_when", 0.0, 0.0)  # stopped by the crash, not by a correct answer
    assert ends["corrected"] == (2, "stop_when", 1.0, 1.0)  # the wrong answer was graded; the next one passed


def test_the_sharded_users_token_cap_follows_the_mode(tmp_path) -> None:
    """LiC's user LLM call sets no max_tokens; lic_exact sends none, corrected keeps the simulator's 512."""
    caps = {}
    for scoring in ("lic_exact", "corrected"):
        user = Scripted(
            lambda prompt, call: json.dumps({"response": "each friend gets the rest", "shard_id": 2})
        )
        [log] = eval(
            MATH,
            model=assistant("What numbers?", "Each friend gets 5."),
            model_roles={"user": user.model()},
            task_args={"setting": "sharded", "data": FIXTURE, "scoring": scoring},
            limit=1,
            epochs=1,
            log_dir=str(tmp_path),
            display="none",
        )
        assert log.status == "success", log.error
        [call] = [e for e in log.samples[0].events if isinstance(e, ModelEvent) and e.role == "user"]
        caps[scoring] = call.config.max_tokens
    assert caps == {"lic_exact": None, "corrected": 512}


# ---------------------------------------------------------------- task arguments


def test_paper_switch_selects_the_papers_setup() -> None:
    code = sharded_task("code", paper=True, data=FIXTURE)
    assert [s.metadata["source"] for s in code.dataset] == ["humaneval"]  # LiC's HumanEval-derived intents
    assert code.metadata["setting"] == "userlm" and code.metadata["paper"] is True
    assert code.epochs == 10 and code.display_name == "coding_sharded (paper, userlm, lic_exact)"
    assert {"paper", "lic_exact"} <= set(code.tags) and code.metadata["scoring"] == "lic_exact"
    assert code.config.temperature == 1.0 and code.config.max_tokens == 1000
    math = sharded_task("math", paper=True, data=FIXTURE)
    assert {s.metadata["source"] for s in math.dataset} == {"gsm8k"} and math.metadata["max_turns"] == 8
    gpt_rows = sharded_task("math", paper=True, setting="sharded", data=FIXTURE)  # LiC's user as the GPT sims
    assert gpt_rows.display_name == "math_sharded (paper, sharded, lic_exact)"
    assert sharded_task("code", scoring="lic_exact", data=FIXTURE).metadata["scoring"] == "lic_exact"
    assert sharded_task("code", data=FIXTURE).metadata["scoring"] == "corrected"  # the default
    with pytest.raises(UsageError, match="drop -T scoring=corrected"):
        sharded_task("math", paper=True, scoring="corrected", data=FIXTURE)
    with pytest.raises(UsageError, match="drop -T setting=full"):
        sharded_task("code", paper=True, setting="full", data=FIXTURE)
    with pytest.raises(UsageError, match="drop -T dataset=humaneval"):
        sharded_task("code", paper=True, dataset="humaneval")
    with pytest.raises(UsageError, match="drop -T sources"):
        sharded_task("code", paper=True, sources="lcb", data=FIXTURE)


@pytest.mark.parametrize(
    ("kind", "args", "message"),
    [
        ("code", {"setting": "sharded", "dataset": "humaneval"}, "humaneval dataset has none"),
        ("code", {"setting": "multi", "data": FIXTURE}, "not a setting"),
        ("code", {"sandbox": "vm", "data": FIXTURE}, "-T sandbox='vm'"),
        ("math", {"setting": "full", "data": FIXTURE, "max_turns": 3}, "single-turn"),
        ("math", {"settng": "full"}, r"unknown -T argument\(s\) settng \(valid: setting, "),
        ("math", {"dataset": "humaneval"}, r"unknown -T argument\(s\) dataset"),
        ("code", {"limit": 3}, r"-T limit is Inspect's --limit N"),
        ("code", {"epochs": 2, "shuffle": True}, r"--epochs N; -T shuffle is Inspect's --sample-shuffle"),
        ("math", {"max_turns": 0}, r"-T max_turns=0: Input should be greater than or equal to 1"),
        ("code", {"sources": "mbpp", "data": FIXTURE}, "unknown source 'mbpp'"),
        ("math", {"scoring": "exact", "data": FIXTURE}, "-T scoring='exact': Input should be 'corrected' or"),
    ],
)
def test_wrong_task_arguments_are_usage_errors(kind: str, args: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        sharded_task(kind, **args)


@pytest.mark.slow  # starts the `inspect` CLI in a subprocess (its imports take most of the time)
def test_cli_prints_one_line_before_any_model_loads(tmp_path) -> None:
    # the task is built (and its arguments checked) before any sample runs: one line, no traceback
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "inspect"),
            "eval",
            "evals/math_sharded.py",
            "--model",
            "mockllm/model",
            "-T",
            "epochs=2",
            "--log-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert any("-T epochs is Inspect's --epochs N" in line for line in lines), lines
    assert not any("Traceback" in line for line in lines) and len(lines) <= 3, lines
