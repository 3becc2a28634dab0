"""Dialogue flipping: a real conversation -> one training sequence whose loss falls on the user's turns only.

The paper (arXiv 2510.06552 §2) trains the model to write the USER's turns given the intent (system message) and
the conversation so far, with the real roles (nothing is swapped), and to write `<|endconversation|>` as the user's
turn after the last assistant reply. A conversation with K user turns yields K+1 targets; we put all of them in
one sequence (one forward pass, same loss as K+1 separate samples, as the public reproduction does).

What carries loss, exactly: for each user turn, the tokens the model generates at inference after the runtime's
prompt: the template's lead-in inside the turn (UserLM: the `\\n` after the header), the turn's text, and the
end-of-turn token (`<|eot_id|>`); for the final turn, lead-in + `<|endconversation|>` + end-of-turn. Intent,
headers and assistant turns are context (label -100).

Train = serve, token for token: every user turn's prompt is rendered by the `userlm/` runtime's own
`runtime.template.render_prompt_ids` (the function `userlm/` calls at inference), and the training sequence is
checked to start with that prompt, turn by turn. A template or tokenizer whose rendering of a longer conversation
does not extend the shorter one (not prefix-stable) fails the record with the turn and token where they differ,
instead of training on text the runtime never shows the model.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..runtime.template import UserLMInput, render_prompt_ids, stop_token_ids
from ..turns import END_CONVERSATION
from .conversations import ChatRecord, RecordProblem
from .progress import progress_bar

IGNORE = -100
"""The label of a token that carries no loss (PyTorch's cross-entropy ignore index)."""
_PROBE_TEXT = "Qzxv probe"


class FlipError(ConfigError):
    """A conversation cannot become a training sequence (the message says which turn and why)."""


class TemplateError(FlipError):
    """The chat template itself cannot train or score a User LM: no conversation can be flipped with it, so this is
    one error for the run (naming `--chat-template`), never one problem per record."""


TEMPLATE_HINT = (
    "pass --chat-template FILE with a template that writes each message once, unchanged, and closes every user "
    "turn with an end-of-turn token, or --chat-template userlm for UserLM-8b's (Llama-3 vocabularies)"
)


def prompt_ids(tokenizer: Any, intent: str | None, turns: Sequence[dict[str, str]]) -> list[int]:
    """The token ids the `userlm/` runtime gives the model to write the next user turn.

    No intent (the paper's no-intent condition) renders an EMPTY system message: the same template and headers,
    only the intent's text removed (a template cannot render the first turn's prompt from no message at all)."""
    return render_prompt_ids(tokenizer, UserLMInput(intent=intent or "", turns=list(turns)))[1]


@dataclass(frozen=True)
class TurnFrame:
    """What the template puts around a user turn's text inside the part the model generates."""

    lead: tuple[int, ...]
    """Before the text (UserLM: the `\\n` after `<|end_header_id|>`; ChatML: nothing, the header ends in `\\n`): the
    whitespace the first content position comes after (docs/termination.md)."""
    close: tuple[int, ...]
    """After the text, up to and including the end-of-turn token (UserLM: `<|eot_id|>`; ChatML: `<|im_end|>`)."""
    stop_ids: frozenset[int]
    """The ids a user turn may end on: the model's stop tokens, plus the template's end-of-turn token."""
    end_of_turn: int
    """The token that closes a user turn (the last of `close`)."""
    end_of_turn_is_stop: bool
    """Whether the model already stops on `end_of_turn` (its eos ids say so). When not (a base model whose eos is
    `<|endoftext|>` under a ChatML template), `train sft` adds it to the trained model's generation config."""


def turn_frame(tokenizer: Any) -> TurnFrame:
    """Read the lead-in and close of a user turn off the tokenizer's template (cached per template).

    Renders a probe conversation's next-user-turn prompt, then the same conversation with an empty and with a
    non-empty user turn appended: their common start is the lead-in; the close runs to the first stop token, or,
    when the model's stop tokens do not close the turn, to the first special token after the text (the template's
    own end-of-turn, e.g. ChatML's `<|im_end|>` under a base model whose eos is `<|endoftext|>`).

    Raises `TemplateError` (naming `--chat-template`) when the template cannot frame a user turn at all."""
    cached = getattr(tokenizer, "_userlm_turn_frame", None)
    if cached is not None and cached[0] == tokenizer.chat_template:
        return cached[1]
    stops = frozenset(stop_token_ids(tokenizer, []))
    base = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    try:
        prompt = prompt_ids(tokenizer, "I", base)
        tails = []
        for text in ("", _PROBE_TEXT):
            rendered = prompt_ids(tokenizer, "I", [*base, {"role": "user", "content": text}])
            if rendered[: len(prompt)] != prompt:
                raise TemplateError(
                    "it is not prefix-stable: a longer conversation does not extend its prompt"
                )
            tails.append(rendered[len(prompt) :])
    except TemplateError as error:
        raise _template_error(tokenizer, str(error)) from None
    except ConfigError as error:  # the runtime's own checks (a template that drops or rewrites messages)
        raise _template_error(tokenizer, str(error).split(";")[0]) from error
    empty, full = tails
    lead = 0
    while lead < min(len(empty), len(full)) and empty[lead] == full[lead]:
        lead += 1
    stop_at = next((k for k in range(lead, len(empty)) if empty[k] in stops), None)
    is_stop = stop_at is not None
    if stop_at is None:
        special = set(getattr(tokenizer, "all_special_ids", []) or [])
        stop_at = next((k for k in range(lead, len(empty)) if empty[k] in special), None)
    if stop_at is None:
        names = [tokenizer.convert_ids_to_tokens(i) for i in sorted(stops)]
        raise _template_error(
            tokenizer,
            "no end-of-turn token closes a user turn in its rendering (neither one of the model's stop tokens "
            f"{names} nor another special token)",
        )
    frame = TurnFrame(
        lead=tuple(empty[:lead]),
        close=tuple(empty[lead : stop_at + 1]),
        stop_ids=stops | {empty[stop_at]},
        end_of_turn=empty[stop_at],
        end_of_turn_is_stop=is_stop,
    )
    tokenizer._userlm_turn_frame = (tokenizer.chat_template, frame)
    return frame


def end_token_id(tokenizer: Any) -> int | None:
    """The id of `<|endconversation|>`, or None when the vocabulary lacks it. A look-up of the one token: building
    the whole vocabulary (`get_vocab()`) per conversation took 80% of flipping with a 49k-token vocabulary."""
    token_id = tokenizer.convert_tokens_to_ids(END_CONVERSATION)
    if token_id is None or tokenizer.convert_ids_to_tokens(token_id) != END_CONVERSATION:
        return None
    return int(token_id)


def _template_error(tokenizer: Any, reason: str) -> TemplateError:
    source = getattr(tokenizer, "_userlm_template_source", None)
    which = f"the chat template ({source})" if source else "the chat template"
    return TemplateError(f"{which} cannot frame a user turn: {reason}; {TEMPLATE_HINT}")


@dataclass(frozen=True)
class UserSpan:
    """One user turn inside a training sequence: positions [start, end) carry loss."""

    start: int
    """The first token the model generates for this turn (right after the runtime's prompt)."""
    content_start: int
    """The first content position (after the lead-in): where P(`<|endconversation|>`) is read."""
    end: int
    is_end: bool
    """The final `<|endconversation|>` turn."""


@dataclass(frozen=True)
class FlipExample:
    id: str
    group: str
    input_ids: list[int]
    spans: tuple[UserSpan, ...]

    @property
    def labels(self) -> list[int]:
        labels = [IGNORE] * len(self.input_ids)
        for span in self.spans:
            labels[span.start : span.end] = self.input_ids[span.start : span.end]
        return labels

    @property
    def loss_tokens(self) -> int:
        return sum(span.end - span.start for span in self.spans)


def flip_record(
    tokenizer: Any,
    record: ChatRecord,
    *,
    with_intent: bool = True,
    end_turn: bool = True,
) -> FlipExample:
    """A conversation -> token ids and the user-turn spans that carry loss (see the module docstring).

    `with_intent=False` renders no system message (the paper's no-intent condition); `end_turn=False` leaves out
    the final `<|endconversation|>` target (for a model whose vocabulary lacks it). The turns may start with an
    assistant reply (a window of a long conversation: train/windows.py); the user turns carry the loss."""
    if with_intent and not record.intent:
        raise FlipError("no intent: run `userlm-plugin train intents` first, or evaluate with --no-intent")
    intent = record.intent if with_intent else None
    frame = turn_frame(tokenizer)
    turns = list(record.turns)
    targets: list[tuple[list[int], list[int], bool]] = []
    for i, turn in enumerate(turns):
        if turn["role"] != "user":
            continue
        prompt = prompt_ids(tokenizer, intent, turns[:i])
        rendered = prompt_ids(tokenizer, intent, turns[: i + 1])
        tail = rendered[len(prompt) :]
        if rendered[: len(prompt)] != prompt or tuple(tail[: len(frame.lead)]) != frame.lead:
            raise FlipError(
                f"user turn {len(targets) + 1}: the template does not render it after its own prompt"
            )
        stop_at = next((k for k in range(len(frame.lead), len(tail)) if tail[k] in frame.stop_ids), None)
        if stop_at is None:
            raise FlipError(f"user turn {len(targets) + 1}: no end-of-turn token after the text")
        targets.append((prompt, tail[: stop_at + 1], False))
    if end_turn:
        end_id = end_token_id(tokenizer)
        if end_id is None:
            raise FlipError(f"the tokenizer has no {END_CONVERSATION} token (train sft adds it)")
        targets.append((prompt_ids(tokenizer, intent, turns), [*frame.lead, end_id, *frame.close], True))
    if not targets:
        raise FlipError("no user turn to train on")
    last_prompt, last_completion, _ = targets[-1]
    sequence = last_prompt + last_completion
    spans = []
    for k, (prompt, completion, is_end) in enumerate(targets, start=1):
        expected = prompt + completion
        if sequence[: len(expected)] != expected:
            at = next(t for t, (a, b) in enumerate(zip(sequence, expected, strict=False)) if a != b)
            raise FlipError(
                f"user turn {k}: the runtime's prompt and the training sequence differ at token {at} "
                "(template or tokenizer not prefix-stable); this record would train on text the runtime never shows"
            )
        spans.append(
            UserSpan(
                start=len(prompt),
                content_start=len(prompt) + len(frame.lead),
                end=len(expected),
                is_end=is_end,
            )
        )
    return FlipExample(id=record.id, group=record.group, input_ids=sequence, spans=tuple(spans))


def flip_records(
    tokenizer: Any,
    records: Iterable[ChatRecord],
    *,
    with_intent: bool = True,
    end_turn: bool = True,
    progress: str | None = None,
) -> tuple[list[FlipExample], list[RecordProblem]]:
    """Flip every record; one that cannot be flipped is reported (with its id and why) and skipped.

    A template that cannot frame a user turn at all raises one `TemplateError` before any record is tried.
    `progress`: a label for a progress bar (None: no bar)."""
    turn_frame(tokenizer)
    records = list(records)
    examples: list[FlipExample] = []
    problems: list[RecordProblem] = []
    for record in progress_bar(records, progress):
        try:
            examples.append(flip_record(tokenizer, record, with_intent=with_intent, end_turn=end_turn))
        except TemplateError:
            raise
        except FlipError as error:
            problems.append(RecordProblem(0, record.id, str(error)))
    return examples, problems


def show_loss_tokens(tokenizer: Any, example: FlipExample) -> str:
    """The sequence as text with every loss-carrying run wrapped in ⟦ ⟧ (for `train flip --preview` and docs)."""
    labels = example.labels
    out: list[str] = []
    run: list[int] = []
    in_loss = False
    for token, label in zip(example.input_ids, labels, strict=True):
        if (label != IGNORE) != in_loss and run:
            text = tokenizer.decode(run, skip_special_tokens=False)
            out.append(f"⟦{text}⟧" if in_loss else text)
            run = []
        in_loss = label != IGNORE
        run.append(token)
    if run:
        text = tokenizer.decode(run, skip_special_tokens=False)
        out.append(f"⟦{text}⟧" if in_loss else text)
    return "".join(out)
