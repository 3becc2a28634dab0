"""Training works with any chat model, as a new user runs it (issue 21): a ChatML base (SmolLM2's layout, no
`<|eot_id|>`) and a Llama-3-Instruct-style base go through `train flip` / `sft` / `perplexity` with no template
argument; the trained folder plays the user under the name the final line prints; and the run's output says what it
did: the final step's loss, held-out perplexity before and after, what `max_length` cut, weights in the base
model's own dtype, no checkpoints left behind, a PNG next to the record."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from inspect_ai import Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.model import ChatMessage, GenerateConfig, ModelOutput, ModelUsage, get_model
from tiny_llama import CHATML_CHAT_TEMPLATE, LLAMA3_CHAT_TEMPLATE, build_tiny_userlm

from userlm_plugin import simulated_user
from userlm_plugin.cli import main
from userlm_plugin.records import conversation_from_store
from userlm_plugin.train import evaluate_model, flip_conversations, train_user_lm
from userlm_plugin.train.sft import PLOT_FILE, RECORD_FILE

FIXTURE = Path(__file__).parent / "fixtures" / "train" / "conversations.jsonl"

pytestmark = pytest.mark.slow


def _bf16_copy(folder: Path) -> Path:
    """Save the tiny model again in bfloat16 (SmolLM2 and Llama-3 checkpoints are bf16)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def chatml_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ChatML chat model in bf16 (SmolLM2-Instruct's layout): its own template, eos <|im_end|>, no end token."""
    folder = build_tiny_userlm(tmp_path_factory.mktemp("chatml-base"), flavour="chatml", end_token=False)
    return _bf16_copy(folder)


@pytest.fixture(scope="module")
def chatml_run(
    tmp_path_factory: pytest.TempPathFactory, chatml_base: Path, monkeypatch_module: pytest.MonkeyPatch
) -> dict[str, Any]:
    """flip + sft through the CLI, with no template argument, as the README's commands run."""
    import io
    from contextlib import redirect_stdout

    work = tmp_path_factory.mktemp("chatml-run")
    monkeypatch_module.chdir(work)  # the printed userlm/ name is relative to where the command ran
    split = work / "split"
    flip = ["train", "flip", str(FIXTURE), "--out", str(split), "--test-fraction", "0.25"]
    out = io.StringIO()
    with redirect_stdout(out):
        assert main([*flip, "--model", str(chatml_base)]) == 0
    flip_line = out.getvalue()
    sft = ["train", "sft", "--model", str(chatml_base), "--data", str(split / "train.jsonl"), "--eval-data"]
    sft += [str(split / "test.jsonl"), "--out", str(work / "models" / "mine"), "--profile", "tiny"]
    sft += ["--max-steps", "12", "--save-steps", "5", "--keep-checkpoints", "0", "--max-length", "224"]
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(sft) == 0
    return {
        "work": work,
        "split": split,
        "model": work / "models" / "mine",
        "flip": flip_line,
        "sft": out.getvalue(),
    }


@pytest.fixture(scope="module")
def monkeypatch_module() -> Any:
    patch = pytest.MonkeyPatch()
    yield patch
    patch.undo()


def test_flip_checks_every_conversation_and_says_one_thing(chatml_run: dict[str, Any]) -> None:
    line, split = chatml_run["flip"], chatml_run["split"]
    report = json.loads((split / "flip_report.json").read_text())
    assert (
        report["unflippable"] == [] and report["tokens"]["examples"] == report["train"] + report["test"] == 40
    )
    assert f"train {report['train']} / test {report['test']} conversations" in line
    assert "every one flips" in line and "cannot be flipped" not in line and "the model's own" in line
    assert "<|im_start|>user\n⟦" in (split / "preview.txt").read_text()


def test_sft_output_says_what_happened(chatml_run: dict[str, Any]) -> None:
    text, model = chatml_run["sft"], chatml_run["model"]
    record = json.loads((model / RECORD_FILE).read_text())
    # the final loss is the last step's, and the line says which step
    assert (
        record["losses"][-1][0] == record["steps"] == 12 and record["final_loss"] == record["losses"][-1][1]
    )
    assert f"-> {record['final_loss']:.3f} (step 12)" in text
    # held-out perplexity before (the base model, step 0) and after, in the line and the record
    (step0, before), (step12, after) = record["heldout"]
    assert (step0, step12) == (0, 12) and after < before
    assert re.search(r"held-out user-token perplexity [\d.]+ -> [\d.]+", text)
    # what max_length did, for train and held-out, and in the record
    assert "train: max_length 224:" in text and "held-out: max_length 224:" in text
    length = record["length"]
    assert (
        length["longer"] > 0
        and length["sequences"] > length["conversations"]
        and length["end_turns_cut"] == 0
    )
    # weights in the base model's own dtype, the template it trained with, no checkpoints, a PNG
    config = json.loads((model / "config.json").read_text())
    assert config["dtype"] == "bfloat16" and record["saved_dtype"] == "bfloat16"
    assert (model / "chat_template.jinja").read_text() == CHATML_CHAT_TEMPLATE
    assert not (model / "checkpoints").exists() and "no checkpoints kept" in text
    assert (model / PLOT_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    generation = json.loads((model / "generation_config.json").read_text())
    im_end = json.loads((model / "tokenizer.json").read_text())["added_tokens"]
    im_end_id = next(t["id"] for t in im_end if t["content"] == "<|im_end|>")
    assert im_end_id in generation["eos_token_id"]  # the runtime stops on the template's end of turn


def test_the_printed_name_plays_the_user(chatml_run: dict[str, Any]) -> None:
    printed = re.search(r"--model-role user=(\S+)", chatml_run["sft"]).group(1)
    assert printed == "userlm/models/mine" and "//" not in printed  # relative to where the command ran

    def assistant(
        input: list[ChatMessage], tools: Any, tool_choice: Any, config: GenerateConfig
    ) -> ModelOutput:
        output = ModelOutput.from_content(model="mockllm/model", content="Use sorted(items).")
        output.usage = ModelUsage(input_tokens=5, output_tokens=5, total_tokens=10)  # no tokenizer download
        return output

    intent = "You are a user chatting with an assistant language model to sort a list in python"
    log = eval(
        Task(
            dataset=[Sample(id="sort", input="-", metadata={"intent": intent})],
            solver=simulated_user({"simulator": "userlm", "max_tokens": 16}, max_turns=2),
        ),
        model=get_model("mockllm/model", custom_outputs=assistant, memoize=False),
        model_roles={"user": get_model(printed, memoize=False)},
        display="none",
        log_dir=str(chatml_run["work"] / "logs"),
        seed=3,
    )
    sample = log[0].samples[0]
    assert sample.error is None, sample.error
    conversation = conversation_from_store(sample.store)
    assert conversation.user_turns >= 1 and all(t.text or t.end_reason for t in conversation.turns)
    calls = [e for e in sample.events if e.event == "model" and e.role == "user"]
    assert calls[0].call.request["template_mode"] == "opened"  # ChatML: the runtime opened the user turn


def test_perplexity_with_the_models_own_template(chatml_run: dict[str, Any], chatml_base: Path) -> None:
    held_out = chatml_run["split"] / "test.jsonl"
    before = {r.with_intent: r for r in evaluate_model(str(chatml_base), held_out, progress=False)}
    after = {r.with_intent: r for r in evaluate_model(str(chatml_run["model"]), held_out, progress=False)}
    for with_intent in (True, False):
        assert before[with_intent].summary()["end_turns"] == 0  # the base has no end token: turns only
        assert after[with_intent].perplexity_turns < before[with_intent].perplexity_turns
    # a short limit scores long conversations in windows instead of skipping them
    windowed = evaluate_model(
        str(chatml_run["model"]), held_out, conditions=(True,), max_length=224, progress=False
    )
    summary = windowed[0].summary()
    assert summary["skipped"] == 0 and summary["windowed"] > 0
    assert summary["user_tokens"] == after[True].tokens  # the same tokens scored, none lost


def test_llama3_instruct_style_base_keeps_its_template(tmp_path: Path) -> None:
    base = build_tiny_userlm(tmp_path / "llama3", flavour="llama3", end_token=False)
    run = flip_conversations(FIXTURE, tmp_path / "split", model=str(base), test_fraction=0.25, progress=False)
    assert not run.unflippable and run.chat_template_source == "the model's own"
    result = train_user_lm(
        str(base),
        run.train,
        tmp_path / "out",
        profile="tiny",
        max_steps=2,
        eval_records=run.test,
        progress=False,
        eval_before=False,  # the caller scores the base model itself: no held-out pass before training
    )
    assert result.steps == 2 and result.final_loss == result.losses[-1][1] and result.eval_loss is not None
    assert [step for step, _ in result.heldout] == [2] and result.base_eval_perplexity is None
    assert (tmp_path / "out" / "chat_template.jinja").read_text() == LLAMA3_CHAT_TEMPLATE
    assert result.checkpoints_kept == 1  # tiny keeps one for --resume


def test_show_profile_needs_nothing_else(capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("tiny", "cpu"):
        assert main(["train", "sft", "--show-profile", "--profile", name]) == 0
        assert json.loads(capsys.readouterr().out)["name"] == name
    assert main(["train", "sft", "--profile", "cpu"]) == 1
    assert "--model, --data, --out required" in capsys.readouterr().err


def test_a_template_that_cannot_train_fails_before_any_weights_load(
    tmp_path: Path, chatml_base: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.jinja"
    broken.write_text("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}")
    weights = chatml_base / "model.safetensors"
    hidden = tmp_path / "hidden.safetensors"
    weights.rename(hidden)  # any attempt to load the weights would fail loudly
    try:
        for step in (["flip", str(FIXTURE), "--out", str(tmp_path / "s")], ["sft", "--data", str(FIXTURE)]):
            args = ["train", *step, "--model", str(chatml_base), "--chat-template", str(broken)]
            assert main([*args, *(["--out", str(tmp_path / "o")] if step[0] == "sft" else [])]) == 1
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and "--chat-template" in err and "end-of-turn" in err, err
        assert not (tmp_path / "s" / "train.jsonl").exists()  # flip wrote nothing
    finally:
        hidden.rename(weights)
