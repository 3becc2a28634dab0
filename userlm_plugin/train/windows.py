"""Fit conversations into `max_length` tokens without losing their late turns or their end turn.

Cutting a long conversation at `max_length` keeps its start and silently drops everything after: on
SimulatorArena's ~3k-token document conversations a 512-token cut removed most user turns and every
`<|endconversation|>` turn, so the model never learned when a user stops. Instead a conversation longer than
`max_length` becomes several **windows**, each a conversation of its own that `flip.py` renders exactly as the
runtime would (train = serve holds for each):

* every window starts with the intent (system message); the first holds the conversation's opening turns, every
  later one starts with the assistant reply the user answers next, so no user turn is ever trained without the
  reply it reacts to, and none is trained as if it opened the conversation;
* windows partition the user turns (each is trained once) and the last window ends with the end turn, which
  needs only the final reply before it, so a long final document does not cost the end turn;
* each window is flipped for real, so its every prompt is exactly what the runtime renders for that window.

Windows are chosen greedily from the token positions of the whole conversation's flip (prefix-stable rendering
makes a window's length the sum of its parts). The cost: a user turn in a later window is trained with a
shortened history (the intent, the reply before it and the window's turns), which the `LengthReport` counts.
A window of one reply and one user turn that is still too long (a long document, a pasted file) keeps the END of
that reply, the part the user reacts to: the reply's text is shortened from its start until the window fits, and
counted (`replies_shortened`). Only a user turn that is itself longer than `max_length` is cut (its start kept),
and counted as cut. `overflow="cut"` keeps the old behaviour (cut every long conversation at `max_length`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from .conversations import ChatRecord, RecordProblem
from .flip import FlipError, FlipExample, TemplateError, flip_record, turn_frame
from .progress import progress_bar

Overflow = Literal["window", "cut"]


@dataclass
class LengthReport:
    """What fitting into `max_length` did to a set of conversations (printed by `train sft`, kept in its record)."""

    max_length: int
    overflow: Overflow = "window"
    conversations: int = 0
    longer: int = 0
    """Conversations longer than `max_length` as one sequence."""
    sequences: int = 0
    user_turns: int = 0
    user_turns_cut: int = 0
    """User turns whose tokens were cut, in part or whole."""
    end_turns: int = 0
    end_turns_cut: int = 0
    replies_shortened: int = 0
    """Assistant replies too long for any window, kept from their end (the part the user answers)."""
    shortened_history: int = 0
    """Turns (user or end) trained in a later window: with the intent, the reply before and the window's turns as
    their history."""
    loss_tokens: int = 0
    loss_tokens_cut: int = 0
    longest: int = 0
    """Tokens of the longest conversation as one sequence."""

    def line(self) -> str:
        """One sentence for the terminal."""
        if not self.longer:
            return (
                f"max_length {self.max_length}: every conversation fits (longest {self.longest:,} tokens); "
                "nothing cut"
            )
        how = (
            f"split into windows ({self.sequences} sequences; {self.shortened_history} turn(s) trained with a "
            f"shortened history, {self.replies_shortened} long replies kept from their end)"
            if self.overflow == "window"
            else "cut at max_length (their start kept)"
        )
        return (
            f"max_length {self.max_length}: {self.longer} of {self.conversations} conversations are longer "
            f"(longest {self.longest:,} tokens), {how}; cut: {self.user_turns_cut} of {self.user_turns} user "
            f"turns, {self.end_turns_cut} of {self.end_turns} end turns"
            + (" (raise --max-length to keep them)" if self.user_turns_cut or self.end_turns_cut else "")
        )

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class FittedExamples:
    examples: list[FlipExample] = field(default_factory=list)
    problems: list[RecordProblem] = field(default_factory=list)
    report: LengthReport | None = None


def cut_example(example: FlipExample, max_length: int) -> FlipExample:
    """`example` cut to its first `max_length` tokens; spans past the cut are dropped, a span across it shortened."""
    if len(example.input_ids) <= max_length:
        return example
    spans = tuple(
        replace(s, end=min(s.end, max_length), content_start=min(s.content_start, max_length))
        for s in example.spans
        if s.start < max_length
    )
    return replace(example, input_ids=example.input_ids[:max_length], spans=spans)


def window_bounds(example: FlipExample, max_length: int) -> list[tuple[int, int]]:
    """(first, last) indices into `example.spans` (the user turns, then the end turn) of each window over a
    whole-conversation flip (see the module docstring)."""
    units = example.spans
    if not units:
        return []
    head = units[0].start  # the intent (and a header): every window repeats it

    def length(first: int, end: int) -> int:
        if first == 0:
            return units[end].end
        return head + units[end].end - units[first - 1].end  # from the reply before unit `first`

    bounds: list[tuple[int, int]] = []
    first = 0
    while first < len(units):
        end = first
        while end + 1 < len(units) and length(first, end + 1) <= max_length:
            end += 1
        bounds.append((first, end))
        first = end + 1
    return bounds


def window_record(record: ChatRecord, first: int, end: int, with_end_turn: bool) -> ChatRecord:
    """The turns of units `first`..`end`: from the reply before user turn `first` (none for the first window)
    to user turn `end`, or, for the window with the end turn, to the conversation's last reply."""
    start = 0 if first == 0 else 2 * first - 1
    stop = len(record.turns) if with_end_turn else 2 * end + 1
    return replace(record, turns=tuple(record.turns[start:stop]))


