"""A high-level intent for every conversation, written by any Inspect model (arXiv 2510.06552 §2: GPT-4o wrote
them few-shot; the goal, not the details, always starting "You are a user chatting with an assistant language
model to").

    userlm-plugin train intents conversations.jsonl --model litellm/gpt-4o --out with_intents.jsonl

The prompt is data (prompts/intent.yaml, or `--prompt my.yaml` in the same shape). The output file is also the
cache: each finished conversation is appended as one line and flushed to disk, and a rerun skips every id already
in it, so a crash or Ctrl-C loses at most the calls in flight. A line left half-written by a crash is cut off on
the next run. A reply that is not a usable intent (wrong opening, empty) is retried, then reported and left out
(the next run tries it again); conversations that already carry an intent are copied through without a call.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from ..simulators._common import USERLM_INTENT_PREFIX, clean_draft, render
from .conversations import ChatRecord, RecordProblem


@dataclass(frozen=True)
class IntentPrompt:
    """The few-shot intent prompt (prompts/intent.yaml)."""

    version: str
    opening: str
    instructions: str
    examples: list[dict[str, Any]]
    conversation_format: str
    max_turn_chars: int
    request: str

    def format_conversation(self, turns: Any) -> str:
        lines = []
        for turn in turns:
            content = turn["content"]
            if len(content) > self.max_turn_chars:  # long pastes carry no more intent; keep the prompt small
                content = content[: self.max_turn_chars] + " [...]"
            lines.append(render(self.conversation_format, role=turn["role"], content=content))
        return "\n".join(lines)

    def build(self, turns: Any) -> str:
        parts = [render(self.instructions, opening=self.opening)]
        for n, example in enumerate(self.examples, start=1):
            parts.append(
                f"Example {n}:\n"
                + render(self.request, conversation=self.format_conversation(example["conversation"]))
                + " "
                + example["intent"]
            )
        parts.append(render(self.request, conversation=self.format_conversation(turns)))
        return "\n\n".join(parts)


def load_intent_prompt(path: str | Path | None = None) -> IntentPrompt:
    """The packaged prompt, or a YAML file of the same shape."""
    if path is None:
        text = resources.files(__package__).joinpath("prompts/intent.yaml").read_text("utf-8")
        where = "prompts/intent.yaml"
    else:
        file = Path(path).expanduser()
        if not file.is_file():
            raise ConfigError(
                f"--prompt {file}: no such file (a YAML file shaped like train/prompts/intent.yaml)"
            )
        text, where = file.read_text("utf-8"), str(file)
    data = yaml.safe_load(text)
    required = ("version", "instructions", "examples", "request")
    if not isinstance(data, dict) or any(key not in data for key in required):
        raise ConfigError(f"{where}: an intent prompt needs the keys {', '.join(required)}")
    return IntentPrompt(
        version=str(data["version"]),
        opening=str(data.get("opening", USERLM_INTENT_PREFIX)),
        instructions=str(data["instructions"]),
        examples=list(data["examples"]),
        conversation_format=str(data.get("conversation_format", "[{role}]: {content}")),
        max_turn_chars=int(data.get("max_turn_chars", 2000)),
        request=str(data["request"]),
    )


class IntentFormatError(ConfigError):
    """The model's reply is not a usable intent."""


def clean_intent(reply: str, opening: str = USERLM_INTENT_PREFIX) -> str:
    """The intent in a model's reply: first non-empty line, a leading "Intent:" label and quotes removed; it must
    start with `opening` (case-insensitive, rewritten in its exact form) and say something after it."""
    lines = [line.strip() for line in reply.strip().splitlines() if line.strip()]
    text = lines[0] if lines else ""
    for label in ("intent summary:", "intent:"):
        if text.lower().startswith(label):
            text = text[len(label) :].strip()
    text = clean_draft(text)
    if not text.lower().startswith(opening.lower()):
        raise IntentFormatError(f"the reply does not start with {opening!r}: {text[:80]!r}")
    goal = text[len(opening) :].strip()
    if len(goal.rstrip(".").split()) < 2:
        raise IntentFormatError(f"the reply states no goal after the opening: {text!r}")
    return f"{opening} {goal.rstrip('.')}."


@dataclass
class IntentRun:
    written: int = 0
    """Intents written by the model in this run."""
    copied: int = 0
    """Conversations that already had an intent (copied through)."""
    cached: int = 0
    """Conversations skipped because the output file already had them."""
    problems: list[RecordProblem] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "written": self.written,
            "copied": self.copied,
            "cached": self.cached,
            "failed": len(self.problems),
        }


def done_ids(out: Path) -> set[str]:
    """Ids already in the output file. A last line cut short by a crash is truncated away first."""
    if not out.is_file():
        return set()
    data = out.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with out.open("r+b") as handle:
            handle.truncate(cut)
        data = data[:cut]
    ids: set[str] = set()
    for line in data.decode("utf-8").splitlines():
        try:
            row = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            continue  # not ours to fix: such a line is never skipped as done, so its conversation is redone
        if isinstance(row, dict) and row.get("id") is not None:
            ids.add(str(row["id"]))
    return ids


def _append(handle: Any, record: ChatRecord) -> None:
    handle.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
    handle.flush()
    os.fsync(handle.fileno())


async def write_intents(
    records: list[ChatRecord],
    model: Any,
    out: str | Path,
    *,
    prompt: IntentPrompt | None = None,
    max_connections: int = 8,
    max_retries: int = 2,
    temperature: float = 0.0,
    progress: bool = False,
) -> IntentRun:
    """Give every record an intent from `model` (an Inspect model string or `Model`) and append it to `out`."""
    from inspect_ai.model import GenerateConfig, get_model

    prompt = prompt or load_intent_prompt()
    llm = get_model(model) if isinstance(model, str) else model
    out_path = Path(out).expanduser()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    run = IntentRun()
    done = done_ids(out_path)
    todo = [r for r in records if r.id not in done]
    run.cached = len(records) - len(todo)
    config = GenerateConfig(temperature=temperature, max_tokens=200)
    source = {"intent_model": str(llm), "intent_prompt_version": prompt.version}
    semaphore = asyncio.Semaphore(max_connections)

    with out_path.open("a", encoding="utf-8") as handle, _Progress(len(todo), progress) as bar:

        async def one(record: ChatRecord) -> None:
            if record.intent:
                _append(handle, record)
                run.copied += 1
                bar.advance()
                return
            error: Exception | None = None
            async with semaphore:
                for _ in range(max_retries + 1):
                    try:
                        output = await llm.generate(prompt.build(record.turns), config=config)
                        intent = clean_intent(output.completion, prompt.opening)
                    except IntentFormatError as bad:
                        error = bad
                        continue
                    except Exception as failed:  # a provider error: report this record, keep the others going
                        error = failed
                        break
                    extra = {**record.extra, **source}
                    _append(handle, ChatRecord(record.id, record.turns, intent, record.user_id, extra))
                    run.written += 1
                    bar.advance()
                    return
            run.problems.append(RecordProblem(0, record.id, f"no intent: {error}"))
            bar.advance()

        await asyncio.gather(*(one(record) for record in todo))
    return run


class _Progress:
    """A rich progress bar on the terminal (off in tests and when not asked for)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled = total, enabled
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.progress import Progress

            self._progress = Progress()
            self._progress.__enter__()
            self._task = self._progress.add_task("intents", total=self.total)
        return self

    def advance(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
