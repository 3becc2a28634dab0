"""Calibration of the end probability: the pure figures (hand-computed), the scorer on the termination probe from
recorded `end_logprob`s, and its teacher-forced fallback on a real (tiny) local User LM."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from inspect_ai import Task, eval
from inspect_ai.model import (
    ChatMessage,
    ChatMessageSystem,
    GenerateConfig,
    ModelOutput,
    ModelUsage,
    get_model,
)

from userlm_plugin.evals.simulator_quality.dataset import load_probe
from userlm_plugin.evals.simulator_quality.task import probe_next_turn, simulator_quality_task
from userlm_plugin.records import conversation_from_store
from userlm_plugin.runtime.local import torch_thread
from userlm_plugin.runtime.template import conversation_from_messages
from userlm_plugin.scoring.quality.calibration import (
    auroc,
    best_f1_threshold,
    brier_score,
    calibration_summary,
    end_calibration,
    expected_calibration_error,
)
from userlm_plugin.train.perplexity import teacher_forced_end_logprob
from userlm_plugin.turns import END_CONVERSATION, USERLM_METADATA_KEY


def test_calibration_figures_by_hand() -> None:
    probs, labels = [0.9, 0.2, 0.6, 0.1], [True, False, True, False]
    assert brier_score(probs, labels) == pytest.approx((0.01 + 0.04 + 0.16 + 0.01) / 4)
    assert expected_calibration_error(probs, labels) == pytest.approx((0.1 + 0.2 + 0.4 + 0.1) / 4)
    assert auroc(probs, labels) == 1.0 and auroc([0.5, 0.5], [True, False]) == 0.5
    assert auroc([0.3, 0.7], [True, False]) == 0.0 and auroc([0.1], [True]) is None
    assert best_f1_threshold(probs, labels) == (0.6, 1.0)
    # one positive ranked below a negative: the best rule ends on 0.2 and above (P 2/3, R 1, F1 0.8)
    assert best_f1_threshold([0.9, 0.3, 0.2, 0.1], [True, False, True, False]) == (0.2, pytest.approx(0.8))
    assert best_f1_threshold([0.1], [False]) is None and brier_score([], []) is None
    summary = calibration_summary([math.log(p) for p in probs], labels)
    assert summary["end_auroc"] == 1.0 and summary["end_best_f1"] == 100.0
    assert summary["end_best_threshold"] == pytest.approx(0.6) and summary["end_n"] == 4


def test_scorer_reads_the_recorded_end_logprob_on_the_termination_probe(tmp_path: Path) -> None:
    """A scripted user model reports end_logprob as the userlm/ provider does; the scorer must use it."""
    goal_met = {s.input[-1].text: s.metadata["should_end"] for s in load_probe("termination")}

    def user(input: list[ChatMessage], tools: Any, tool_choice: Any, config: GenerateConfig) -> ModelOutput:
        should_end = goal_met[input[-1].text]
        output = ModelOutput.from_content(
            model="mockllm/model", content="" if should_end else "and then what?"
        )
        output.metadata = {
            USERLM_METADATA_KEY: {
                "end_reason": "end_token" if should_end else None,
                "rejected": [],
                "retries": 0,
                "guardrails_exhausted": False,
                "end_logprob": math.log(0.7 if should_end else 0.05),
            }
        }
        output.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
        return output

    log = eval(
        simulator_quality_task(probe="termination", simulator="userlm"),
        model_roles={"user": get_model("mockllm/model", custom_outputs=user, memoize=False)},
        display="none",
        log_dir=str(tmp_path),
    )[0]
    assert log.status == "success", log.error
    scores = {s.name: s for s in log.results.scores}
    metrics = {k: m.value for k, m in scores["end_calibration"].metrics.items()}
    assert metrics["end_n"] == 70 and metrics["end_recorded_pct"] == 100
    assert metrics["end_auroc"] == 1.0 and metrics["end_best_f1"] == 100.0
    assert metrics["end_best_threshold"] == pytest.approx(0.7)
    assert metrics["end_mean_p_when_ended"] == pytest.approx(0.7)
    assert metrics["end_brier"] == pytest.approx((50 * 0.09 + 20 * 0.0025) / 70)
    sample = log.samples[0]
    assert sample.scores["end_calibration"].metadata["end_prob_source"] == "recorded"


def test_teacher_forced_fallback_on_a_local_user_lm(tmp_path: Path, tiny_userlm_factory: Any) -> None:
    folder = tiny_userlm_factory(token_bias={END_CONVERSATION: 2.0})
    user = get_model(f"userlm/{folder}", memoize=False, seed=3)
    rows = load_probe("termination")
    samples = [s for s in rows if s.metadata["should_end"]][:2] + [
        s for s in rows if not s.metadata["should_end"]
    ][:2]
    task = Task(
        dataset=samples,
        solver=probe_next_turn({"simulator": "userlm", "max_tokens": 8, "guardrails": {"max_retries": 0}}),
        scorer=[end_calibration(probe="termination", end_prob="teacher_forced")],
        model="none/none",
    )
    log = eval(task, model_roles={"user": user}, display="none", log_dir=str(tmp_path))[0]
    assert log.status == "success", log.error
    loaded = user.api.loaded
    for sample in log.samples:
        score = sample.scores["end_calibration"]
        assert score.metadata["end_prob_source"] == "teacher_forced" and score.value["recorded"] == 0.0
        conversation = conversation_from_messages(
            [ChatMessageSystem(content=sample.metadata["intent"]), *sample.input]
        )
        expected = torch_thread.call(
            teacher_forced_end_logprob,
            loaded.model,
            loaded.tokenizer,
            conversation.intent,
            conversation.turns,
        )
        assert score.value["end_logprob"] == pytest.approx(expected)
        assert math.exp(expected) > 0.01  # the +2 nats bias shows: the end token is a real contender
        # where the local engine records the same quantity at generation time (first content position, before
        # bans), the two definitions agree (the tiny model opens its turn with the template's newline)
        turn = conversation_from_store(sample.store).turns[-1]
        if turn.metadata.get("end_logprob") is not None and turn.metadata.get("first_token") not in (
            None,
            "\n",
        ):
            assert turn.metadata["end_logprob"] == pytest.approx(expected, abs=1e-4)


def test_no_model_no_number(tmp_path: Path) -> None:
    """Recorded-only, with a user model that reports nothing: the sample says why, the metrics are empty."""

    def user(input: list[ChatMessage], tools: Any, tool_choice: Any, config: GenerateConfig) -> ModelOutput:
        output = ModelOutput.from_content(model="mockllm/model", content="and then?")
        output.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
        return output

    task = Task(
        dataset=load_probe("termination", limit=2),
        solver=probe_next_turn("userlm"),
        scorer=[end_calibration(probe="termination")],
        model="none/none",
    )
    log = eval(
        task,
        model_roles={"user": get_model("mockllm/model", custom_outputs=user)},
        display="none",
        log_dir=str(tmp_path),
    )[0]
    score = log.samples[0].scores["end_calibration"]
    assert score.value["end_logprob"] is None and "not a local userlm/ model" in score.explanation
    assert log.results.scores[0].metrics["end_n"].value == 0
