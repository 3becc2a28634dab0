"""SimulatorArena's validity protocol offline: mockllm assistants, a scripted judge, and the correlations between
its ratings and the people's z-normalised ones computed by hand (docs/fidelity.md#the-correlation-protocol)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from inspect_ai import eval
from inspect_ai.model import ChatMessage, GenerateConfig, ModelOutput, ModelUsage, get_model

from userlm_plugin.errors import UsageError
from userlm_plugin.evals.human_fidelity.api import log_metrics
from userlm_plugin.evals.human_fidelity.correlation import (
    RatedConversation,
    correlation_table,
    parse_ratings,
)
from userlm_plugin.evals.human_fidelity.task import human_fidelity_task
from userlm_plugin.records import conversation_from_store

REPO = Path(__file__).resolve().parents[1]
EVAL_FILE = os.path.relpath(REPO / "evals" / "human_fidelity.py")
DOCUMENTS = REPO / "tests" / "fixtures" / "human" / "simulatorarena_documents.json"
TASKS = [r["intent"] for r in json.loads(DOCUMENTS.read_text())]

# the judge's (interaction, document) rating of each simulated conversation, in fixture order
JUDGE = [(7, 3), (9, 4), (5, 6), (6, 5), (2, 9), (3, 8)]


def mock(reply: Any) -> Any:
    def respond(
        input: list[ChatMessage], tools: Any, tool_choice: Any, config: GenerateConfig
    ) -> ModelOutput:
        output = ModelOutput.from_content(model="mockllm/model", content=reply(input))
        output.usage = ModelUsage(input_tokens=5, output_tokens=5, total_tokens=10)
        return output

    return get_model("mockllm/model", custom_outputs=respond, memoize=False)


def scripted_judge() -> Any:
    """Rates by the task in its prompt: the conversation's ratings come from `JUDGE`."""

    def rate(input: list[ChatMessage]) -> str:
        prompt = input[-1].text
        interaction, document = JUDGE[next(i for i, task in enumerate(TASKS) if task in prompt)]
        return f"Clear and helpful.\nINTERACTION: {interaction}\nDOCUMENT: **{document}**"

    return mock(rate)


def assistant(name: str) -> Any:
    return mock(lambda input: f"Draft from {name}: here is your document, revised.")


