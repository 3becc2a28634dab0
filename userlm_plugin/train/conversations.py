"""Conversation files for training: read and validate OpenAI-format JSONL, drop duplicates, split without leaks.

One JSON object per line:

    {"id": "c1", "user_id": "u7", "intent": "You are a user chatting with ...",
     "messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}, ...]}

`intent` and `user_id` are optional (field names configurable). A WildChat/LMSYS row as the hub publishes it
(`conversation` instead of `messages`, extra keys on each turn) is read the same way. `content` is a string or a
list of `{"type": "text", "text": ...}` parts. A `system` message is the *assistant's* prompt, which a real user never
sees, so it is dropped (and counted). The rest must alternate user/assistant, start with the user and end with the
assistant's reply: UserLM's training data always alternates (arXiv 2510.06552 §2; docs/userlm.md), and the final
`<|endconversation|>` is the user's turn after the last reply. A record that breaks a rule is reported with its line
number and the reason, and skipped; the rest of the file is still read.

Splits are grouped: every conversation of one user (or, without user ids, each conversation) lands in the same
split, decided by a hash of the group key and a seed, so the split does not depend on file order or size and a
held-out user never leaks into training (the paper splits WildChat by user, §2).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from ..errors import ConfigError

ROLES = ("user", "assistant")
ID_FIELDS = ("id", "conversation_id", "conv_id", "conversation_hash")
"""Where a record's id is looked for, in order (the first one present wins; else a content hash)."""


@dataclass(frozen=True)
class ChatRecord:
    """One validated conversation: alternating user/assistant turns, user first, assistant last."""

    id: str
    turns: tuple[dict[str, str], ...]
    intent: str | None = None
    user_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    """Other fields of the input record, written back unchanged."""

    @property
    def group(self) -> str:
        """What a split keeps together: the user when known, else the conversation."""
        return f"user:{self.user_id}" if self.user_id else f"conversation:{self.id}"

    @property
    def user_turns(self) -> list[str]:
        return [t["content"] for t in self.turns if t["role"] == "user"]

    def content_key(self) -> str:
        """Identity for duplicate detection: roles and texts, case and whitespace folded."""
        folded = [(t["role"], " ".join(t["content"].lower().split())) for t in self.turns]
        return hashlib.sha256(json.dumps(folded).encode()).hexdigest()

    def to_json(self, id_field: str = "id", user_field: str = "user_id") -> dict[str, Any]:
        row: dict[str, Any] = {id_field: self.id}
        if self.user_id is not None:
            row[user_field] = self.user_id
        if self.intent is not None:
            row["intent"] = self.intent
        row["messages"] = [dict(t) for t in self.turns]
        return {**self.extra, **row}

    def with_intent(self, intent: str) -> ChatRecord:
        return replace(self, intent=intent)


@dataclass(frozen=True)
class RecordProblem:
    """A record that was skipped, and why (the line number is 1-based; 0 for records not read from a file)."""

    line: int
    id: str | None
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "record"
        return f"{where}{f' (id {self.id})' if self.id else ''}: {self.reason}"


@dataclass
class ReadResult:
    records: list[ChatRecord]
    problems: list[RecordProblem]
    duplicates: int = 0
    system_messages_dropped: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "records": len(self.records),
            "skipped": len(self.problems),
            "duplicates_dropped": self.duplicates,
            "system_messages_dropped": self.system_messages_dropped,
        }


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for n, part in enumerate(content):
            if not (
                isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
            ):
                raise ConfigError(
                    f"{where}.content[{n}] is not a text part ({{'type': 'text', 'text': ...}}); "
                    "images, audio and tool results cannot be trained on: drop the record or the part"
                )
            texts.append(part["text"])
        return "\n".join(texts)
    raise ConfigError(
        f"{where}.content must be a string or a list of text parts, got {type(content).__name__}"
    )


