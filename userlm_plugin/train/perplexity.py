"""Held-out user-token perplexity and the teacher-forced end probability, for any `userlm/` model.

User-token perplexity is the paper's distributional-alignment metric (arXiv 2510.06552 §3, Table 1): how likely
the model finds REAL users' turns, given the intent (or not) and the conversation so far. Here it is
exp(total NLL / total tokens) over exactly the tokens `flip.py` puts the training loss on: every user turn's
tokens after the runtime's prompt (lead-in, text, end-of-turn) and the final `<|endconversation|>` turn. Because
the sequence and prompts come from the same `flip_record` and `render_prompt_ids` as training and inference, a
trained model, UserLM-8b and a prompted base model are scored on the same targets, each with its own template.
Tokens differ across tokenizers: compare PPL between models that share one (Llama-3's, for UserLM-8b and
Llama-3-8B), and say so otherwise. A model without `<|endconversation|>` in its vocabulary is scored on the user
turns alone (`end_turns` 0).

A conversation longer than `max_length` (default: the model's context) is scored in windows (train/windows.py: the
intent and consecutive turns, one exchange of overlap, every user turn scored once) and its pieces summed, so it
is never skipped; the report says how many were windowed.

The same forward pass gives the teacher-forced log P(`<|endconversation|>`) at every user turn's first content
position: at the real last turn the user did end, at every earlier one they went on, which is a free calibration
set on real held-out data (scoring/quality/calibration.py). docs/termination.md defines the quantity.

torch is imported inside the functions; the caller runs them on the thread that owns the model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..runtime.template import UserLMInput, render_prompt_ids
from ..scoring.quality.calibration import calibration_summary
from ..turns import END_CONVERSATION
from .conversations import ChatRecord, RecordProblem, as_records
from .flip import FlipExample, turn_frame
from .progress import progress_bar
from .windows import LengthReport, fit_examples


@dataclass(frozen=True)
class ConversationScore:
    id: str
    nll_turns: float
    """Summed negative log-likelihood (nats) of the user turns' tokens (the end turn excluded)."""
    tokens_turns: int
    nll_end: float
    """Summed NLL of the final `<|endconversation|>` turn's tokens (0 without one)."""
    tokens_end: int
    end_logprobs: tuple[float, ...]
    """Teacher-forced log P(end) at each user turn's first content position; with an end turn, the last one is
    the real end."""
    has_end_turn: bool
    windows: int = 1
    """Sequences the conversation was scored in (more than 1 when it is longer than `max_length`)."""


@dataclass
class PerplexityReport:
    model: str
    with_intent: bool
    scores: list[ConversationScore] = field(default_factory=list)
    skipped: list[RecordProblem] = field(default_factory=list)
    length: LengthReport | None = None

    @property
    def tokens(self) -> int:
        return sum(s.tokens_turns + s.tokens_end for s in self.scores)

    @property
    def perplexity(self) -> float | None:
        """Over every user token, the end turn included (the training targets)."""
        nll = sum(s.nll_turns + s.nll_end for s in self.scores)
        return math.exp(nll / self.tokens) if self.tokens else None

    @property
    def perplexity_turns(self) -> float | None:
        """Over the user turns' tokens only: comparable with a model that has no end token."""
        tokens = sum(s.tokens_turns for s in self.scores)
        return math.exp(sum(s.nll_turns for s in self.scores) / tokens) if tokens else None

    def end_calibration(self) -> dict[str, float | None]:
        logprobs: list[float] = []
        labels: list[bool] = []
        for score in self.scores:
            if score.has_end_turn:
                logprobs += score.end_logprobs
                labels += [False] * (len(score.end_logprobs) - 1) + [True]
        return calibration_summary(logprobs, labels)

    def summary(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "condition": "intent" if self.with_intent else "no_intent",
            "perplexity": self.perplexity,
            "perplexity_turns": self.perplexity_turns,
            "user_tokens": self.tokens,
            "conversations": len(self.scores),
            "end_turns": sum(s.has_end_turn for s in self.scores),
            "skipped": len(self.skipped),
            "windowed": sum(s.windows > 1 for s in self.scores),
            **self.end_calibration(),
        }


def _model_device(model: Any) -> Any:
    return next(model.parameters()).device


def score_example(model: Any, example: FlipExample, end_id: int | None) -> ConversationScore:
    """One forward pass: NLL of the labelled tokens and log P(end) at each user turn's first content position."""
    import torch
    import torch.nn.functional as F

    ids = torch.tensor([example.input_ids], device=_model_device(model))
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float()
    labels = torch.tensor(example.labels[1:], device=logits.device)
    token_nll = F.cross_entropy(logits[:-1], labels, ignore_index=-100, reduction="none")
    # position t predicts token t + 1: a span [start, end) is read from rows [start - 1, end - 1)
    span_nll = [
        (float(token_nll[s.start - 1 : s.end - 1].sum()), s.end - s.start, s.is_end) for s in example.spans
    ]
    end_logprobs: tuple[float, ...] = ()
    if end_id is not None:
        rows = torch.tensor([span.content_start - 1 for span in example.spans], device=logits.device)
        end_logprobs = tuple(torch.log_softmax(logits[rows], dim=-1)[:, end_id].tolist())
    return ConversationScore(
        id=example.id,
        nll_turns=sum(n for n, _, is_end in span_nll if not is_end),
        tokens_turns=sum(k for _, k, is_end in span_nll if not is_end),
        nll_end=sum(n for n, _, is_end in span_nll if is_end),
        tokens_end=sum(k for _, k, is_end in span_nll if is_end),
        end_logprobs=end_logprobs,
        has_end_turn=any(span.is_end for span in example.spans),
    )


