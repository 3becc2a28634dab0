"""bench/human_alignment.py, the paper's Table 1 in miniature (issue 18), on its real code path at toy scale: a tiny
ChatML Llama (SmolLM2's layout, no end token) is trained on the fixture's people and every row replays the held-out
people: `scripted`, `prompted_flat` and `prompted` through Inspect's `hf/` provider, `userlm/` untrained, trained,
and trained without guardrails. The figures of a toy model mean nothing; what is checked is that the split keeps
people apart, that each row measures what it says, and that the table, JSON and chart are written."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
from tiny_llama import build_tiny_userlm

REPO = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "human"
SHARED = REPO.parent / "shared" / "data" / "simulatorarena"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "human_alignment_bench", REPO / "bench" / "human_alignment.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


bench = _bench()


def test_the_split_keeps_every_person_on_one_side() -> None:
    records = bench.read_people([FIXTURE])
    split = bench.split_people(records, 0.4, seed=1, subset=None, conversations=99)
    train_people = {r.group for r in split.train}
    heldout_people = {r.group for r in split.heldout}
    assert train_people and heldout_people and not train_people & heldout_people
    # worker-a wrote three of the document conversations: all three land on the same side
    sides = {r in split.train for r in records if r.user_id == "worker-a"}
    assert len([r for r in records if r.user_id == "worker-a"]) == 3 and len(sides) == 1
    assert split.evaluated == split.heldout


def test_training_sees_the_intent_the_replay_shows() -> None:
    from userlm_plugin.evals.human_fidelity.dataset import record_sample, sample_intent

    record = next(
        r
        for r in bench.read_people([FIXTURE / "simulatorarena_documents.json"])
        if r.extra.get("user_background")
    )
    trained = bench.training_view(record)
    assert trained.intent == sample_intent(record_sample(record).metadata)
    assert trained.intent != record.intent and trained.intent.startswith(record.intent)


def test_a_folder_passes_over_files_that_hold_no_conversations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "background.json").write_text(json.dumps([{"not": "a conversation"}]))
    (tmp_path / "docs.json").write_bytes((FIXTURE / "simulatorarena_documents.json").read_bytes())
    records = bench.read_people([tmp_path])
    assert len(records) == 6 and "background.json: passed over" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="background.json"):
        bench.read_people([tmp_path / "background.json"])


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"the shared SimulatorArena data is not at {SHARED}")
def test_the_real_people_split_by_person() -> None:
    records = bench.read_people([SHARED])  # the background file is passed over
    assert sum(r.extra["subset"] == "document_creation" for r in records) == 51
    assert sum(r.extra["subset"] == "math_tutoring" for r in records) == 48
    split = bench.split_people(records, 0.25, seed=1, subset="document_creation", conversations=8)
    assert not {r.group for r in split.train} & {r.group for r in split.heldout}
    assert len(split.evaluated) == 8 and all(
        r.extra["subset"] == "document_creation" for r in split.evaluated
    )


@pytest.mark.slow
def test_the_bench_runs_every_row_and_writes_the_table(tmp_path: Path) -> None:
    base = build_tiny_userlm(tmp_path / "tiny-chatml", flavour="chatml", end_token=False)
    out = tmp_path / "out"
    argv = [
        "--data",
        str(FIXTURE),
        "--model",
        str(base),
        "--out",
        str(out),
        "--profile",
        "tiny",
        "--steps",
        "2",
    ]
    argv += [
        "--test-fraction",
        "0.4",
        "--subset",
        "",
        "--eval-conversations",
        "3",
        "--max-tokens",
        "12",
        "--quiet",
    ]
    result = bench.main(argv)

    rows = {r["row"]: r for r in result["rows"]}
    assert list(rows) == [
        "people",
        *bench.ROWS,
    ]  # the people first, then every simulator in the bench's order
    assert all(r["conversations"] == 3 for r in rows.values())
    assert rows["scripted"]["auroc"] == 0.5 and rows["scripted"]["len_jsd"] == 0.0
    assert rows["scripted"]["end_f1"] == 100.0
    # perplexity exists only where a userlm/ model defines it; the raw row runs the trained weights
    assert {name for name, r in rows.items() if r.get("ppl") is not None} == {
        "userlm_base",
        "userlm_trained",
        "userlm_trained_raw",
    }
    assert rows["userlm_trained_raw"]["ppl"] == rows["userlm_trained"]["ppl"]
    assert rows["userlm_trained"]["ppl"] != rows["userlm_base"]["ppl"]  # training changed the weights
    # the prompted rows ran the instruct model through Inspect's hf/ provider
    runs = result["runs"]
    assert set(runs) == set(bench.ROWS) and all(
        Path(r["log"].removeprefix("file://")).exists() for r in runs.values()
    )
    training = result["training"]
    assert training["steps"] == 2 and training["sequences"] > 0 and training["final_loss"] is not None
    assert (out / "user-lm" / "config.json").is_file()

    saved = json.loads((out / "human_alignment.json").read_text())
    assert saved["split"]["evaluated_turns"] > 0 and saved["timings_s"]["total"] > 0
    assert set(saved["split"]["by_subset"]) >= {"document_creation", "math_tutoring"}
    markdown = (out / "fidelity.md").read_text()
    assert "people (reference)" in markdown and "userlm/" in markdown
    table = bench.markdown_table(result["rows"])
    assert table.count("\n") == len(rows) + 1 and "| scripted | 3 |" in table
    ppl = bench.perplexity_table(result["rows"])
    assert "userlm_base" in ppl and "userlm_trained " in ppl and "userlm_trained_raw" not in ppl
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert (out / "fidelity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_conversation_longer_than_the_context_fails_alone(tmp_path: Path) -> None:
    """What SimulatorArena did to SmolLM2 (8192 tokens): one held-out conversation's prefix is longer than the user
    model's context. That conversation fails in its row, the row and the bench go on, and the table drops it from
    every row (each row is computed on the conversations all rows replayed)."""
    from userlm_plugin.train.conversations import in_test_split

    base = build_tiny_userlm(tmp_path / "tiny-chatml", flavour="chatml", end_token=False)  # 2048 positions
    person = next(f"long{i}" for i in range(1000) if in_test_split(f"user:long{i}", 0.4, 1))
    long_reply = " ".join(f"word{i % 97} of the long assistant reply" for i in range(1500))
    long = {
        "id": "too-long",
        "user_id": person,
        "intent": "You are a user chatting with an assistant language model to read a very long answer",
        "messages": [
            {"role": "user", "content": "tell me everything"},
            {"role": "assistant", "content": long_reply},
            {"role": "user", "content": "too long, shorter please"},
            {"role": "assistant", "content": "Sure."},
        ],
    }
    data = tmp_path / "data.jsonl"
    data.write_text(
        (FIXTURE / "conversations.jsonl").read_text().rstrip("\n") + "\n" + json.dumps(long) + "\n"
    )
    argv = [
        "--data",
        str(data),
        "--model",
        str(base),
        "--out",
        str(tmp_path / "out"),
        "--test-fraction",
        "0.4",
    ]
    argv += ["--subset", "", "--eval-conversations", "50", "--max-tokens", "12", "--quiet"]
    result = bench.main([*argv, "--rows", "scripted", "userlm_base"])

    assert "too-long" in result["split"]["evaluated"]
    [failed] = result["runs"]["userlm_base"]["failed"]
    assert failed["id"] == "too-long" and "context" in failed["error"]
    assert result["runs"]["scripted"]["failed"] == []
    replayed = len(result["split"]["evaluated"]) - 1
    assert replayed > 0 and all(r["conversations"] == replayed for r in result["rows"])
