"""Training data: conversation validation (per-record errors, never silent), duplicates, leak-free grouped splits,
resumable intents from an Inspect model (mockllm), and the hub loaders' offline error."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from inspect_ai.model import GenerateConfig, ModelOutput, ModelUsage, get_model

from userlm_plugin.cli import main
from userlm_plugin.errors import ConfigError, UsageError
from userlm_plugin.train.conversations import grouped_split, parse_record, read_conversations
from userlm_plugin.train.intents import clean_intent, done_ids, load_intent_prompt, write_intents
from userlm_plugin.train.loaders import HubUnavailableError, download

FIXTURE = Path(__file__).parent / "fixtures" / "train" / "conversations.jsonl"
OPENING = "You are a user chatting with an assistant language model to"


def conv(*texts: str, **fields: Any) -> dict[str, Any]:
    roles = ["user", "assistant"] * len(texts)
    return {**fields, "messages": [{"role": r, "content": t} for r, t in zip(roles, texts, strict=False)]}


def write(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), "utf-8")
    return path


def test_bad_records_are_reported_one_by_one_and_the_rest_is_read(tmp_path: Path) -> None:
    rows = [
        conv("hi", "hello", id="ok-1"),
        "{not json",
        conv("hi", "hello", "unanswered", id="trailing-user"),
        {"id": "two-users", "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]},
        {"id": "tool", "messages": [{"role": "user", "content": "a"}, {"role": "tool", "content": "b"}]},
        {
            "id": "empty",
            "messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "b"}],
        },
        {"id": "image", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
        conv("bye", "see you", id="ok-2", intent=""),
    ]
    result = read_conversations(write(tmp_path / "c.jsonl", rows))
    assert [r.id for r in result.records] == ["ok-1"]
    reasons = {p.id or f"line{p.line}": p.reason for p in result.problems}
    assert set(reasons) == {"line2", "trailing-user", "two-users", "tool", "empty", "image", "ok-2"}
    assert "invalid JSON" in reasons["line2"]
    assert "never answered" in reasons["trailing-user"] and "messages[1]" in reasons["two-users"]
    assert "'tool'" in reasons["tool"] and "empty" in reasons["empty"] and "text part" in reasons["image"]
    assert "`intent`" in reasons["ok-2"]
    assert str(result.problems[0]).startswith("line 2:")


def test_duplicates_are_dropped_system_prompts_removed_and_text_parts_joined(tmp_path: Path) -> None:
    rows = [
        conv("Fix my code", "Sure", id="a"),
        conv("fix  my code", "sure", id="b"),  # same conversation up to case and spacing
        {
            "id": "c",
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "part one"}, {"type": "text", "text": "two"}],
                },
                {"role": "assistant", "content": "ok"},
            ],
        },
        conv("other", "reply", id="a"),  # a reused id with new content is an error, not a silent overwrite
    ]
    result = read_conversations(write(tmp_path / "c.jsonl", rows))
    assert [r.id for r in result.records] == ["a", "c"]
    assert result.duplicates == 1 and result.system_messages_dropped == 1
    assert result.records[1].turns[0]["content"] == "part one\ntwo"
    assert len(result.problems) == 1 and "duplicate id" in result.problems[0].reason


def test_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="conversation file not found"):
        read_conversations(tmp_path / "nope.jsonl")


def test_split_keeps_every_user_on_one_side_and_is_stable() -> None:
    records = read_conversations(FIXTURE).records
    train, test = grouped_split(records, 0.3, by="user", seed=3)
    assert train and test and len(train) + len(test) == len(records)
    assert not {r.user_id for r in train} & {r.user_id for r in test}  # no user leaks
    # the decision depends on the group alone: not on order, not on the other records
    train_again, test_again = grouped_split(list(reversed(records))[:25], 0.3, by="user", seed=3)
    assert {r.id for r in test_again} <= {r.id for r in test}
    assert {r.id for r in train_again} <= {r.id for r in train}
    by_conversation = grouped_split(records, 0.3, by="conversation", seed=3)[1]
    assert not {r.id for r in by_conversation} & {
        r.id for r in grouped_split(records, 0.3, by="conversation", seed=3)[0]
    }
    with pytest.raises(ConfigError, match="test-fraction"):
        grouped_split(records, 1.0)


def test_record_id_falls_back_to_known_fields_then_a_content_hash() -> None:
    assert parse_record(conv("a", "b", conversation_hash="h1"))[0].id == "h1"
    first, second = parse_record(conv("a", "b"))[0], parse_record(conv("a", "b"))[0]
    assert first.id == second.id and first.id.startswith("sha-")
    with pytest.raises(ConfigError, match="`cid`"):
        parse_record(conv("a", "b"), id_field="cid")


# ------------------------------------------------------------------------------------------------ intents


def intent_model(replies: list[str] | None = None, fail_on: str | None = None) -> Any:
    calls: list[str] = []

    def reply(input: list[Any], tools: Any, tool_choice: Any, config: GenerateConfig) -> ModelOutput:
        prompt = input[-1].text
        calls.append(prompt)
        if fail_on and fail_on in prompt.rsplit("Conversation:", 1)[-1]:
            raise RuntimeError("provider down")
        last = prompt.rsplit("[user]: ", 1)[-1].split("\n")[0]
        text = replies.pop(0) if replies else f'Intent: "{OPENING} ask about {last}"'
        output = ModelOutput.from_content(model="mockllm/model", content=text)
        output.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
        return output

    model = get_model("mockllm/model", custom_outputs=reply, memoize=False)
    model.calls = calls  # type: ignore[attr-defined]
    return model


def test_intents_are_written_cleaned_and_a_rerun_skips_what_is_done(tmp_path: Path) -> None:
    records = [parse_record(conv(f"question {i}", "answer", id=f"c{i}"))[0] for i in range(4)]
    records.append(parse_record(conv("given", "x", id="given", intent=f"{OPENING} keep this"))[0])
    out = tmp_path / "intents.jsonl"
    model = intent_model()
    run = asyncio.run(write_intents(records, model, out, max_connections=2))
    assert run.summary() == {"written": 4, "copied": 1, "cached": 0, "failed": 0}
    rows = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert rows["c2"]["intent"] == f"{OPENING} ask about question 2."
    assert rows["given"]["intent"] == f"{OPENING} keep this" and "intent_model" not in rows["given"]
    assert rows["c0"]["intent_model"] == "mockllm/model" and rows["c0"]["intent_prompt_version"] == "1"
    assert (
        "Example 3:" in model.calls[0] and "[user]: question" in model.calls[0]
    )  # few-shot prompt from the data file

    again = intent_model()
    rerun = asyncio.run(write_intents(records, again, out))
    assert rerun.summary() == {"written": 0, "copied": 0, "cached": 5, "failed": 0} and again.calls == []


def test_a_crash_mid_line_loses_only_that_line(tmp_path: Path) -> None:
    out = tmp_path / "intents.jsonl"
    done = json.dumps({"id": "c0", "intent": f"{OPENING} x.", "messages": conv("a", "b")["messages"]})
    out.write_text(done + "\n" + '{"id": "c1", "inte')  # the process died while writing c1
    assert done_ids(out) == {"c0"} and out.read_text() == done + "\n"
    records = [parse_record(conv(f"q{i}", "a", id=f"c{i}"))[0] for i in range(2)]
    run = asyncio.run(write_intents(records, intent_model(), out))
    assert (run.cached, run.written) == (1, 1)
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["c0", "c1"]


def test_unusable_replies_are_retried_then_reported_and_provider_errors_fail_alone(tmp_path: Path) -> None:
    records = [parse_record(conv(f"q{i}", "a", id=f"c{i}"))[0] for i in range(3)]
    # c0: two bad replies then a good one (retried); then c1's three replies are all bad; c2's provider call fails
    replies = ["Sure! Here is the intent:", "The user wants x", f"{OPENING} fix things"] + ["nope"] * 3
    model = intent_model(replies=replies, fail_on="q2")
    run = asyncio.run(write_intents(records, model, tmp_path / "o.jsonl", max_connections=1, max_retries=2))
    assert run.written == 1 and {p.id for p in run.problems} == {"c1", "c2"}
    assert "does not start with" in next(p.reason for p in run.problems if p.id == "c1")
    assert "provider down" in next(p.reason for p in run.problems if p.id == "c2")


def test_clean_intent_and_prompt_file() -> None:
    assert clean_intent(f"Intent Summary: {OPENING.upper()} plan a trip\nextra") == f"{OPENING} plan a trip."
    with pytest.raises(ConfigError, match="no goal"):
        clean_intent(f"{OPENING}.")
    prompt = load_intent_prompt()
    assert prompt.opening == OPENING and len(prompt.examples) == 3
    assert all(e["intent"].startswith(OPENING) for e in prompt.examples)
    with pytest.raises(ConfigError, match="no such file"):
        load_intent_prompt("/nonexistent.yaml")


def test_intents_cli_writes_the_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write(tmp_path / "c.jsonl", [conv("q", "a", id="c0", intent=f"{OPENING} keep")])
    out = tmp_path / "o.jsonl"
    assert main(["train", "intents", str(data), "--model", "mockllm/model", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["intent"] == f"{OPENING} keep"


# ------------------------------------------------------------------------------------------------ loaders


def test_hub_download_offline_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubUnavailableError, match=r"allenai/WildChat-1M@7d6490e462.*offline") as caught:
        download("wildchat", tmp_path / "w.jsonl", limit=5)
    assert isinstance(caught.value, UsageError) and not (tmp_path / "w.jsonl").exists()
    assert main(["train", "download", "lmsys", "--out", str(tmp_path / "l.jsonl")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "lmsys/lmsys-chat-1m" in err and "HF_TOKEN" in err
    with pytest.raises(ConfigError, match="unknown source"):
        download("sharegpt", tmp_path / "s.jsonl")