def test_correlations_match_a_hand_computation(tmp_path: Path) -> None:
    assistants = {
        "gpt-4o": assistant("A"),
        "claude-3-5-sonnet-20240620": assistant("B"),
        "*": assistant("C"),  # llama-3-1-8b
    }
    [log] = eval(
        EVAL_FILE,
        task_args={
            "data": str(DOCUMENTS),
            "protocol": "correlation",
            "simulator": "scripted",
            "assistants": assistants,
        },
        model_roles={"judge": scripted_judge()},
        display="none",
        log_dir=str(tmp_path),
    )
    assert log.status == "success", log.error
    m = log_metrics(log)
    # people's z-scores (interaction): worker-a 9, 6, 3 on its own -> 1, 0, -1; the pooled 8, 4, 2 -> 1.091089,
    # -0.218218, -0.872872. Judge: 7, 9, 5, 6, 2, 3.
    # Spearman: ranks 5 6 4 3 1 2 vs 5 6 3 4 1 2, sum d^2 = 2 -> 1 - 6*2/(6*35) = 0.942857
    # Kendall: one discordant pair of 15 -> 13/15; Pearson: sum(z*y) = 10.891877 (mean z = 0), sum z^2 = 4,
    # sum (y - 16/3)^2 = 33.3333 -> 10.891877 / sqrt(4 * 33.3333) = 0.943264
    assert m["int_rho"] == pytest.approx(0.942857, abs=1e-5)
    assert m["int_tau"] == pytest.approx(13 / 15, abs=1e-6)
    assert m["int_r"] == pytest.approx(0.943264, abs=1e-5)
    # system level (means per assistant): judge 8, 5.5, 2.5; people 1.045545, -0.109109, -0.936436
    assert m["int_sys_rho"] == pytest.approx(1.0) and m["int_sys_tau"] == pytest.approx(1.0)
    assert m["int_sys_r"] == pytest.approx(0.989141, abs=1e-5)
    # document: people z 1, 1, 0, 0, -1, -1 (both groups 8, 6, 4 / 9, 5, 1); judge 3, 4, 6, 5, 9, 8
    # Spearman on average ranks: sum dxdy = -16, sum dx^2 = 16, sum dy^2 = 17.5 -> -16 / sqrt(280) = -0.956183
    # Pearson: -10 / sqrt(4 * 26.8333) = -0.965230; Kendall tau-b: 0 concordant, 12 discordant, 3 ties in the
    # people's scores -> -12 / sqrt(12 * 15) = -0.894427. System: judge 3.5, 5.5, 8.5 vs people 1, 0, -1: ranks
    # agree reversed (-1), Pearson sum dx*y = -5, sum dx^2 = 12.6667, sum y^2 = 2 -> -5 / sqrt(25.3333) = -0.993399
    assert m["doc_rho"] == pytest.approx(-0.956183, abs=1e-5)
    assert m["doc_r"] == pytest.approx(-0.965230, abs=1e-5)
    assert m["doc_tau"] == pytest.approx(-0.894427, abs=1e-5)
    assert m["doc_sys_rho"] == pytest.approx(-1.0) and m["doc_sys_r"] == pytest.approx(-0.993399, abs=1e-5)
    assert m["doc_sys_tau"] == pytest.approx(-1.0)
    assert m["n_inst"] == 6 and m["n_sys"] == 3 and m["rated_pct"] == 100.0

    # each conversation ran against the assistant its person had, with the study's system prompt
    for sample in log.samples or []:
        assert sample.messages[0].role == "system" and "skilled writing assistant" in sample.messages[0].text
        reply = next(m for m in sample.messages if m.role == "assistant").text
        expected = {"gpt-4o": "A", "claude-3-5-sonnet-20240620": "B"}.get(
            sample.metadata["assistant_model"], "C"
        )
        assert reply.startswith(f"Draft from {expected}:")
        assert conversation_from_store(sample.store).user_turns == 3  # scripted: the person's own 3 turns


def test_unrated_replies_are_left_out_and_counted() -> None:
    assert parse_ratings("INTERACTION: 12\nDOCUMENT: 0") == {"interaction": 10.0, "document": 1.0}
    assert parse_ratings("I liked it.") == {"interaction": None, "document": None}
    rows = [
        RatedConversation("a", {"interaction": 5.0, "document": None}, {"interaction": 1.0, "document": 1.0}),
        RatedConversation("b", {"interaction": 7.0, "document": None}, {"interaction": 2.0, "document": 0.0}),
    ]
    table = correlation_table(rows)
    assert table["n_inst"] == 2 and table["int_rho"] == pytest.approx(1.0)
    assert table["doc_rho"] is None and table["doc_sys_r"] is None  # nothing to correlate


def test_the_protocol_refuses_what_it_cannot_do() -> None:
    docs = str(DOCUMENTS)
    with pytest.raises(
        UsageError, match="needs -T assistants=.*claude-3-5-sonnet-20240620, gpt-4o, llama-3-1-8b"
    ):
        human_fidelity_task(data=docs, protocol="correlation", simulator="scripted")
    with pytest.raises(UsageError, match='no model for llama-3-1-8b: add them, or a "\\*" entry'):
        human_fidelity_task(
            data=docs,
            protocol="correlation",
            simulator="scripted",
            assistants={"gpt-4o": "mockllm/model", "claude-3-5-sonnet-20240620": "mockllm/model"},
        )
    with pytest.raises(UsageError, match="needs SimulatorArena's document-creation conversations"):
        human_fidelity_task(
            data=str(REPO / "tests" / "fixtures" / "human" / "conversations.jsonl"),
            protocol="correlation",
            simulator="scripted",
            assistants={"*": "mockllm/model"},
        )
    with pytest.raises(UsageError, match="max_turns must be at least 1"):
        human_fidelity_task(
            data=docs, protocol="correlation", simulator="scripted", assistants={"*": "m"}, max_turns=0
        )
