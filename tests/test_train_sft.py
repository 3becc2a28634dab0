"""End to end on CPU: a conversation file -> `train flip` -> `train sft` of a tiny base Llama (no end token, no
template) -> the folder loads as `userlm/<dir>` and plays the user in `simulated_user`; held-out user-token
perplexity falls (same run); the Inspect eval gives the CLI's figures; checkpoints resume; LoRA merges."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from inspect_ai import Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.model import ChatMessage, GenerateConfig, ModelOutput, ModelUsage, get_model
from tiny_llama import build_tiny_userlm

from userlm_plugin import simulated_user
from userlm_plugin.cli import main
from userlm_plugin.evals.user_perplexity.task import user_perplexity_task
from userlm_plugin.records import conversation_from_store
from userlm_plugin.train.conversations import read_conversations
from userlm_plugin.train.perplexity import evaluate_model
from userlm_plugin.train.profiles import get_profile
from userlm_plugin.train.sft import RECORD_FILE, train_user_lm
from userlm_plugin.train.tokens import userlm_chat_template

FIXTURE = Path(__file__).parent / "fixtures" / "train" / "conversations.jsonl"
END = "<|endconversation|>"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny 'base model': Llama-3-style vocabulary without <|endconversation|>, and no chat template."""
    return build_tiny_userlm(tmp_path_factory.mktemp("base"), chat_template=False, end_token=False)


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory: pytest.TempPathFactory, base_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("split")
    args = [
        "train",
        "flip",
        str(FIXTURE),
        "--out",
        str(out),
        "--test-fraction",
        "0.25",
        "--model",
        str(base_dir),
    ]
    assert main(args) == 0
    return out


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory: pytest.TempPathFactory, base_dir: Path, split_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("trained")
    args = ["train", "sft", "--model", str(base_dir), "--data", str(split_dir / "train.jsonl")]
    args += [
        "--eval-data",
        str(split_dir / "test.jsonl"),
        "--out",
        str(out),
        "--profile",
        "tiny",
        "--max-steps",
        "20",
    ]
    assert main(args) == 0
    return out


def test_flip_writes_a_leak_free_split_and_a_preview(split_dir: Path) -> None:
    report = json.loads((split_dir / "flip_report.json").read_text())
    train = read_conversations(split_dir / "train.jsonl").records
    test = read_conversations(split_dir / "test.jsonl").records
    assert report["train"] == len(train) and report["test"] == len(test) and len(train) + len(test) == 40
    assert not {r.user_id for r in train} & {r.user_id for r in test}
    # every conversation of both splits was checked against the runtime's rendering
    assert report["tokens"]["examples"] == len(train) + len(test) and report["unflippable"] == []
    assert report["chat_template"] == "UserLM-8b's: the model has none"
    preview = (split_dir / "preview.txt").read_text()
    assert f"⟦\n{END}<|eot_id|>⟧" in preview


def test_sft_loss_falls_and_the_folder_is_a_user_lm(trained_dir: Path) -> None:
    record = json.loads((trained_dir / RECORD_FILE).read_text())
    losses = [loss for _, loss in record["losses"]]
    assert record["steps"] == 20 and losses[-1] < losses[0] - 1.0  # the loss falls
    # every step is logged, and the final loss is the last step's
    assert [step for step, _ in record["losses"]] == list(range(1, 21)) and record["final_loss"] == losses[-1]
    assert record["token_setup"]["added_end_token"] and record["profile"]["name"] == "tiny"
    assert (trained_dir / "chat_template.jinja").read_text() == userlm_chat_template()
    assert not (trained_dir / "adapter_config.json").exists()


def test_trained_model_plays_the_user_in_a_conversation(tmp_path: Path, trained_dir: Path) -> None:
    def assistant(
        input: list[ChatMessage], tools: Any, tool_choice: Any, config: GenerateConfig
    ) -> ModelOutput:
        output = ModelOutput.from_content(model="mockllm/model", content="Use list(dict.fromkeys(items)).")
        output.usage = ModelUsage(input_tokens=5, output_tokens=5, total_tokens=10)
        return output

    intent = "You are a user chatting with an assistant language model to remove duplicates from a list"
    task = Task(
        dataset=[Sample(id="dedupe", input="-", metadata={"intent": intent})],
        solver=simulated_user({"simulator": "userlm", "max_tokens": 24}, max_turns=2),
    )
    log = eval(
        task,
        model=get_model("mockllm/model", custom_outputs=assistant, memoize=False),
        model_roles={"user": get_model(f"userlm/{trained_dir}", memoize=False)},
        display="none",
        log_dir=str(tmp_path),
        seed=5,
    )
    sample = log[0].samples[0]
    assert sample.error is None, sample.error
    conversation = conversation_from_store(sample.store)
    assert conversation.user_turns == 2 and all(t.text for t in conversation.turns)
    user_calls = [e for e in sample.events if e.event == "model" and e.role == "user"]
    assert user_calls and user_calls[0].call.request["template_mode"] == "native"