def parse_record(
    raw: Any, *, id_field: str | None = None, user_field: str = "user_id", intent_field: str = "intent"
) -> tuple[ChatRecord, int]:
    """Validate one decoded JSON object into a `ChatRecord` (and the number of system messages it dropped).

    Raises `ConfigError` naming the field and the fix."""
    if not isinstance(raw, dict):
        raise ConfigError(f"a record must be a JSON object with a `messages` list, got {type(raw).__name__}")
    # `conversation`: WildChat/LMSYS rows as the hub publishes them
    messages = raw.get("messages", raw.get("conversation"))
    if not isinstance(messages, list) or not messages:
        raise ConfigError(
            "field `messages` (or WildChat's `conversation`) must be a non-empty list of {'role', 'content'} objects"
        )
    turns: list[dict[str, str]] = []
    dropped = 0
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise ConfigError(f"{where} must be an object with `role` and `content`")
        role = message.get("role")
        if role == "system":
            dropped += 1  # the assistant's system prompt: not part of what the user saw
            continue
        if role not in ROLES:
            raise ConfigError(
                f"{where}.role is {role!r}; only 'user', 'assistant' (and 'system', dropped) are allowed"
            )
        text = _text(message.get("content"), where).strip()
        if not text:
            raise ConfigError(f"{where} ({role}) is empty; drop the record or the empty turn")
        expected = ROLES[len(turns) % 2]
        if role != expected:
            raise ConfigError(
                f"{where}: roles must alternate user/assistant starting with the user, but this {role!r} turn "
                f"comes where a {expected!r} turn belongs (merge consecutive turns of one role first)"
            )
        turns.append({"role": role, "content": text})
    if not turns:
        raise ConfigError("field `messages` has no user or assistant turn")
    if turns[-1]["role"] != "assistant":
        raise ConfigError(
            "the conversation ends with a user turn that was never answered; it must end with the assistant's "
            "reply (the user's last turn after it is <|endconversation|>): drop the unanswered turn"
        )
    intent = raw.get(intent_field)
    if intent is not None and (not isinstance(intent, str) or not intent.strip()):
        raise ConfigError(f"field `{intent_field}` must be a non-empty string when present")
    user_id = raw.get(user_field)
    record_id = _record_id(raw, id_field, turns)
    known = {id_field or "", user_field, intent_field, "messages", "conversation", *ID_FIELDS}
    return (
        ChatRecord(
            id=record_id,
            turns=tuple(turns),
            intent=intent.strip() if isinstance(intent, str) else None,
            user_id=None if user_id is None else str(user_id),
            extra={k: v for k, v in raw.items() if k not in known},
        ),
        dropped,
    )


def _record_id(raw: dict[str, Any], id_field: str | None, turns: list[dict[str, str]]) -> str:
    for name in (id_field,) if id_field else ID_FIELDS:
        if raw.get(name) is not None:
            return str(raw[name])
    if id_field:
        raise ConfigError(f"field `{id_field}` (the record id) is missing")
    return "sha-" + hashlib.sha256(json.dumps(turns).encode()).hexdigest()[:16]


def iter_jsonl(path: Path) -> Iterator[tuple[int, Any | RecordProblem]]:
    """(line number, decoded object or a problem) for every non-blank line."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as error:
                yield (
                    number,
                    RecordProblem(number, None, f"invalid JSON ({error.msg} at column {error.colno})"),
                )


def read_conversations(
    path: str | Path,
    *,
    id_field: str | None = None,
    user_field: str = "user_id",
    intent_field: str = "intent",
) -> ReadResult:
    """Read a conversation JSONL file: valid records (exact duplicates dropped), plus every skipped record and
    why. A missing or unreadable file raises `ConfigError`."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"conversation file not found: {file} (expected JSONL, one conversation per line)")
    result = ReadResult(records=[], problems=[])
    seen_content: set[str] = set()
    seen_ids: set[str] = set()
    for number, item in iter_jsonl(file):
        if isinstance(item, RecordProblem):
            result.problems.append(item)
            continue
        raw_id = item.get(id_field or "id") if isinstance(item, dict) else None
        try:
            record, dropped = parse_record(
                item, id_field=id_field, user_field=user_field, intent_field=intent_field
            )
        except ConfigError as error:
            result.problems.append(RecordProblem(number, None if raw_id is None else str(raw_id), str(error)))
            continue
        key = record.content_key()
        if key in seen_content:
            result.duplicates += 1
            continue
        if record.id in seen_ids:
            result.problems.append(
                RecordProblem(number, record.id, "duplicate id with different content; ids must be unique")
            )
            continue
        seen_content.add(key)
        seen_ids.add(record.id)
        result.system_messages_dropped += dropped
        result.records.append(record)
    return result


def write_conversations(path: str | Path, records: Iterable[ChatRecord]) -> int:
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with file.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
            count += 1
    return count


SplitBy = Literal["user", "conversation"]


def split_group(record: ChatRecord, by: SplitBy) -> str:
    return record.group if by == "user" else f"conversation:{record.id}"


def in_test_split(group: str, test_fraction: float, seed: int) -> bool:
    """Whether a group belongs to the test split: a stable hash of (seed, group) below `test_fraction`."""
    digest = hashlib.sha256(f"{seed}:{group}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < test_fraction


def grouped_split(
    records: Sequence[ChatRecord], test_fraction: float, *, by: SplitBy = "user", seed: int = 0
) -> tuple[list[ChatRecord], list[ChatRecord]]:
    """(train, test): each group (user, or conversation) entirely on one side."""
    if not 0 <= test_fraction < 1:
        raise ConfigError(f"--test-fraction must be in [0, 1), got {test_fraction}")
    train: list[ChatRecord] = []
    test: list[ChatRecord] = []
    for record in records:
        (test if in_test_split(split_group(record, by), test_fraction, seed) else train).append(record)
    return train, test


def as_records(value: Sequence[ChatRecord] | str | Path | None) -> list[ChatRecord]:
    """Records as given, or read from a conversation file (flip's train.jsonl / test.jsonl); None: none."""
    if value is None:
        return []
    if isinstance(value, str | Path):
        return read_conversations(value).records
    return list(value)
