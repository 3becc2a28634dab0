"""Probe sets for measuring a simulated user (the robustness probes of arXiv 2510.06552 §3; docs/metrics.md), as Inspect samples.

Each probe is a fixed conversation prefix that ends with an assistant turn (or is empty, for the first-turn
probe); the simulator under test writes ONE next user turn and scorers judge it:

| probe        | prefix                                              | question asked of the next user turn     |
|--------------|-----------------------------------------------------|------------------------------------------|
| `role`       | user asks a question; assistant is unsure/asks back | does the user stay a user (no self-answer)? |
| `intent`     | user asks a question; assistant proposes a diversion| does the user return to its intent?      |
| `first_turn` | nothing                                             | diversity, intent dumping, style         |
| `termination`| the assistant's last turn met the goal (`should_end: true`) or still needs input (`false`) | does the user end exactly when done? |

In-repo probe sets (`data/probes/<probe>.jsonl`, written for this project, 56–70 items each) need no
network. Rows: `{"id", "intent", "messages": [{"role", "content"}...], "should_end"?}`.

The paper's sources (CommonsenseQA for role, NaturalQuestions for intent, PRISM for termination) are loaded
on demand from the Hugging Face Hub at a pinned revision (needs the `datasets` package and network access;
never used by the tests). Their assistant turns come from `data/probes/assistant_replies.yaml`, templates
standing in for the paper's GPT-4o-written replies.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any, Literal

import yaml
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessage, ChatMessageAssistant, ChatMessageUser

ProbeName = Literal["role", "intent", "first_turn", "termination"]
PROBES: tuple[ProbeName, ...] = ("role", "intent", "first_turn", "termination")

INTENT_PREFIX = "You are a user chatting with an assistant language model to "
"""The opening every UserLM training intent has (arXiv 2510.06552 §2; docs/userlm.md)."""

HF_SOURCES: dict[str, dict[str, str]] = {
    # revision from two third-party pins that agree (not re-checked here: no hub access while writing this)
    "commonsense_qa": {"path": "tau/commonsense_qa", "revision": "94630fe30dad47192a8546eb75f094926d47e155"},
    # no verified commit sha was available offline: pass `revision=` to pin these (recorded in sample metadata)
    "nq_open": {"path": "google-research-datasets/nq_open", "revision": "main"},
    "prism": {"path": "HannahRoseKirk/prism-alignment", "revision": "main"},
}
"""Hugging Face datasets behind the paper's probes (arXiv 2510.06552 §3), with the revision each loader pins by default."""


def _probe_file(name: str) -> str:
    return resources.files(__package__).joinpath(f"probes/{name}").read_text("utf-8")


def _messages(raw: list[dict[str, Any]], where: str) -> list[ChatMessage]:
    out: list[ChatMessage] = []
    for i, m in enumerate(raw):
        role, content = m.get("role"), m.get("content")
        if role not in ("user", "assistant") or not isinstance(content, str):
            raise ValueError(
                f"{where}: messages[{i}] must be {{'role': 'user'|'assistant', 'content': str}}, got {m!r}"
            )
        out.append(
            ChatMessageUser(content=content) if role == "user" else ChatMessageAssistant(content=content)
        )
    return out


def probe_sample(row: dict[str, Any], probe: ProbeName, where: str = "probe row") -> Sample:
    """One probe row -> an Inspect `Sample` (input = the fixed prefix; metadata intent/probe/should_end)."""
    if not isinstance(row.get("intent"), str) or not row["intent"].strip():
        raise ValueError(f"{where}: field `intent` must be a non-empty string")
    messages = _messages(row.get("messages") or [], where)
    metadata: dict[str, Any] = {"intent": row["intent"], "probe": probe}
    if "should_end" in row:
        metadata["should_end"] = bool(row["should_end"])
    metadata.update(row.get("metadata") or {})
    return Sample(id=row.get("id"), input=messages or "", metadata=metadata)


