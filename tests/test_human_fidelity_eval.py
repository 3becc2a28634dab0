"""`evals/human_fidelity.py` end to end, offline: `scripted` replays the people and must be indistinguishable from
them (the eval's own sanity check), an assistant-like prompted simulator is told apart, and the `userlm/` runtime
(the tiny Llama, SmolLM2) runs with its perplexity; the person's turn is logged beside each simulated one."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import pytest
from inspect_ai import eval
from inspect_ai.log import EvalLog, EvalSample, resolve_sample_attachments
from inspect_ai.model import ChatMessage, GenerateConfig, ModelOutput, ModelUsage, get_model

from userlm_plugin.evals.human_fidelity.api import evaluate_simulator, log_metrics
from userlm_plugin.records import conversation_from_store
from userlm_plugin.simulators.base import SimulationContext
from userlm_plugin.turns import END_CONVERSATION, EndReason, UserTurn

REPO = Path(__file__).resolve().parents[1]
EVAL_FILE = os.path.relpath(REPO / "evals" / "human_fidelity.py")  # Inspect takes relative task paths
FIXTURES = REPO / "tests" / "fixtures" / "human"
CONVERSATIONS = str(FIXTURES / "conversations.jsonl")
SHARED_DOCS = (
    REPO.parent / "shared" / "data" / "simulatorarena" / "document_creation_annotations_for_benchmarking.json"
)


def run(
    tmp_path: Path, roles: dict[str, Any] | None = None, **task_args: Any
) -> tuple[EvalLog, dict[str, float]]:
    [log] = eval(
        EVAL_FILE, task_args=task_args, model_roles=roles, display="none", log_dir=str(tmp_path), seed=7
    )
    assert log.status == "success", log.error
    assert log.samples and all(s.error is None for s in log.samples)
    return log, log_metrics(log)


def info_texts(sample: EvalSample) -> list[str]:
    """The sample's info events as text (their bodies are attachments in a log)."""
    return [str(e.data) for e in resolve_sample_attachments(sample).events if e.event == "info"]


def scripted_user_model(texts: list[str]) -> Any:
    """A mockllm user model that writes `texts` in turn (with usage, so no tokenizer is downloaded)."""
    cycle = itertools.cycle(texts)

    def reply(input: list[ChatMessage], tools: Any, tool_choice: Any, config: GenerateConfig) -> ModelOutput:
        output = ModelOutput.from_content(model="mockllm/model", content=next(cycle))
        output.usage = ModelUsage(input_tokens=5, output_tokens=5, total_tokens=10)
        return output

    return get_model("mockllm/model", custom_outputs=reply, memoize=False)


def test_scripted_replays_the_people_and_is_indistinguishable(tmp_path: Path) -> None:
    log, m = run(tmp_path, data=CONVERSATIONS, simulator="scripted")
    assert m["auroc"] == 0.5 and m["auroc_lo"] == 0.5 and m["auroc_hi"] == 0.5
    assert m["len_jsd"] == 0.0 and m["lex_f1"] == 100.0 and m["end_f1"] == 100.0
    for name in (
        "words",
        "typo_pct",
        "lower_pct",
        "nopunct_pct",
        "question_pct",
        "polite_pct",
        "me_pct",
        "leak_pct",
    ):
        assert m[name] == m[f"{name}_h"], name
    assert "ppl" not in m  # perplexity is the User LM's alone
    assert m["g_end_pct"] == 100.0 and {"g_long_pct", "rec_min_words", "rec_max_words"} <= set(m)

    sample = next(s for s in log.samples or [] if s.id == "trip")
    conversation = conversation_from_store(sample.store)
    assert [t.index for t in conversation.turns] == [
        1,
        2,
        3,
        4,
    ]  # 3 human turns + the end after the last reply
    assert conversation.turns[-1].end_reason == EndReason.SCRIPT_EXHAUSTED
    user_messages = [m for m in sample.messages if m.role == "user"]
    assert [m.metadata["simulated"] for m in user_messages] == [m.text for m in user_messages]  # type: ignore[index]
    # the person's turn is logged beside the simulated one, readable in `inspect view`
    events = [text for text in info_texts(sample) if "human (reference)" in text]
    assert len(events) == 4
    assert "| turn 2 | “whats a cheap place to eat near ribeira” | “whats a cheap place" in events[1]
    assert "*ended the conversation* | *ended the conversation*" in events[3]
    assert log.eval.metadata is not None and log.eval.metadata["skipped_records"]  # the unanswered record