def _merge(pieces: list[ConversationScore], id: str) -> ConversationScore:
    """One conversation's windows as one score: sums, and the end log-probs in order (the real end last)."""
    return ConversationScore(
        id=id,
        nll_turns=sum(p.nll_turns for p in pieces),
        tokens_turns=sum(p.tokens_turns for p in pieces),
        nll_end=sum(p.nll_end for p in pieces),
        tokens_end=sum(p.tokens_end for p in pieces),
        end_logprobs=tuple(v for p in pieces for v in p.end_logprobs),
        has_end_turn=any(p.has_end_turn for p in pieces),
        windows=len(pieces),
    )


def user_perplexity(
    model: Any,
    tokenizer: Any,
    records: Sequence[ChatRecord],
    *,
    with_intent: bool = True,
    name: str = "",
    max_length: int | None = None,
    progress: str | None = None,
) -> PerplexityReport:
    """User-token perplexity of `records` under a loaded model and its tokenizer (see the module docstring).

    A conversation longer than `max_length` (default: the model's context) is scored in windows; `progress`
    labels a progress bar (None: none)."""
    vocab = tokenizer.get_vocab()
    end_id = vocab.get(END_CONVERSATION)
    limit = max_length or getattr(model.config, "max_position_embeddings", None) or 1_000_000
    fitted = fit_examples(tokenizer, records, limit, with_intent=with_intent, end_turn=end_id is not None)
    report = PerplexityReport(
        model=name, with_intent=with_intent, skipped=list(fitted.problems), length=fitted.report
    )
    by_conversation: dict[str, list[ConversationScore]] = {}
    for example in progress_bar(fitted.examples, progress):
        conversation = example.id.split("#w", 1)[0] if "#w" in example.id else example.id
        by_conversation.setdefault(conversation, []).append(score_example(model, example, end_id))
    report.scores = [_merge(pieces, id) for id, pieces in by_conversation.items()]
    return report


def teacher_forced_end_logprob(
    model: Any, tokenizer: Any, intent: str, turns: Sequence[dict[str, str]]
) -> float | None:
    """log P(`<|endconversation|>` | the runtime's prompt + the template's lead-in), temperature 1, raw
    distribution: the quantity the local backend records as `end_logprob` (docs/termination.md). None when the
    vocabulary has no such token."""
    import torch

    end_id = tokenizer.get_vocab().get(END_CONVERSATION)
    if end_id is None:
        return None
    prompt = render_prompt_ids(tokenizer, UserLMInput(intent=intent, turns=list(turns)))[1]
    ids = torch.tensor([[*prompt, *turn_frame(tokenizer).lead]], device=_model_device(model))
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, -1].float()
    return float(torch.log_softmax(logits, dim=-1)[end_id])


def evaluate_model(
    name: str,
    records: Sequence[ChatRecord] | str | Path,
    *,
    conditions: Sequence[bool] = (True, False),
    device: str = "auto",
    dtype: str = "auto",
    chat_template: str | None = None,
    revision: str | None = None,
    max_length: int | None = None,
    progress: bool = True,
) -> list[PerplexityReport]:
    """Load `name` exactly as `userlm/<name>` would (same loader, same `-M` options) and score `records` (or a
    conversation file) under each condition (True: with intent, False: without).

    `chat_template`: a template file, `userlm` (UserLM-8b's), or template text, for a model without one or to
    score a base model with another template. A template that cannot frame a user turn raises `TemplateError`
    (naming `--chat-template`) before any conversation is scored."""
    from ..runtime.local import torch_thread
    from ..runtime.local.loading import load_userlm
    from .tokens import read_chat_template

    records = as_records(records)
    template = read_chat_template(chat_template) if chat_template is not None else None
    loaded = load_userlm(
        name, device=device, dtype=dtype, chat_template=template.text if template else None, revision=revision
    )
    loaded.tokenizer._userlm_template_source = template.source if template else "the model's own"
    return [
        torch_thread.call(
            user_perplexity,
            loaded.model,
            loaded.tokenizer,
            records,
            with_intent=with_intent,
            name=name,
            max_length=max_length,
            progress=f"{Path(name).name or name} {'with' if with_intent else 'without'} intent"
            if progress
            else None,
        )
        for with_intent in conditions
    ]
