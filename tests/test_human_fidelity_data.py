"""Where the human conversations come from: conversation JSONL (the `train flip` reader, WildChat rows too),
SimulatorArena files (intents, background, z-normalised ratings, math's partial intent), the pinned download and
its cache, and the one-line errors for bad input (docs/fidelity.md#sources)."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from userlm_plugin.errors import UsageError
from userlm_plugin.evals.human_fidelity import simulatorarena as arena
from userlm_plugin.evals.human_fidelity.dataset import (
    check_invalid,
    human_dataset,
    read_human_data,
    sample_intent,
)
from userlm_plugin.evals.human_fidelity.task import human_fidelity_task

FIXTURES = Path(__file__).parent / "fixtures" / "human"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "simulatorarena"
needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(),
    reason=f"the shared SimulatorArena data is not at {SHARED} (a checkout without ../shared)",
)


def test_conversation_jsonl_through_the_train_reader() -> None:
    data = read_human_data(str(FIXTURES / "conversations.jsonl"))
    assert [r.id for r in data.records] == ["trip", "regex", "cover", "plant", "wc-0001", "sorting"]
    [problem] = data.problems
    assert problem.id == "unanswered" and "never answered" in problem.reason
    wildchat = data.records[4]  # `conversation` instead of `messages`, extra keys on every turn
    assert wildchat.turns[0] == {
        "role": "user",
        "content": "how do you say good morning my friend in spanish",
    }
    sample = human_dataset(data)[0]
    assert sample.metadata is not None
    assert sample.metadata["turns"] == [
        "weekend in porto, cheap stuff to do?",
        "whats a cheap place to eat near ribeira",
        "great thx",
    ]
    assert sample.metadata["user_id"] == "p1" and sample.metadata["intent"].startswith(
        "You are a user chatting"
    )
    assert [m.role for m in sample.input] == ["user", "assistant"] * 3  # type: ignore[union-attr]


def test_invalid_records_are_skipped_or_fail_the_load() -> None:
    data = read_human_data(str(FIXTURES / "conversations.jsonl"))
    check_invalid(data, "skip")  # logged, the rest goes on
    with pytest.raises(UsageError, match=r"1 invalid record\(s\): line 6 \(id unanswered\)"):
        check_invalid(data, "fail")
    task = human_fidelity_task(data=str(FIXTURES / "conversations.jsonl"), simulator="scripted")
    assert task.metadata is not None and len(task.metadata["skipped_records"]) == 1
    assert len(task.dataset) == 6


def test_document_creation_intent_is_written_as_userlm_intents_are() -> None:
    raw = json.loads((FIXTURES / "simulatorarena_documents.json").read_text())[0]
    intent = (
        "You are a user chatting with an assistant language model to get help writing an email (thank you "
        "note): write a short note thanking a neighbour for their help. The document should be between 100 "
        "and 500 words."
    )
    assert arena.document_intent(raw) == intent
    # the person's background travels as `user_background`, which every simulator gets after the intent
    [sample] = human_dataset(read_human_data(str(FIXTURES / "simulatorarena_documents.json")), limit=1)
    assert sample.metadata is not None and sample.metadata["intent"] == intent
    assert sample.metadata["user_background"] == [
        {
            "question": "Who helped you, and how?",
            "answer": "my neighbour Rosa watered my plants for two weeks",
        },
        {"question": "What do you want them to know?", "answer": "that I owe her a dinner"},
    ]
    assert sample_intent(sample.metadata) == (
        f"{intent}\n\nWhat you know about your situation (the assistant does not know it until you say it):\n"
        "- Who helped you, and how? my neighbour Rosa watered my plants for two weeks\n"
        "- What do you want them to know? that I owe her a dinner"
    )
    plain = read_human_data(str(FIXTURES / "simulatorarena_documents.json"), background=False)
    assert "user_background" not in plain.records[0].extra  # -T background=false: the task alone


def test_ratings_are_z_normalised_per_worker_with_small_workers_pooled() -> None:
    data = read_human_data(str(FIXTURES / "simulatorarena_documents.json"))
    assert data.subset == "document_creation" and len(data.records) == 6
    z = [r.extra["human_z_interaction"] for r in data.records]
    # worker-a rated 9, 6, 3 (3 ratings: own mean 6, sd 3); the others 8, 4, 2 (pooled: mean 14/3, sd sqrt(28/3))
    assert z == pytest.approx([1.0, 1.091089, 0.0, -0.218218, -1.0, -0.872872], abs=1e-6)
    assert [r.extra["human_z_document"] for r in data.records] == pytest.approx([1, 1, 0, 0, -1, -1])
    assert data.records[0].extra["assistant_model"] == "gpt-4o" and data.records[0].user_id == "worker-a"
    assert (
        arena.z_normalise(5.0, [5.0]) == 0.0 and arena.z_normalise(5.0, [5.0, 5.0]) == 0.0
    )  # undefined -> 0


def test_math_tutoring_has_a_partial_intent_and_text_turns_only() -> None:
    data = read_human_data(str(FIXTURES / "simulatorarena_math.json"))
    assert data.subset == "math_tutoring" and [r.id for r in data.records] == ["math-000", "math-001"]
    [problem] = data.problems
    assert "user_queries[1]` is an uploaded file, not text" in problem.reason
    literal = data.records[1]  # user_queries held as a Python-literal list in a string
    assert literal.user_turns == ["What is a permutation?", "so 5*4*3?"]
    assert literal.intent == (
        "You are a user chatting with an assistant language model to get help from a math tutor with a Counting "
        "& Probability problem (MATH Level 4), working towards the answer yourself, and then with a second "
        "problem on similar concepts. Your math background is undergraduate level. Why you asked for a tutor, "
        "in your words: I'm completely lost and don't understand the problem."
    )
    assert "redacts the MATH problem text" in literal.extra["intent_note"]
    task = human_fidelity_task(data=str(FIXTURES / "simulatorarena_math.json"), simulator="scripted")
    assert task.metadata is not None and "partial intent" in task.metadata["intent_note"]


def test_bad_arguments_fail_in_one_line_before_any_model() -> None:
    jsonl = str(FIXTURES / "conversations.jsonl")
    with pytest.raises(UsageError, match="exactly one of -T data="):
        human_fidelity_task(data=jsonl, source="simulatorarena")
    with pytest.raises(UsageError, match="exactly one of"):
        human_fidelity_task()
    with pytest.raises(UsageError, match="the only source is simulatorarena"):
        human_fidelity_task(source="wildchat")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="-T subset=math_tutoring applies to -T source=simulatorarena"):
        human_fidelity_task(data=jsonl, subset="math_tutoring")
    with pytest.raises(UsageError, match="file not found"):
        human_fidelity_task(data="nowhere.jsonl")
    with pytest.raises(UsageError, match="Unknown simulator 'prompt'.*Did you mean 'prompted'"):
        human_fidelity_task(data=jsonl, simulator="prompt")
    with pytest.raises(UsageError, match="protocol"):
        human_fidelity_task(data=jsonl, protocol="judge")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="applies to -T protocol=correlation only"):
        human_fidelity_task(data=jsonl, assistants={"*": "mockllm/model"})
    with pytest.raises(UsageError, match="(?i)unknown guardrail setting.*max_wrods"):
        human_fidelity_task(data=jsonl, simulator={"simulator": "userlm", "guardrails": {"max_wrods": 3}})


def test_conversations_without_intent_need_a_simulator_that_does_without(tmp_path: Path) -> None:
    rows = [json.loads(line) for line in (FIXTURES / "conversations.jsonl").read_text().splitlines()]
    (tmp_path / "plain.jsonl").write_text(
        "\n".join(json.dumps({**r, "intent": None}) for r in rows[:2]) + "\n"
    )
    with pytest.raises(UsageError, match="2 conversation\\(s\\) have no `intent`.*train intents"):
        human_fidelity_task(data=str(tmp_path / "plain.jsonl"), simulator="prompted")
    assert len(human_fidelity_task(data=str(tmp_path / "plain.jsonl"), simulator="scripted").dataset) == 2


# ------------------------------------------------------------------------------------------ the download


@pytest.fixture
def arena_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server that serves the fixture folder, like raw.githubusercontent.com serves the repository."""
    root = tmp_path / "github"
    data = root / "data"
    data.mkdir(parents=True)
    body = (FIXTURES / "simulatorarena_documents.json").read_bytes()
    (data / "docs.json").write_bytes(body)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):  # type: ignore[no-untyped-def]
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    finally:
        server.shutdown()
        server.server_close()