@cache
def _probe_rows(probe: ProbeName) -> tuple[dict[str, Any], ...]:
    rows = []
    for n, line in enumerate(_probe_file(f"{probe}.jsonl").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as ex:
                raise ValueError(f"data/probes/{probe}.jsonl line {n}: invalid JSON ({ex})") from ex
    return tuple(rows)


def load_probe(probe: ProbeName, limit: int | None = None) -> list[Sample]:
    """The in-repo probe set `probe` as samples (no network)."""
    if probe not in PROBES:
        raise ValueError(f"unknown probe {probe!r}: choose one of {', '.join(PROBES)}")
    rows = _probe_rows(probe)[:limit]
    return [probe_sample(r, probe, f"data/probes/{probe}.jsonl row {i + 1}") for i, r in enumerate(rows)]


def probe_dataset(probe: ProbeName | Literal["all"] = "all", limit: int | None = None) -> MemoryDataset:
    """One in-repo probe set, or all four (`limit` applies per probe)."""
    names = PROBES if probe == "all" else (probe,)
    samples = [s for name in names for s in load_probe(name, limit)]
    return MemoryDataset(samples, name=f"userlm_probes_{probe}")


@cache
def assistant_replies() -> dict[str, list[str]]:
    """Fixed assistant turns for probes built from external data (`uncertain`, `diversion` with {topic})."""
    data = yaml.safe_load(_probe_file("assistant_replies.yaml"))
    return {"uncertain": list(data["uncertain"]), "diversion": list(data["diversion"])}


# ---------------------------------------------------------------------- builders for the paper's sources


def commonsense_qa_row(record: dict[str, Any], index: int) -> dict[str, Any]:
    """A CommonsenseQA record -> role probe row: the user asks the question; the assistant is unsure (role adherence, docs/metrics.md#role-adherence)."""
    choices = record["choices"]
    options = ", ".join(
        f"{label}) {text}" for label, text in zip(choices["label"], choices["text"], strict=True)
    )
    uncertain = assistant_replies()["uncertain"]
    concept = record.get("question_concept") or "a commonsense question"
    return {
        "id": f"csqa-{record.get('id', index)}",
        "intent": f"{INTENT_PREFIX}get the answer to a multiple-choice question about {concept}",
        "messages": [
            {"role": "user", "content": f"{record['question']} {options}"},
            {"role": "assistant", "content": uncertain[index % len(uncertain)]},
        ],
        "metadata": {"answer_key": record.get("answerKey"), "source": "tau/commonsense_qa"},
    }


def nq_open_row(record: dict[str, Any], index: int) -> dict[str, Any]:
    """A NaturalQuestions-open record -> intent probe row: the assistant proposes a diversion (intent adherence, docs/metrics.md#intent-adherence)."""
    question = record["question"].strip()
    diversion = assistant_replies()["diversion"]
    topic = _topic(question)
    return {
        "id": f"nq-{index}",
        "intent": f"{INTENT_PREFIX}find out the answer to the question: {question}",
        "messages": [
            {"role": "user", "content": question},
            {"role": "assistant", "content": diversion[index % len(diversion)].format(topic=topic)},
        ],
        "metadata": {
            "answers": list(record.get("answer") or []),
            "source": "google-research-datasets/nq_open",
        },
    }


def prism_rows(record: dict[str, Any], index: int) -> list[dict[str, Any]]:
    """A PRISM conversation -> termination rows: after its last assistant turn the user should end (true);
    after every earlier assistant turn the real user went on (false). The assistant side is the response
    the PRISM user chose. PRISM has no intents: the opening prompt stands in (an approximation)."""
    turns: list[dict[str, str]] = []
    for entry in record.get("conversation_history") or []:
        if entry.get("role") == "user":
            turns.append({"role": "user", "content": entry["content"]})
        elif entry.get("role") == "model" and entry.get("if_chosen"):
            turns.append({"role": "assistant", "content": entry["content"]})
    opening = (record.get("opening_prompt") or (turns[0]["content"] if turns else "")).strip()
    intent = f"{INTENT_PREFIX}talk about the following: {opening}"
    rows = []
    assistant_positions = [i for i, t in enumerate(turns) if t["role"] == "assistant"]
    for k, pos in enumerate(assistant_positions):
        rows.append(
            {
                "id": f"prism-{record.get('conversation_id', index)}-{k + 1}",
                "intent": intent,
                "should_end": pos == assistant_positions[-1],
                "messages": turns[: pos + 1],
                "metadata": {"source": "HannahRoseKirk/prism-alignment"},
            }
        )
    return rows


def _topic(question: str) -> str:
    words = [w for w in question.rstrip("?").split() if w.lower() not in _QUESTION_WORDS]
    return " ".join(words[-4:]) or "this"


_QUESTION_WORDS = frozenset(
    "who what when where which why how is are was were did does do the a an of in".split()
)


def load_hf_probe(
    probe: Literal["role", "intent", "termination"],
    limit: int | None = 2000,
    revision: str | None = None,
    split: str | None = None,
) -> list[Sample]:
    """The paper's probe sources from the Hugging Face Hub (network + `datasets` needed; paper uses 2,000 each).

    role -> CommonsenseQA (validation), intent -> NaturalQuestions-open (validation), termination -> PRISM
    conversations (train). `revision` overrides the pinned one in `HF_SOURCES`.
    """
    try:
        import datasets  # noqa: F401  (lazy: heavy, and only needed for full runs)
    except ImportError as ex:
        raise ImportError("load_hf_probe needs the `datasets` package: pip install datasets") from ex
    from datasets import load_dataset

    key = {"role": "commonsense_qa", "intent": "nq_open", "termination": "prism"}.get(probe)
    if key is None:
        raise ValueError(f"probe {probe!r} has no external source: choose role, intent or termination")
    source = HF_SOURCES[key]
    rev = revision or source["revision"]
    if key == "prism":
        records = load_dataset(source["path"], "conversations", split=split or "train", revision=rev)
    else:
        records = load_dataset(source["path"], split=split or "validation", revision=rev)
    rows: list[dict[str, Any]] = []
    for i, record in enumerate(records):
        if limit is not None and len(rows) >= limit:
            break
        if key == "commonsense_qa":
            rows.append(commonsense_qa_row(record, i))
        elif key == "nq_open":
            rows.append(nq_open_row(record, i))
        else:
            rows.extend(prism_rows(record, i))
    rows = rows[:limit]
    samples = [probe_sample(r, probe, f"{source['path']} record {i}") for i, r in enumerate(rows)]
    for s in samples:
        assert s.metadata is not None
        s.metadata["source_revision"] = rev
    return samples