@pytest.mark.skipif(not SHARED_DOCS.is_file(), reason=f"shared SimulatorArena data not at {SHARED_DOCS}")
def test_scripted_is_indistinguishable_on_the_real_people(tmp_path: Path) -> None:
    _, m = run(tmp_path, data=str(SHARED_DOCS), simulator="scripted")
    assert m["auroc"] == 0.5 and m["len_jsd"] == 0.0 and m["end_f1"] == 100.0
    assert m["words_h"] == pytest.approx(25.097, abs=1e-3)  # 349 human turns, 8,759 words
    assert m["g_long_pct"] == pytest.approx(100 * 118 / 349) and m["g_short_pct"] == pytest.approx(
        100 * 13 / 349
    )


ASSISTANT_LIKE = [
    "Certainly! Here is a comprehensive, step-by-step overview of everything you need to consider.",
    "Absolutely. I would be delighted to provide a detailed and well-structured explanation for you.",
    "Of course! Below you will find a structured guide, including key considerations and best practices.",
]


def test_an_assistant_like_prompted_simulator_is_told_apart(tmp_path: Path) -> None:
    user = scripted_user_model(ASSISTANT_LIKE)
    sim = {
        "simulator": "prompted_flat",
        "max_retries": 0,
    }  # role breaks are logged, and sent once retries run out
    log, m = run(tmp_path, {"user": user}, data=CONVERSATIONS, simulator=sim)
    assert m["auroc"] >= 0.9
    assert m["words"] > 1.5 * m["words_h"] and m["lex_f1"] < 20 and m["len_jsd"] > 0.3, m
    assert m["end_r"] == 0.0  # it never ends where the person ended
    sample = (log.samples or [])[0]
    assert any(t.role_break for t in conversation_from_store(sample.store).turns)


def test_prompted_role_flip_ends_and_termination_is_scored(tmp_path: Path) -> None:
    # writes a human-like turn, then ends at every third call: the scores follow the records
    user = scripted_user_model(["ok thanks", "can you shorten it", END_CONVERSATION])
    log, m = run(tmp_path, {"user": user}, data=CONVERSATIONS, simulator="prompted", limit=3)
    predicted = actual = 0
    true_positive = 0
    for sample in log.samples or []:
        human = len(sample.metadata["turns"])
        for record in conversation_from_store(sample.store).turns:
            ended, person_ended = record.text is None, record.index == human + 1
            predicted += ended
            actual += person_ended
            true_positive += ended and person_ended
    assert predicted > 0 and m["end_p"] == pytest.approx(100 * true_positive / predicted)
    assert m["end_r"] == pytest.approx(100 * true_positive / actual)


class TwoWordUser:
    """A simulator object of our own (any object with `next_turn` works): two words, then ends at turn 3."""

    name = "two_words"

    async def next_turn(self, ctx: SimulationContext) -> UserTurn:
        return UserTurn.end(EndReason.END_TOKEN) if ctx.turn >= 3 else UserTurn(text="hi there")


def test_from_python_the_table_comes_back(tmp_path: Path) -> None:
    from userlm_plugin.report.fidelity import load_fidelity_run

    log, table = evaluate_simulator(CONVERSATIONS, TwoWordUser(), log_dir=str(tmp_path))
    assert log.eval.task == "human_fidelity"  # built from Python, the comparison still finds the run
    assert load_fidelity_run(log.location).simulator == "two_words"
    assert table["words"] == 2.0 and table["lex_f1"] < 50
    # the people wrote 3, 2, 3, 2, 1 and 3 turns and ended after them (at 4, 3, 4, 3, 2, 4); the simulator ends
    # at every position from 3 on: 8 ends, 5 of them where the person ended (it goes on in the 1-turn one)
    assert table["end_p"] == pytest.approx(100 * 5 / 8) and table["end_r"] == pytest.approx(100 * 5 / 6)


