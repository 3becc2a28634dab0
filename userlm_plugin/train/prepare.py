"""The `train flip` step as a function: read, validate, split, and (with a model) check every conversation against
what `userlm/` renders for that model.

With `model`, the base model's tokenizer is prepared exactly as `train sft` prepares it (the `<|endconversation|>`
token, the chat template: tokens.py), every conversation of BOTH splits is flipped (flip.py), and one that cannot
be flipped is left out of the split files and listed in `flip_report.json`, so the counts printed are the counts
written and `sft` trains on exactly the training file. A template that cannot frame a user turn at all is one
error naming `--chat-template`, and nothing is written. `preview.txt` shows the first examples with their
loss-carrying tokens marked.

    run = flip_conversations("conversations.jsonl", "data/split", model=".cache/smollm2-135m-instruct")
    print(run.line())
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .conversations import (
    ChatRecord,
    RecordProblem,
    grouped_split,
    read_conversations,
    write_conversations,
)

SPLIT_FILES = ("train.jsonl", "test.jsonl")
REPORT_FILE = "flip_report.json"
PREVIEW_FILE = "preview.txt"


@dataclass
class FlipRun:
    out: Path
    train: list[ChatRecord]
    test: list[ChatRecord]
    split_by: str
    read_problems: list[RecordProblem] = field(default_factory=list)
    """Records of the input file that are not valid conversations (skipped while reading)."""
    unflippable: list[RecordProblem] = field(default_factory=list)
    """Valid conversations the model's template cannot flip (left out of both splits)."""
    without_intent: int = 0
    model: str | None = None
    chat_template_source: str | None = None
    tokens: dict[str, Any] = field(default_factory=dict)
    preview: Path | None = None
    report: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """The one summary sentence `train flip` prints."""
        head = f"train {len(self.train)} / test {len(self.test)} conversations ({self.split_by}-grouped) -> {self.out}"
        if self.model is None:
            return head + " (not checked against a model's template: pass --model to check and preview)"
        flips = (
            f"{len(self.unflippable)} that cannot be flipped left out (see {REPORT_FILE})"
            if self.unflippable
            else "every one flips"
        )
        tokens = self.tokens
        return (
            f"{head}; checked against {self.model}'s rendering (chat template: {self.chat_template_source}): "
            f"{flips}; {tokens.get('tokens', 0):,} tokens, {tokens.get('loss_tokens', 0):,} on user turns, longest "
            f"{tokens.get('max_tokens', 0):,} (median {tokens.get('median_tokens', 0):,}); preview: {self.preview}"
        )


def flip_conversations(
    data: str | Path | Sequence[ChatRecord],
    out: str | Path,
    *,
    model: str | None = None,
    chat_template: str | None = None,
    test_fraction: float = 0.05,
    split_by: Literal["user", "conversation"] = "user",
    seed: int = 0,
    id_field: str | None = None,
    user_field: str = "user_id",
    revision: str | None = None,
    progress: bool = True,
) -> FlipRun:
    """Split `data` (a conversation file or records) into `out/train.jsonl` and `out/test.jsonl`, checked against
    `model`'s rendering when given (see the module docstring). Raises `ConfigError` (`TemplateError` for the
    template) before writing anything."""
    out = Path(out).expanduser()
    if isinstance(data, str | Path):
        read = read_conversations(data, id_field=id_field, user_field=user_field)
        records, read_problems = read.records, list(read.problems)
        summary = read.summary()
    else:
        records, read_problems, summary = list(data), [], {"records": len(data)}
    run = FlipRun(out=out, train=[], test=[], split_by=split_by, read_problems=read_problems)
    run.without_intent = sum(1 for r in records if not r.intent)
    if model is not None:
        records = _check_with_model(run, records, model, chat_template, revision, progress)
    run.train, run.test = grouped_split(records, test_fraction, by=split_by, seed=seed)
    run.report = {
        **summary,
        "without_intent": run.without_intent,
        "train": len(run.train),
        "test": len(run.test),
        "split_by": split_by,
        "problems": [str(p) for p in read_problems],
        **(
            {
                "model": model,
                "chat_template": run.chat_template_source,
                "tokens": run.tokens,
                "unflippable": [str(p) for p in run.unflippable],
            }
            if model is not None
            else {}
        ),
    }
    out.mkdir(parents=True, exist_ok=True)
    write_conversations(out / SPLIT_FILES[0], run.train)
    write_conversations(out / SPLIT_FILES[1], run.test)
    (out / REPORT_FILE).write_text(json.dumps(run.report, indent=2) + "\n", encoding="utf-8")
    return run


def _check_with_model(
    run: FlipRun,
    records: list[ChatRecord],
    model: str,
    chat_template: str | None,
    revision: str | None,
    progress: bool,
) -> list[ChatRecord]:
    """Flip every record with the model's prepared tokenizer; keep the flippable ones, note the rest."""
    from .flip import flip_records, show_loss_tokens
    from .sft import load_base_tokenizer
    from .tokens import prepare_tokenizer

    tokenizer = load_base_tokenizer(model, revision)
    prepare_tokenizer(tokenizer, chat_template)
    run.model = model
    run.chat_template_source = getattr(tokenizer, "_userlm_template_source", None)
    # a conversation without an intent yet (`train intents` comes next) is checked without one
    with_intent = [r for r in records if r.intent]
    without = [r for r in records if not r.intent]
    label = "flip" if progress else None
    examples, problems = flip_records(tokenizer, with_intent, progress=label)
    if without:
        more, more_problems = flip_records(tokenizer, without, with_intent=False, progress=label)
        examples, problems = examples + more, problems + more_problems
    run.unflippable = problems
    bad = {p.id for p in problems}
    kept = [r for r in records if r.id not in bad]
    lengths = sorted(len(e.input_ids) for e in examples)
    run.tokens = {
        "examples": len(examples),
        "tokens": sum(lengths),
        "loss_tokens": sum(e.loss_tokens for e in examples),
        "max_tokens": lengths[-1] if lengths else 0,
        "median_tokens": int(statistics.median(lengths)) if lengths else 0,
    }
    if examples:
        preview = "\n\n".join(show_loss_tokens(tokenizer, e) for e in examples[:3])
        run.out.mkdir(parents=True, exist_ok=True)
        (run.out / PREVIEW_FILE).write_text(
            f"Loss-carrying tokens are inside ⟦ ⟧ (chat template: {run.chat_template_source}).\n\n"
            + preview
            + "\n",
            "utf-8",
        )
        run.preview = run.out / PREVIEW_FILE
    return kept