def fit_examples(
    tokenizer: Any,
    records: Iterable[ChatRecord],
    max_length: int,
    *,
    overflow: Overflow = "window",
    with_intent: bool = True,
    end_turn: bool = True,
    progress: str | None = None,
) -> FittedExamples:
    """Flip `records` into sequences of at most `max_length` tokens, with the report of what that took.

    A record that cannot be flipped is a problem (reported, skipped); a template that cannot frame a user turn
    raises `TemplateError` once."""
    turn_frame(tokenizer)
    records = list(records)
    fitted = FittedExamples(report=LengthReport(max_length=max_length, overflow=overflow))
    report = fitted.report
    assert report is not None
    for record in progress_bar(records, progress):
        try:
            whole = flip_record(tokenizer, record, with_intent=with_intent, end_turn=end_turn)
            pieces = _fit(tokenizer, record, whole, max_length, overflow, with_intent, end_turn, report)
        except TemplateError:
            raise
        except FlipError as error:
            fitted.problems.append(RecordProblem(0, record.id, str(error)))
            continue
        _count(report, whole, pieces, max_length)
        cut = (cut_example(p, max_length) for p in pieces)
        fitted.examples += [p for p in cut if p.spans]  # a piece whose every turn was cut teaches nothing
    return fitted


def _fit(
    tokenizer: Any,
    record: ChatRecord,
    whole: FlipExample,
    max_length: int,
    overflow: Overflow,
    with_intent: bool,
    end_turn: bool,
    report: LengthReport,
) -> list[FlipExample]:
    if len(whole.input_ids) <= max_length or overflow == "cut":
        return [whole]
    bounds = window_bounds(whole, max_length)
    if len(bounds) <= 1:
        return [whole]
    has_end = whole.spans[-1].is_end
    pieces = []
    for k, (first, end) in enumerate(bounds):
        with_end_turn = has_end and end == len(whole.spans) - 1
        window = window_record(record, first, end, with_end_turn)
        example = flip_record(tokenizer, window, with_intent=with_intent, end_turn=with_end_turn)
        if len(example.input_ids) > max_length and first == end and first > 0:
            example = _shorten_reply(
                tokenizer, window, example, max_length, with_intent, with_end_turn, report
            )
        pieces.append(replace(example, id=f"{record.id}#w{k + 1}"))
    return pieces


def _shorten_reply(
    tokenizer: Any,
    window: ChatRecord,
    example: FlipExample,
    max_length: int,
    with_intent: bool,
    end_turn: bool,
    report: LengthReport,
) -> FlipExample:
    """The window with its opening reply shortened from the start until it fits (re-flipped, so still exactly what
    the runtime renders for that text); unchanged when even an empty reply would not fit (the user turn itself
    is too long: it is cut later)."""
    reply = window.turns[0]["content"]
    ids = tokenizer.encode(reply, add_special_tokens=False)
    excess = len(example.input_ids) - max_length
    for margin in (4, 16, 64):  # decoding a token slice can re-encode a little longer: retry with more room
        if excess + margin >= len(ids):
            break
        text = tokenizer.decode(ids[excess + margin :]).lstrip()
        turns = ({"role": "assistant", "content": text}, *window.turns[1:])
        shorter = flip_record(
            tokenizer, replace(window, turns=turns), with_intent=with_intent, end_turn=end_turn
        )
        if len(shorter.input_ids) <= max_length:
            report.replies_shortened += 1
            return shorter
    return example


def _count(report: LengthReport, whole: FlipExample, pieces: list[FlipExample], max_length: int) -> None:
    """Add one conversation to the report. Each user turn is trained in exactly one piece (windows overlap only in
    context), so a turn survives when its span ends within its piece's first `max_length` tokens."""
    report.conversations += 1
    report.longest = max(report.longest, len(whole.input_ids))
    report.longer += len(whole.input_ids) > max_length
    report.sequences += len(pieces)
    report.user_turns += sum(not s.is_end for s in whole.spans)
    report.end_turns += sum(s.is_end for s in whole.spans)
    report.loss_tokens += whole.loss_tokens
    for k, piece in enumerate(pieces):
        for span in piece.spans:
            survived = span.end <= max_length
            report.loss_tokens_cut += 0 if survived else span.end - max(span.start, max_length)
            if span.is_end:
                report.end_turns_cut += not survived
            else:
                report.user_turns_cut += not survived
            report.shortened_history += survived and k > 0