def test_tiny_userlm_replays_with_its_perplexity(tmp_path: Path, tiny_userlm_dir: Path) -> None:
    sim = {"simulator": "userlm", "max_tokens": 12, "guardrails": {"max_retries": 1}}
    log, m = run(tmp_path, {"user": f"userlm/{tiny_userlm_dir}"}, data=CONVERSATIONS, simulator=sim, limit=2)
    assert m["ppl"] > 1 and m["ppl_no_intent"] > 1
    sample = (log.samples or [])[0]
    first = next(e for e in sample.events if e.event == "model" and e.role == "user")
    # ending is allowed from turn 2 in the replay (the preset's own settings kept)
    assert first.config.extra_body == {"userlm": {"min_turns_before_end": 1, "max_retries": 1}}
    assert sample.scores is not None and "tokens" in (sample.scores["human_ppl"].explanation or "")
    assert any("human (reference)" in text for text in info_texts(sample))


@pytest.mark.slow
def test_smollm2_through_userlm(tmp_path: Path, smollm2_dir: Path) -> None:
    # the real small model on a SimulatorArena-format conversation (short, so the test stays fast)
    sim = {"simulator": "userlm", "max_tokens": 16, "guardrails": {"max_retries": 0}}
    roles = {"user": get_model(f"userlm/{smollm2_dir}", memoize=False)}
    _, m = run(tmp_path, roles, data=str(FIXTURES / "simulatorarena_documents.json"), simulator=sim, limit=1)
    assert m["ppl"] > 1 and m["ppl_no_intent"] > 1 and m["words"] > 0 and 0 <= m["len_jsd"] <= 1


def test_side_by_side_table_survives_pipes_and_newlines() -> None:
    from userlm_plugin.recorder import turn_markdown
    from userlm_plugin.turns import HumanReference, TurnRecord

    record = TurnRecord(index=2, simulator="prompted", text="a | b\n\n| c |")
    text = turn_markdown(record, HumanReference(text="x|y\nz"))
    table = [line for line in text.splitlines() if line.startswith("| turn 2")]
    assert table == ["| turn 2 | “x\\|y z” | “a \\| b \\| c \\|” |"]  # one row, pipes escaped, lines joined
    ended = turn_markdown(
        TurnRecord(index=3, simulator="prompted", end_reason=EndReason.END_TOKEN), HumanReference(text=None)
    )
    assert "| turn 3 | *ended the conversation* | *ended the conversation* |" in ended
    assert "The simulator ended the conversation (`end_token`)" in ended


def test_inspect_score_recomputes_the_metrics_from_the_log(tmp_path: Path) -> None:
    from inspect_ai import score

    from userlm_plugin.evals.human_fidelity.scorers import guardrail_fit, human_fidelity

    log, before = run(tmp_path, data=CONVERSATIONS, simulator="scripted")
    rescored = score(log, [human_fidelity(), guardrail_fit()], action="overwrite")
    after = log_metrics(rescored)
    assert {k: after[k] for k in before} == before  # everything comes from the store and the metadata


def test_a_model_backed_simulator_without_its_role_fails_in_one_line(tmp_path: Path) -> None:
    from userlm_plugin.errors import UsageError
    from userlm_plugin.evals.human_fidelity.task import human_fidelity_task

    # inside an eval, before any sample starts
    with pytest.raises(UsageError, match="the replay has no model under test.*--model-role user=<model>"):
        eval(
            EVAL_FILE,
            task_args={"data": CONVERSATIONS, "simulator": "prompted"},
            display="none",
            log_dir=str(tmp_path),
        )
    # a task built in Python (its roles unknown until it runs): each sample says the same
    task = human_fidelity_task(data=CONVERSATIONS, simulator="prompted", limit=1)
    [log] = eval(task, display="none", log_dir=str(tmp_path))
    assert log.status == "error" and log.error is not None
    assert "bind one with --model-role user=<model>" in log.error.message
    # the User LM's default model, absent offline: one line naming the role (the preset's own check)
    with pytest.raises(UsageError, match="no `user` model role given.*--model-role user="):
        eval(
            EVAL_FILE,
            task_args={"data": CONVERSATIONS, "simulator": "userlm"},
            display="none",
            log_dir=str(tmp_path),
        )


def test_metric_names_fit_inspects_table_at_80_columns(tmp_path: Path, tiny_userlm_dir: Path) -> None:
    from test_metric_names import cut_names  # Inspect's own results-table rendering

    sim = {"simulator": "userlm", "max_tokens": 8, "guardrails": {"max_retries": 0}}
    log, _ = run(tmp_path, {"user": f"userlm/{tiny_userlm_dir}"}, data=CONVERSATIONS, simulator=sim, limit=2)
    assert [s.name for s in log.results.scores] == ["human_fidelity", "guardrail_fit", "human_ppl"]
    assert cut_names(log, 80) == []
