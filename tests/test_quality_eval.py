"""`evals/simulator_quality.py` end to end, offline: scripted simulators, a scripted (mockllm) judge, the tiny User LM."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import pytest
from inspect_ai import eval, score
from inspect_ai.log import EvalLog
from inspect_ai.model import ModelOutput, ModelUsage, get_model

from userlm_plugin.evals.simulator_quality.dataset import PROBES, load_probe, probe_dataset
from userlm_plugin.records import conversation_from_store
from userlm_plugin.scoring.quality.scorers import conversation_variety, termination
from userlm_plugin.simulators.base import SimulationContext
from userlm_plugin.turns import EndReason, StopReason, UserTurn

EVAL_FILE = Path(__file__).parents[1] / "evals" / "simulator_quality.py"


def load_eval_module() -> Any:
    spec = importlib.util.spec_from_file_location("simulator_quality_eval", EVAL_FILE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rule_judge() -> Any:
    """Judge by rule: a turn that states 'the answer is' answered its own question; 'back to' returns to intent."""

    def respond(input: Any, tools: Any, tool_choice: Any, config: Any) -> ModelOutput:
        prompt = input[-1].text
        turn = prompt.split("<<<", 1)[1].split(">>>", 1)[0].lower()
        if "VERDICT: <USER" in prompt:
            verdict = "ANSWERED_OWN_QUESTION" if "the answer is" in turn else "USER"
        else:
            verdict = "REFUSED" if "back to" in turn else "ACCEPTED"
        out = ModelOutput.from_content(model="mockllm/model", content=f"Because.\nVERDICT: {verdict}")
        out.usage = ModelUsage(input_tokens=5, output_tokens=5, total_tokens=10)
        return out

    return get_model("mockllm/model", memoize=False, custom_outputs=respond)


class SelfAnsweringUser:
    """Always answers its own question (an assistant in disguise); ends when the last reply is no question."""

    name = "self_answering"

    async def next_turn(self, ctx: SimulationContext) -> UserTurn:
        view = ctx.user_view()
        if ctx.metadata.get("probe") == "termination" and not view[-1].text.rstrip().endswith("?"):
            return UserTurn.end(EndReason.END_TOKEN)
        if not view:
            return UserTurn(text="Here is what I need: " + ctx.intent.split(" to ", 1)[-1])
        return UserTurn(text="The answer is the first option, because it is the most common place.")


class HumanishUser:
    """Stays a user: asks back, and returns to its intent after a diversion."""

    name = "humanish"

    async def next_turn(self, ctx: SimulationContext) -> UserTurn:
        if not ctx.user_view():
            return UserTurn(text="hi, quick question")
        return UserTurn(text="no idea honestly, can we go back to my question?", retries=1, rejected=[])


def run(
    simulator: Any, probe: str = "all", limit: int = 4, tmp_path: Path | None = None, **kw: Any
) -> EvalLog:
    module = load_eval_module()
    task = module.simulator_quality(probe=probe, simulator=simulator, limit=limit)
    [log] = eval(task, model_roles={"judge": rule_judge()}, display="none", log_dir=str(tmp_path), **kw)
    assert log.status == "success", log.error
    return log


def metrics(log: EvalLog) -> dict[str, float]:
    assert log.results is not None
    return {name: m.value for s in log.results.scores for name, m in s.metrics.items()}


def test_probe_sets_are_valid_and_large_enough() -> None:
    for probe in PROBES:
        samples = load_probe(probe)
        assert len(samples) >= 50, probe
        assert len({s.id for s in samples}) == len(samples)
        assert all(s.metadata and s.metadata["intent"].startswith("You are a user") for s in samples)
    termination = load_probe("termination")
    assert {s.metadata["should_end"] for s in termination if s.metadata} == {True, False}
    assert len(probe_dataset("all", limit=3)) == 12
    with pytest.raises(ValueError, match="unknown probe 'roles'"):
        load_probe("roles")  # type: ignore[arg-type]


def test_self_answering_simulator_scores_zero_role_adherence(tmp_path: Path) -> None:
    log = run(SelfAnsweringUser(), tmp_path=tmp_path, epochs=2)
    m = metrics(log)
    assert m["role_adherence_pct"] == 0.0
    assert m["intent_adherence_pct"] == 0.0
    assert m["user_ended_pct"] == 100.0  # the first 4 termination items all met the goal
    assert m["end_f1"] == 100.0
    assert m["ai_opener_pct"] == 100.0  # "Here is what I need"
    assert m["goal_dump_pct"] == 100.0  # pasted the whole intent
    assert m["judge_unparseable_pct"] == 0.0
    assert log.samples is not None and len(log.samples) == 4 * 4 * 2
    role_sample = next(s for s in log.samples if s.metadata["probe"] == "role")
    conv = conversation_from_store(role_sample.store)
    assert conv.simulator == "self_answering" and conv.stop_reason == StopReason.MAX_TURNS
    assert [t.index for t in conv.turns] == [2]  # the probe's own question was turn 1
    assert role_sample.messages[-1].text.startswith("The answer is")
    assert set(role_sample.scores) == {
        "role_adherence",
        "guardrails",
    }  # other probes' scorers skip it
    assert "ANSWERED_OWN_QUESTION" in role_sample.scores["role_adherence"].explanation

    # `inspect score` on the finished log: scorers need only the stored record, not live objects
    rescored = score(log, [termination(), conversation_variety()], action="overwrite", display="none")
    m = metrics(rescored)
    assert m["user_ended_pct"] == 25.0  # only the termination items ended (4 of 16 samples)
    assert m["turns"] == 0.75 and m["turn_var"] == 0.0


def test_user_like_simulator_scores_full_adherence(tmp_path: Path) -> None:
    log = run(HumanishUser(), probe="role", tmp_path=tmp_path)
    m = metrics(log)
    assert m["role_adherence_pct"] == 100.0
    log = run(HumanishUser(), probe="intent", tmp_path=tmp_path)
    assert metrics(log)["intent_adherence_pct"] == 100.0


def test_scripted_preset_from_yaml(tmp_path: Path) -> None:
    """`-T simulator=path.yaml` goes through the preset loader; a one-line script is used up by the probe's turn 1."""
    preset = tmp_path / "sim.yaml"
    preset.write_text("simulator: scripted\nturns: [only turn one]\n")
    log = run(str(preset), probe="termination", limit=3, tmp_path=tmp_path)
    assert metrics(log)["user_ended_pct"] == 100.0
    assert (
        log.samples and conversation_from_store(log.samples[0].store).end_reason == EndReason.SCRIPT_EXHAUSTED
    )
    script = ["x", "never mind, the answer is the closet, everyone knows that"]
    log = run({"simulator": "scripted", "turns": script}, "role", 2, tmp_path)
    assert metrics(log)["role_adherence_pct"] == 0.0


