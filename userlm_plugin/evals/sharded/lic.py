"""Lost in Conversation's sharded instructions (HF dataset `microsoft/lost_in_conversation`, file
`lost_in_conversation.json`, CDLA-Permissive-2.0; schema in docs/lic.md).

Loaded with huggingface_hub at a pinned revision (cached by the hub client in HF_HOME), or from a local copy
(`-T data=path.json`). Every record is validated; a malformed one is reported with its task_id and skipped
(`on_invalid="skip"`, logged as a warning and counted in the task metadata) or fails the load
(`on_invalid="fail"`). It is never scored with missing tests. The dataset is not vendored in this repo.

Shards are ordered by `shard_id`; LiC uses the file's order, and in the published file shard 1 (the high-level
ask) comes first either way. Mistakes in what the user passed (`-T data/sources/on_invalid`, an unreachable hub)
raise `UsageError` while the task is built, before any model loads.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..._paths import resolve_user_path
from ...errors import UsageError, missing_dependency
from ...simulators.base import Shard

logger = logging.getLogger(__name__)

LIC_REPO = "microsoft/lost_in_conversation"
LIC_FILE = "lost_in_conversation.json"
LIC_REVISION = "b6b71f418423c61cef0f439c610a4a655cc0e2d5"
"""A dataset revision a public reproduction used. Pinned so that runs compare; override with `-T revision=...`."""

CODE_SOURCES = ("humaneval", "lcb_easy", "lcb_medium")
SOURCE_ALIASES = {"lcb": ("lcb_easy", "lcb_medium"), "livecodebench": ("lcb_easy", "lcb_medium")}

TaskKind = Literal["code", "math"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore")

    task_id: str = Field(min_length=1)
    task: str
    shards: list[Shard] = Field(min_length=1)

    @field_validator("shards")
    @classmethod
    def _shards_ok(cls, shards: list[Shard]) -> list[Shard]:
        ids = [s.shard_id for s in shards]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate shard_id in {ids}")
        if 1 not in ids:
            raise ValueError(f"no shard_id 1 (the high-level ask) in {ids}")
        if any(not s.shard.strip() for s in shards):
            raise ValueError("empty shard text")
        return sorted(shards, key=lambda s: s.shard_id)


class FunctionalTest(BaseModel):
    """A call-based test: newline-separated JSON arguments and the JSON of the expected return value."""

    model_config = ConfigDict(extra="ignore")
    input: str
    output: str
    testtype: str = "functional"


class CodeRecord(_Record):
    """A sharded code instruction (HumanEval or LiveCodeBench call-based)."""

    task: Literal["code"]
    source: Literal["humaneval", "lcb_easy", "lcb_medium"]
    metadata: dict[str, Any]
    public_test_cases: list[FunctionalTest] = Field(min_length=1)
    private_test_cases: str | None = None
    prompt: str | None = None
    test: str | None = None
    question_content: str | None = None
    starter_code: str | None = None

    @field_validator("public_test_cases", mode="before")
    @classmethod
    def _decode_public(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as ex:
                raise ValueError(f"public_test_cases is not valid JSON: {ex}") from ex
        return value

    @field_validator("private_test_cases", mode="before")
    @classmethod
    def _private_as_text(cls, value: Any) -> Any:
        if isinstance(value, list):
            return json.dumps(value)
        return value or None

    @model_validator(mode="after")
    def _source_fields(self) -> CodeRecord:
        name = self.metadata.get("func_name")
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"metadata.func_name must be a Python identifier, got {name!r}")
        if self.source == "humaneval" and not (self.prompt or "").strip():
            raise ValueError("a humaneval record needs 'prompt' (signature + docstring)")
        if self.source != "humaneval" and not (self.question_content or "").strip():
            raise ValueError(f"a {self.source} record needs 'question_content'")
        if any(t.testtype != "functional" for t in self.public_test_cases):
            raise ValueError("only call-based ('functional') tests are supported")
        return self

    @property
    def func_name(self) -> str:
        return self.metadata["func_name"]


class MathRecord(_Record):
    """A sharded GSM8K problem."""

    task: Literal["math"]
    question: str = Field(min_length=1)
    answer: str

    @field_validator("answer")
    @classmethod
    def _has_gold(cls, value: str) -> str:
        if "####" not in value or not value.split("####")[-1].strip():
            raise ValueError("answer must end with '#### <number>' (the GSM8K gold)")
        return value


class RecordError(BaseModel):
    """A record that failed validation."""

    index: int
    task_id: str | None
    message: str

    def __str__(self) -> str:
        return f"record #{self.index} (task_id={self.task_id!r}): {self.message}"


class LiCData(BaseModel):
    """Validated records of one task kind plus the ones that were rejected."""

    records: list[CodeRecord] | list[MathRecord]
    errors: list[RecordError] = Field(default_factory=list)
    origin: str


def download_lic(revision: str = LIC_REVISION, task: TaskKind = "code") -> Path:
    """The dataset file from the HF hub at `revision` (cached by huggingface_hub)."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as ex:  # pragma: no cover - huggingface_hub is a dependency of the data extra
        raise missing_dependency("huggingface_hub", "data", "Loading Lost in Conversation") from ex
    try:
        return Path(hf_hub_download(LIC_REPO, LIC_FILE, repo_type="dataset", revision=revision))
    except Exception as ex:  # noqa: BLE001 - network, auth and offline errors all get the same fix
        offline = " or use the offline HumanEval data with -T dataset=humaneval" if task == "code" else ""
        raise UsageError(
            f"Could not get {LIC_FILE} from the HF dataset {LIC_REPO} at revision {revision} "
            f"({type(ex).__name__}: {str(ex).splitlines()[0] if str(ex) else 'no detail'}). "
            f"Download it once and pass -T data=<path to lost_in_conversation.json>{offline}."
        ) from ex


