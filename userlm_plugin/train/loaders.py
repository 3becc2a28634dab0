"""Real chat logs from the Hugging Face Hub, at pinned revisions, as our conversation JSONL (needs network).

    userlm-plugin train download wildchat --out wildchat.jsonl --limit 50000

* `wildchat`: allenai/WildChat-1M, the paper's training data (arXiv 2510.06552 §2: its English conversations,
  split by user = hashed IP + country, which becomes `user_id` here).
* `lmsys`: lmsys/lmsys-chat-1m (gated: accept its terms on the hub and set HF_TOKEN). No user ids: the split
  groups by conversation.

The revisions are the snapshots the public reproduction of the recipe pins (JosephJeesungSuh/dataset-signature-
human-llm, src/curation/sources.py); they could not be re-checked from this offline build, so pass `--revision`
to use another. Rows are streamed (nothing but what `--limit` asks for is read), filtered by language, checked
by the same validation as any conversation file, and written with their problems counted.

When the hub cannot be reached (offline, `HF_HUB_OFFLINE=1`, no network, a gated set without a token) the
command fails at once with one line saying so and what to do instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, UsageError, missing_dependency
from .conversations import parse_record


class HubUnavailableError(UsageError):
    """The Hugging Face Hub cannot be reached for a download."""


@dataclass(frozen=True)
class HubSource:
    repo: str
    revision: str
    language: str
    """Value of the row's `language` field kept by default (the paper trains on English)."""

    def to_row(self, row: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class WildChat(HubSource):
    def to_row(self, row: dict[str, Any]) -> dict[str, Any]:
        ip = row.get("hashed_ip")
        return {
            "id": row["conversation_hash"],
            # the paper's user: hashed IP + country; no IP -> its own group, never merged with strangers
            "user_id": f"{ip}_{row.get('country') or 'unknown'}" if ip else None,
            "messages": [{"role": t.get("role"), "content": t.get("content")} for t in row["conversation"]],
            "source": self.repo,
        }


@dataclass(frozen=True)
class LMSYS(HubSource):
    def to_row(self, row: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": row["conversation_id"],
            "messages": [{"role": t.get("role"), "content": t.get("content")} for t in row["conversation"]],
            "source": self.repo,
        }


SOURCES: dict[str, HubSource] = {
    "wildchat": WildChat("allenai/WildChat-1M", "7d6490e462285cf85d91eabea0f9a954fbddcd1f", "English"),
    "lmsys": LMSYS("lmsys/lmsys-chat-1m", "200748d9d3cddcc9d782887541057aca0b18c5da", "English"),
}


def _offline() -> bool:
    return any(
        os.environ.get(v, "").lower() in ("1", "true", "yes", "on")
        for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def _unavailable(source: HubSource, revision: str, why: str) -> HubUnavailableError:
    return HubUnavailableError(
        f"cannot download {source.repo}@{revision[:10]} from the Hugging Face Hub ({why}); run "
        "`userlm-plugin train download` where the hub is reachable (gated sets also need HF_TOKEN) and copy the "
        "JSONL here, or pass your own conversation file"
    )


def stream_rows(
    name: str, *, revision: str | None = None, language: str | None = None
) -> Iterator[dict[str, Any]]:
    """Rows of a hub source in our conversation shape (not yet validated), filtered by language."""
    if name not in SOURCES:
        raise ConfigError(f"unknown source {name!r}: choose one of {', '.join(SOURCES)}")
    source = SOURCES[name]
    revision = revision or source.revision
    if _offline():
        raise _unavailable(source, revision, "offline: HF_HUB_OFFLINE is set")
    try:
        from datasets import load_dataset
    except ImportError as error:
        raise missing_dependency("datasets", "train", "userlm-plugin train download") from error
    try:
        rows = load_dataset(source.repo, revision=revision, split="train", streaming=True)
        keep = source.language if language is None else language
        for row in rows:
            if keep and row.get("language") != keep:
                continue
            yield source.to_row(row)
    except (OSError, ConnectionError) as error:  # requests/httpx/hub errors are OSError subclasses
        raise _unavailable(
            source, revision, f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"
        ) from error


def download(
    name: str,
    out: str | Path,
    *,
    limit: int | None = None,
    revision: str | None = None,
    language: str | None = None,
) -> dict[str, int]:
    """Write up to `limit` valid conversations of a hub source to `out` (JSONL); returns counts."""
    path = Path(out).expanduser()
    written = invalid = 0
    rows = stream_rows(name, revision=revision, language=language)
    first = next(rows, None)  # reach the hub before creating the output file
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in _chain(first, rows):
            if limit is not None and written >= limit:
                break
            try:
                record, _ = parse_record(row)
            except ConfigError:
                invalid += 1  # e.g. a conversation that ends on an unanswered turn; counted, not written
                continue
            handle.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
            written += 1
    return {"written": written, "invalid": invalid}


def _chain(first: dict[str, Any] | None, rest: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    if first is not None:
        yield first
        yield from rest