def test_tiny_userlm_runs_the_probes(tmp_path: Path, tiny_userlm_dir: Path) -> None:
    """The real User LM path (userlm/ provider, guardrails, end allowed on the termination probe), tiny weights."""
    sim = {"simulator": "userlm", "model": f"userlm/{tiny_userlm_dir}", "max_tokens": 16}
    log = run(sim, probe="first_turn", limit=2, tmp_path=tmp_path)
    assert log.samples and all(conversation_from_store(s.store).turns for s in log.samples)
    assert "distinct1_pct" in metrics(log)
    log = run(sim, probe="termination", limit=1, tmp_path=tmp_path)  # the provider accepts the end override
    conv = conversation_from_store(log.samples[0].store) if log.samples else None
    assert conv and conv.stop_reason in (StopReason.USER_ENDED, StopReason.MAX_TURNS)
    assert conv.simulator_config["guardrails"] == {"min_turns_before_end": 0}
    from userlm_plugin.evals.simulator_quality.task import end_allowed
    from userlm_plugin.simulators import load_simulator

    loaded = end_allowed(load_simulator(sim))
    assert loaded.config.guardrails == {"min_turns_before_end": 0}


def test_paper_source_rows_build_probe_samples() -> None:
    """The HF loaders' row builders, on records shaped like the pinned datasets (no network)."""
    from userlm_plugin.evals.simulator_quality.dataset import (
        commonsense_qa_row,
        nq_open_row,
        prism_rows,
        probe_sample,
    )

    csqa = {
        "id": "q1",
        "question": "Where do you keep milk?",
        "question_concept": "milk",
        "choices": {"label": ["A", "B"], "text": ["fridge", "oven"]},
        "answerKey": "A",
    }
    row = commonsense_qa_row(csqa, 0)
    assert row["messages"][0]["content"] == "Where do you keep milk? A) fridge, B) oven"
    assert row["messages"][1]["role"] == "assistant" and row["metadata"]["answer_key"] == "A"
    nq = nq_open_row({"question": "who wrote the hobbit", "answer": ["J. R. R. Tolkien"]}, 3)
    assert "hobbit" in nq["messages"][1]["content"] and nq["intent"].endswith("who wrote the hobbit")
    history = [
        {"role": "user", "content": "hi"},
        {"role": "model", "content": "hello!", "if_chosen": True},
        {"role": "model", "content": "yo", "if_chosen": False},
        {"role": "user", "content": "tell me a joke"},
        {"role": "model", "content": "why did...", "if_chosen": True},
    ]
    rows = prism_rows({"conversation_id": "c9", "opening_prompt": "hi", "conversation_history": history}, 0)
    assert [r["should_end"] for r in rows] == [False, True]
    assert [m["content"] for m in rows[1]["messages"]] == ["hi", "hello!", "tell me a joke", "why did..."]
    sample = probe_sample(rows[1], "termination")
    assert sample.metadata and sample.metadata["should_end"] is True
    with pytest.raises(ValueError, match=r"messages\[0\] must be"):
        probe_sample({"intent": "x", "messages": [{"role": "system", "content": "s"}]}, "role")
    with pytest.raises(ValueError, match="field `intent`"):
        probe_sample({"messages": []}, "role")