def read_records(path: Path) -> list[Any]:
    """The raw JSON list of records in a LiC file (a relative path is the shell's, see `resolve_user_path`)."""
    path = resolve_user_path(path)
    if not path.is_file():
        raise UsageError(f"-T data={path}: no such file (expected lost_in_conversation.json)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as ex:
        raise UsageError(f"-T data={path}: not valid JSON ({ex})") from ex
    if not isinstance(raw, list):
        raise UsageError(f"-T data={path}: expected a JSON list of records, got {type(raw).__name__}")
    return raw


def expand_sources(sources: str | list[str] | None) -> set[str] | None:
    """`-T sources=humaneval,lcb` arrives as a list (Inspect splits on commas) or a str; `lcb` means both
    LiveCodeBench levels."""
    if sources is None:
        return None
    items = sources.split(",") if isinstance(sources, str) else list(sources)
    wanted: set[str] = set()
    for item in (str(i).strip().lower() for i in items):
        if not item:
            continue
        if item in SOURCE_ALIASES:
            wanted.update(SOURCE_ALIASES[item])
        elif item in CODE_SOURCES:
            wanted.add(item)
        else:
            raise UsageError(
                f"-T sources: unknown source {item!r}; use any of {', '.join([*CODE_SOURCES, 'lcb'])}"
            )
    return wanted


def load_lic(
    task: TaskKind,
    data: str | Path | None = None,
    revision: str = LIC_REVISION,
    sources: str | list[str] | None = None,
    on_invalid: Literal["skip", "fail"] = "skip",
) -> LiCData:
    """Validated LiC records of one task kind (`code` or `math`), in file order.

    Args:
        task: Which records to keep (the file holds six task kinds).
        data: A local copy of the file; None downloads it from the hub at `revision`.
        revision: Dataset revision to download.
        sources: Code only: keep these sources (`humaneval`, `lcb_easy`, `lcb_medium`, `lcb`).
        on_invalid: `skip` malformed records (each is logged with its task_id) or `fail` the load.
    """
    if on_invalid not in ("skip", "fail"):
        raise UsageError(f"-T on_invalid must be skip or fail, got {on_invalid!r}")
    if sources is not None and task != "code":
        raise UsageError("-T sources applies to the coding eval only")
    path = Path(data) if data is not None else download_lic(revision, task)
    origin = str(path) if data is not None else f"hf://datasets/{LIC_REPO}@{revision}/{LIC_FILE}"
    model = CodeRecord if task == "code" else MathRecord
    wanted = expand_sources(sources) if task == "code" else None
    records: list[Any] = []
    errors: list[RecordError] = []
    for index, raw in enumerate(read_records(path)):
        task_id = raw.get("task_id") if isinstance(raw, dict) else None
        if not isinstance(raw, dict):
            errors.append(RecordError(index=index, task_id=None, message="not a JSON object"))
            continue
        if raw.get("task") != task:
            continue
        try:
            record = model.model_validate(raw)
        except ValidationError as ex:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}" for e in ex.errors()
            )
            errors.append(RecordError(index=index, task_id=task_id, message=problems))
            continue
        if wanted is not None and record.source not in wanted:
            continue
        records.append(record)
    if errors:
        if on_invalid == "fail":
            raise UsageError(
                f"{len(errors)} malformed {task} record(s) in {origin}:\n" + "\n".join(map(str, errors))
            )
        for error in errors:
            logger.warning("Lost in Conversation: skipping malformed %s", error)
    seen: set[str] = set()
    for record in records:
        if record.task_id in seen:
            raise UsageError(f"duplicate task_id {record.task_id!r} in {origin}")
        seen.add(record.task_id)
    return LiCData(records=records, errors=errors, origin=origin)