def test_held_out_user_perplexity_is_lower_after_training(
    base_dir: Path, trained_dir: Path, split_dir: Path
) -> None:
    held_out = read_conversations(split_dir / "test.jsonl").records
    # before: the base model prompted with UserLM's template (it has no end token: user turns only)
    before = {
        r.with_intent: r
        for r in evaluate_model(str(base_dir), held_out, chat_template=userlm_chat_template())
    }
    after = {r.with_intent: r for r in evaluate_model(str(trained_dir), held_out)}
    for with_intent in (True, False):
        assert (
            before[with_intent].summary()["end_turns"] == 0 and after[with_intent].summary()["end_turns"] > 0
        )
        assert after[with_intent].perplexity_turns < 0.5 * before[with_intent].perplexity_turns
        assert after[with_intent].tokens > before[with_intent].tokens  # + the end turns
    summary = after[True].summary()
    assert summary["skipped"] == 0 and summary["end_n"] > summary["end_turns"]


def test_inspect_eval_gives_the_cli_figures(
    tmp_path: Path, trained_dir: Path, split_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ppl.json"
    args = ["train", "perplexity", "--model", str(trained_dir), "--data", str(split_dir / "test.jsonl")]
    assert main([*args, "--out", str(out)]) == 0
    cli = {row["condition"]: row for row in json.loads(out.read_text())}
    assert "PPL turns" in capsys.readouterr().out
    log = eval(
        user_perplexity_task(str(split_dir / "test.jsonl")),
        model_roles={"user": get_model(f"userlm/{trained_dir}", memoize=False)},
        display="none",
        log_dir=str(tmp_path),
    )[0]
    assert log.status == "success", log.error
    metrics = log.results.scores[0].metrics
    for condition in ("intent", "no_intent"):
        assert metrics[f"ppl_{condition}"].value == pytest.approx(cli[condition]["perplexity"], rel=1e-5)
        assert metrics[f"ppl_turns_{condition}"].value == pytest.approx(
            cli[condition]["perplexity_turns"], rel=1e-5
        )
    assert metrics["end_auroc"].value == pytest.approx(cli["intent"]["end_auroc"])


def test_user_perplexity_eval_refuses_a_non_local_user_model(tmp_path: Path, split_dir: Path) -> None:
    log = eval(
        user_perplexity_task(str(split_dir / "test.jsonl"), limit=1),
        model_roles={"user": get_model("mockllm/model", memoize=False)},
        display="none",
        log_dir=str(tmp_path),
    )[0]
    assert log.status == "error" and "needs a local userlm/ model" in str(log.error)


def test_checkpoints_resume(tmp_path: Path, base_dir: Path) -> None:
    records = read_conversations(FIXTURE).records[:12]
    profile = get_profile("tiny", max_steps=4, save_steps=2)
    first = train_user_lm(str(base_dir), records, tmp_path / "run", profile=profile, progress=False)
    assert first.steps == 4 and (tmp_path / "run" / "checkpoints" / "checkpoint-4").is_dir()
    more = get_profile("tiny", max_steps=6, save_steps=2)
    resumed = train_user_lm(
        str(base_dir), records, tmp_path / "run", profile=more, resume=True, progress=False
    )
    assert resumed.resumed_from.endswith("checkpoint-4") and resumed.steps == 6
    assert [
        step for step, _ in resumed.losses if step > 4
    ]  # logged after the resume (the history carries on)
    assert (tmp_path / "run" / "checkpoints" / "checkpoint-6").is_dir()
    with pytest.raises(ValueError, match="no checkpoint"):
        train_user_lm(
            str(base_dir), records, tmp_path / "fresh", profile=profile, resume=True, progress=False
        )


def test_lora_trains_the_end_token_rows_and_merges(tmp_path: Path, base_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    records = read_conversations(FIXTURE).records[:12]
    profile = get_profile("tiny", method="lora", max_steps=4)
    result = train_user_lm(str(base_dir), records, tmp_path / "lora", profile=profile, progress=False)
    assert result.steps == 4
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "lora")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "lora")
    end, eos = tokenizer.convert_tokens_to_ids(END), result.token_setup.init_from_id
    assert eos == tokenizer.eos_token_id and not (tmp_path / "lora" / "adapter_config.json").exists()
    for matrix in (model.get_input_embeddings().weight, model.get_output_embeddings().weight):
        assert (matrix[end] - matrix[eos]).abs().max().item() > 1e-4  # started as EOS, then trained


def test_sft_errors_are_clear(tmp_path: Path, base_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["train", "sft", "--model", str(tmp_path / "nope"), "--data", str(FIXTURE), "--out", "x"]) == 1
    )
    assert "no such folder" in capsys.readouterr().err
    assert (
        main(["train", "sft", "--model", "m", "--data", str(FIXTURE), "--out", "x", "--profile", "big"]) == 1
    )
    assert "--profile 'big'" in capsys.readouterr().err
    no_intents = tmp_path / "c.jsonl"
    no_intents.write_text(
        json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})
    )
    assert (
        main(
            [
                "train",
                "sft",
                "--model",
                str(base_dir),
                "--data",
                str(no_intents),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 1
    )
    assert "no trainable conversation" in capsys.readouterr().err