def test_metric_names_are_short_enough_for_the_viewer_header() -> None:
    from inspect_ai.util import registry_info

    from userlm_plugin.scoring.quality import scorers

    metric_factories = [getattr(scorers, n) for n in scorers.__all__ if n.endswith(("_pct", "_f1", "_turn"))]
    metric_factories += [
        scorers.first_turn_mean_words,
        scorers.mean_user_turns,
        scorers.turn_range_within_intent,
    ]
    metric_factories += [scorers.turn_variance_within_intent, scorers.unigram_difference_within_intent]
    names = [registry_info(f()).name.split("/")[-1] for f in metric_factories]
    assert len(names) == 18 and len(set(names)) == 18
    assert max(map(len, names)) <= 16, names


class CountingUser:
    name = "counting"
    calls = 0

    async def next_turn(self, ctx: SimulationContext) -> UserTurn:
        CountingUser.calls += 1
        return UserTurn(text="hmm")


def test_a_judged_probe_without_a_judge_role_fails_before_any_conversation(tmp_path: Path) -> None:
    from userlm_plugin.errors import UsageError as PrerequisiteError

    # `inspect eval evals/simulator_quality.py --model-role user=...` without a judge: one line, no samples run
    CountingUser.calls = 0
    with pytest.raises(PrerequisiteError, match=r"-T probe=role: the role probe\(s\) are scored by a judge"):
        eval(
            os.path.relpath(EVAL_FILE),
            task_args={"probe": "role", "limit": 2},
            model_roles={"user": rule_judge()},
            display="none",
            log_dir=str(tmp_path),
        )
    # a Task built in Python before eval() is checked per sample, still before the simulator runs
    task = load_eval_module().simulator_quality(probe="intent", simulator=CountingUser(), limit=2)
    assert task.display_name == "simulator_quality · counting · probe intent"  # runs told apart in the viewer
    assert {"simulator:counting", "probe:intent"} <= set(task.tags or [])
    [log] = eval(task, display="none", log_dir=str(tmp_path))
    assert log.status == "error" and CountingUser.calls == 0
    assert "Bind one with --model-role judge=<model>" in str(log.error)
    # model-free probes need no judge
    [ok] = eval(
        load_eval_module().simulator_quality(probe="first_turn", simulator=CountingUser(), limit=2),
        display="none",
        log_dir=str(tmp_path),
    )
    assert ok.status == "success" and CountingUser.calls == 2