class LocalFile(arena.ArenaFile):
    base = ""

    def url(self, commit: str = arena.COMMIT) -> str:
        return f"{self.base}/data/{self.name}"


def test_source_downloads_once_checks_the_hash_and_reuses_the_cache(
    arena_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, tmp = arena_server
    body = (FIXTURES / "simulatorarena_documents.json").read_bytes()
    LocalFile.base = base
    monkeypatch.setenv("USERLM_PLUGIN_CACHE", str(tmp / "cache"))
    good = {"document_creation": LocalFile("docs.json", hashlib.sha256(body).hexdigest())}
    monkeypatch.setattr(arena, "FILES", good)
    path = arena.download("document_creation")
    assert path == tmp / "cache" / "simulatorarena" / arena.COMMIT / "docs.json" and path.read_bytes() == body
    assert len(read_human_data(source="simulatorarena").records) == 6
    LocalFile.base = "http://127.0.0.1:9"  # nothing answers there now: the cache must serve
    assert arena.download("document_creation") == path

    path.write_bytes(b"[]")  # a corrupted cache file is fetched again, and a wrong download refused
    monkeypatch.setattr(arena, "FILES", {"document_creation": LocalFile("docs.json", "0" * 64)})
    LocalFile.base = base
    with pytest.raises(UsageError, match="not the pinned 0000000000000000"):
        arena.download("document_creation")


def test_source_offline_is_one_line_naming_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USERLM_PLUGIN_CACHE", str(tmp_path))
    LocalFile.base = "http://127.0.0.1:9"  # the discard port: connection refused
    monkeypatch.setattr(arena, "FILES", {"document_creation": LocalFile("docs.json", "0" * 64)})
    with pytest.raises(UsageError) as error:
        human_fidelity_task(source="simulatorarena")
    message = str(error.value)
    assert "\n" not in message and "cannot download" in message and "-T data=<path>" in message
    assert arena.FILES["document_creation"].name in message


def test_the_pinned_urls_name_the_commit() -> None:
    assert arena.FILES["document_creation"].url() == (
        "https://raw.githubusercontent.com/microsoft/SimulatorArena/e9f677c4975496fdd37f28bb6343ec3c1c54c8b4/"
        "data/document_creation_annotations_for_benchmarking.json"
    )


# ------------------------------------------------------------------------------------------ the real data


@needs_shared
def test_the_shared_simulatorarena_files_match_the_pinned_hashes_and_read_fully() -> None:
    for subset, spec in arena.FILES.items():
        body = (SHARED / spec.name).read_bytes()
        assert hashlib.sha256(body).hexdigest() == spec.sha256, subset
    docs = read_human_data(str(SHARED / arena.FILES["document_creation"].name))
    assert len(docs.records) == 51 and not docs.problems
    assert sum(len(r.user_turns) for r in docs.records) == 349
    math = read_human_data(str(SHARED / arena.FILES["math_tutoring"].name))
    # one conversation holds an uploaded image, one an empty first turn (the app sent the problem for them)
    assert len(math.records) == 48 and sorted(p.reason for p in math.problems) == [
        "field `user_queries[0]` is empty",
        "field `user_queries[7]` is an uploaded file, not text: a simulator cannot write it",
    ]
