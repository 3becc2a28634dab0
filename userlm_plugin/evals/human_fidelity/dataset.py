"""Human conversations for the fidelity eval, from any source, as Inspect samples (docs/fidelity.md#sources).

* `-T data=<file>.jsonl`: conversations in OpenAI messages format, one per line, optional `intent` and `user_id`
  (WildChat/LMSYS rows with `conversation` instead of `messages` too), read by the same reader as
  `userlm-plugin train flip` (`train/conversations.py`): the same validation, duplicates dropped, bad records
  reported one by one.
* `-T data=<file>.json`: a SimulatorArena annotations file (document creation or math tutoring, told by its
  fields), or `-T source=simulatorarena` to download it at the pinned commit (simulatorarena.py).

A record that cannot be replayed is skipped with its reason (logged, and listed in the task metadata), or fails
the load with `-T on_invalid=fail`; the rest of the run goes on.

One sample per conversation: its input is the real conversation, its metadata the intent, what the person knew
beyond it (`user_background`, appended to the intent for every simulator: docs/agents.md#what-the-simulated-user-knows),
the human's user turns (`turns`, which the `scripted` simulator replays), who wrote it (`user_id`) and the source's
own fields.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessage, ChatMessageAssistant, ChatMessageSystem, ChatMessageUser

from ..._paths import resolve_user_path
from ...errors import ConfigError, UsageError
from ...simulators.background import BACKGROUND_KEY, intent_with_background
from ...train.conversations import ChatRecord, RecordProblem, read_conversations
from . import simulatorarena as arena

logger = logging.getLogger(__name__)

Source = Literal["simulatorarena"]
OnInvalid = Literal["skip", "fail"]

TASK_NAME = "human_fidelity"
"""The task's name in every log, however it was built (`inspect eval`, or `api.evaluate_simulator` from Python):
`userlm-plugin compare --view fidelity` finds the runs by it."""


@dataclass
class HumanData:
    """The conversations of one source, and the records left out with why."""

    records: list[ChatRecord]
    origin: str
    problems: list[RecordProblem] = field(default_factory=list)
    subset: str | None = None
    """`document_creation` / `math_tutoring` for SimulatorArena files, else None."""


def _read_arena(path: Path, origin: str, background: bool) -> HumanData:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise UsageError(f"-T data={origin}: not a readable JSON file ({error})") from error
    if not isinstance(raw, list) or not raw:
        raise UsageError(f"-T data={origin}: a SimulatorArena file holds a non-empty JSON list of records")
    subset = next((s for s in map(arena.subset_of, raw) if s), None)
    if subset is None:
        raise UsageError(
            f"-T data={origin}: no record has SimulatorArena's fields (`user_queries` with `bullet_points` or "
            "`math_expertise`); for conversations in OpenAI messages format use a .jsonl file"
        )
    z_scores = arena.human_z_scores(raw) if subset == "document_creation" else [{}] * len(raw)
    data = HumanData(records=[], origin=origin, subset=subset)
    for index, item in enumerate(raw):
        try:
            data.records.append(arena.arena_record(item, index, subset, background, z_scores[index]))
        except ConfigError as error:
            data.problems.append(RecordProblem(0, f"record {index}", str(error)))
    return data


def read_human_data(
    data: str | Sequence[ChatRecord] | None = None,
    source: Source | None = None,
    subset: arena.Subset = "document_creation",
    background: bool = True,
) -> HumanData:
    """Read the conversations of `data` (a file, or records already read) or `source` (`simulatorarena`),
    validated record by record."""
    if data is not None and not isinstance(data, str) and source is None:
        records = list(data)
        if not all(isinstance(r, ChatRecord) for r in records):
            raise UsageError("human_fidelity: data must be a file path or a list of ChatRecord conversations")
        return HumanData(records=records, origin=f"{len(records)} conversations (in memory)")
    if (data is None) == (source is None):
        raise UsageError(
            "human_fidelity needs exactly one of -T data=<conversations .jsonl or SimulatorArena .json> or "
            "-T source=simulatorarena"
        )
    if source is not None:
        if source != "simulatorarena":
            raise UsageError(
                f"-T source={source!r}: the only source is simulatorarena (or pass -T data=<file>)"
            )
        if subset not in arena.FILES:
            raise UsageError(f"-T subset={subset!r} must be one of: {', '.join(arena.FILES)}")
        path = arena.download(subset)
        return _read_arena(
            path, f"{arena.REPOSITORY}@{arena.COMMIT[:10]}/{arena.FILES[subset].name}", background
        )
    assert data is not None
    if subset != "document_creation":
        raise UsageError(
            f"-T subset={subset} applies to -T source=simulatorarena; a -T data= file's kind is read from its fields"
        )
    path = resolve_user_path(data)
    if not path.is_file():
        raise UsageError(f"-T data={data}: file not found (cwd {Path.cwd()})")
    if path.suffix.lower() == ".json":
        return _read_arena(path, data, background)
    try:
        result = read_conversations(path)
    except ConfigError as error:
        raise UsageError(f"-T data={data}: {error}") from error
    return HumanData(records=result.records, origin=data, problems=result.problems)


def _message(turn: dict[str, str], index: int) -> ChatMessage:
    if turn["role"] == "user":
        return ChatMessageUser(content=turn["content"], metadata={"human": True, "turn": index})
    return ChatMessageAssistant(content=turn["content"])


def record_sample(record: ChatRecord, system_prompt: str | None = None) -> Sample:
    """One conversation -> a sample (input: the real conversation; metadata: intent, human turns, user, source)."""
    messages: list[ChatMessage] = [ChatMessageSystem(content=system_prompt)] if system_prompt else []
    user_index = 0
    for turn in record.turns:
        user_index += turn["role"] == "user"
        messages.append(_message(turn, user_index))
    extra = {k: v for k, v in record.extra.items() if isinstance(v, str | int | float | bool) or v is None}
    if record.extra.get(BACKGROUND_KEY) is not None:  # what this person knew: appended to the intent
        extra[BACKGROUND_KEY] = record.extra[BACKGROUND_KEY]
    return Sample(
        id=record.id,
        input=messages,
        metadata={
            **extra,
            "intent": record.intent,
            "user_id": record.user_id,
            "turns": record.user_turns,
        },
    )


def sample_intent(metadata: dict[str, Any]) -> str:
    """The intent a simulator conditions on for this sample: its `intent` with its `user_background` appended."""
    return intent_with_background(metadata.get("intent"), metadata) or ""


def check_invalid(data: HumanData, on_invalid: OnInvalid) -> None:
    """Skip (with a warning each) or fail on the records that could not be read."""
    if on_invalid not in ("skip", "fail"):
        raise UsageError(f"-T on_invalid={on_invalid!r} must be skip or fail")
    if not data.problems:
        return
    if on_invalid == "fail":
        shown = "; ".join(str(p) for p in data.problems[:3])
        more = f" (and {len(data.problems) - 3} more)" if len(data.problems) > 3 else ""
        raise UsageError(f"-T data={data.origin}: {len(data.problems)} invalid record(s): {shown}{more}")
    for problem in data.problems:
        logger.warning("human_fidelity: skipping %s in %s", problem, data.origin)


def human_dataset(
    data: HumanData, limit: int | None = None, system_prompt: str | None = None, name: str = TASK_NAME
) -> MemoryDataset:
    """The conversations as samples (`limit`: the first N)."""
    if not data.records:
        raise UsageError(
            f"-T data={data.origin}: no valid conversation to replay ({len(data.problems)} skipped)"
        )
    samples = [record_sample(r, system_prompt) for r in data.records[:limit]]
    return MemoryDataset(samples, name=name, location=data.origin)
