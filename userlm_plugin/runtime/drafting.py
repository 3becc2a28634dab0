"""The guardrail loop: draft -> check -> resample until a draft passes or the retries run out (torch-free).

One function, `draft_turn(backend, plan)`, used for every `userlm/` call whatever draws the drafts (the local engine
or a `/v1/completions` server) and by `userlm-plugin serve` (through the provider). It implements the paper's
guardrails (Appendix D.1; docs/userlm.md "Guardrails"):

* the token-level ones travel inside each `DraftRequest` (first-content-token bans, the `<|endconversation|>` ban)
  and are applied by the backend;
* the text-level ones (length, verbatim repetition, an early end) are checked here on each draft, and a rejected
  draft is redrawn with the next seed, at most `max_retries` times; then the least bad draft is returned, flagged
  `guardrails_exhausted`;
* the length budget (our speed-up, same results): a draft is cut at `max_words * 4 + 8` tokens; a cut draft that is
  still short enough is drawn again in full with the same seed (the same tokens, continued).

Optional, instead of the end ban: `end_threshold` ends the conversation when P(`<|endconversation|>`) at the first
content position of a draft reaches it, for backends that report it (`Draft.end_logprob`: the raw distribution at
temperature 1, before bans and top-p, so the ban does not hide what the model wanted). Never on the first user turn,
nor before `min_turns_before_end` user turns when that is set (`GuardrailConfig.threshold_end_allowed`); the end
ban still applies to the sampled text, so a turn either ends by the rule or is an ordinary turn
(docs/termination.md; remote servers: docs/serving.md).

The end of a conversation is a token, not a string (docs/termination.md "The end is a token"): a draft ends when
the backend generated the end token's id (`Draft.ended`). Text that spells `<|endconversation|>` in ordinary
tokens is text; while ending is banned it is rejected like any other end attempt (`early_end`), and the returned
turn never ends the conversation while ending is banned, retries exhausted or not (`_fallback`).

Every draft becomes an `Attempt` (typed), so the provider can log all of them and tests can read them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..turns import EndReason, Rejection, RejectReason
from .guardrails import DraftContext, GuardrailConfig, best_rejected, check_draft, word_count
from .template import defuse_end, parse_turn
from .types import Draft, DraftRequest, GenerationBackend


@dataclass(frozen=True)
class TurnPlan:
    """Everything one user turn's drafting needs, resolved by the caller (provider.py)."""

    prompt: str
    prompt_ids: list[int]
    temperature: float
    top_p: float
    max_tokens: int
    seed: int
    guard: GuardrailConfig
    end_allowed: bool
    """Whether the user may end the conversation now (guardrail 2: `GuardrailConfig.end_allowed`)."""
    context: DraftContext
    """What repetition is checked against (intent, earlier user and assistant turns)."""
    first_bans: Sequence[Sequence[int]] = ()
    """Token sequences banned as the first content token(s) (empty when the first-token filter is off)."""
    user_turns_in_input: int = 0
    server_prompt: str | None = None
    """The prompt for servers that re-tokenize text (`DraftRequest.server_prompt`); None: `prompt` itself."""
    no_end_bans: Sequence[Sequence[int]] = ()
    """Token sequences banned as the first content token(s) of the last-resort draft (`_fallback`): the stop
    tokens, the end token and the first ordinary token of the spelled end string, so that draft cannot be an end."""


@dataclass
class Attempt:
    """One draft and what the guardrails decided about it (logged in the ModelCall, in order)."""

    attempt: int
    seed: int
    raw: str
    text: str
    end_reason: EndReason | None
    finish: Literal["stop", "max_tokens"]
    stopped_at_length_budget: bool
    new_tokens: int
    decision: str
    """"accepted", "rejected: <reason>", plus " (returned: retries exhausted)" for the returned fallback."""
    detail: str | None
    first_token: str | None
    first_token_bans: int
    batch_size: int | None
    queued_s: float
    generate_s: float
    end_logprob: float | None = None
    output_tokens: int = 0
    """Output tokens billed for this draft (`Draft.output_tokens`)."""
    details: dict[str, Any] = field(default_factory=dict)

    def as_log(self) -> dict[str, Any]:
        """The attempt as one JSON-ready dict (backend details flattened in, as the ModelCall shows them)."""
        data = dataclasses.asdict(self)
        details = data.pop("details")
        data["queued_s"] = round(self.queued_s, 4)
        data["generate_s"] = round(self.generate_s, 4)
        if self.end_logprob is None:
            data.pop("end_logprob")
        return {**data, **details}


@dataclass
class TurnResult:
    """The outcome of drafting one user turn."""

    text: str
    """The user turn ("" when the user ended the conversation)."""
    end_reason: EndReason | None
    finish: Literal["stop", "max_tokens"]
    first_token: str | None
    text_before_end: str | None
    rejected: list[Rejection]
    """Drafts thrown away, oldest first (the returned fallback excluded)."""
    attempts: list[Attempt]
    exhausted: bool
    """True when every draft was rejected and the least bad one was returned."""
    input_tokens: int = 0
    output_tokens: int = 0
    """Summed over every draft (what the turn cost)."""
    turn_output_tokens: int = 0
    """Output tokens of the draft the turn came from (`serve`'s `usage.completion_tokens`)."""
    end_logprob: float | None = None
    """log P(end) of the first draft (the model's own, unconditioned view of whether to end here)."""
    ended_by_threshold: bool = False


class _Usage:
    def __init__(self) -> None:
        self.input = self.output = 0

    def add(self, draft: Draft) -> Draft:
        self.input += draft.prompt_tokens
        self.output += draft.output_tokens
        return draft


def _judge(draft: Draft, plan: TurnPlan) -> tuple[Any, Rejection | None]:
    """Parse a draft and decide: (parsed turn, None when accepted else the rejection)."""
    parsed = parse_turn(draft.text, ended=draft.ended)
    why = (
        f"with {plan.user_turns_in_input} user turn(s) in the input; "
        f"min_turns_before_end={plan.guard.min_turns_before_end}"
    )
    if parsed.end_reason is not None:
        if plan.end_allowed:
            return parsed, None
        return parsed, Rejection(
            text=parsed.text_before_end or "",
            reason=RejectReason.EARLY_END,
            detail=f"{parsed.end_reason.value} {why}",
        )
    if parsed.spelled_end and not plan.end_allowed:
        # not the end token, but an attempt to end all the same: rejected, never returned as an end
        return parsed, Rejection(
            text=parsed.text_before_end or "",
            reason=RejectReason.EARLY_END,
            detail=f"the end string spelled in ordinary tokens (not the end token) {why}",
        )
    return parsed, check_draft(parsed.text, plan.context, plan.guard)


async def draft_turn(backend: GenerationBackend, plan: TurnPlan) -> TurnResult:
    """Draft one user turn through `backend` under `plan.guard` (see the module docstring)."""
    guard = plan.guard
    usage = _Usage()
    budget = guard.draft_token_budget(plan.max_tokens)
    attempts: list[Attempt] = []
    rejected: list[Rejection] = []
    rejected_rows: list[
        tuple[Attempt, DraftRequest, bool]
    ] = []  # per rejected draft: its attempt, row, was cut
    first_end_logprob: float | None = None

    def result(text: str, end_reason: EndReason | None, last: Draft | Attempt, **facts: Any) -> TurnResult:
        """The turn, with what every outcome shares (rejections, attempts, usage, the first draft's P(end))."""
        if end_reason is not None and not plan.end_allowed and end_reason is not EndReason.END_THRESHOLD:
            raise AssertionError("drafting returned an end while ending is banned")  # _fallback's contract
        return TurnResult(
            text="" if end_reason is not None else defuse_end(text),
            end_reason=end_reason,
            finish=last.finish,
            first_token=last.first_token,
            text_before_end=facts.pop("text_before_end", None),
            rejected=rejected,
            attempts=attempts,
            exhausted=facts.pop("exhausted", False),
            input_tokens=usage.input,
            output_tokens=usage.output,
            turn_output_tokens=last.output_tokens,
            end_logprob=first_end_logprob,
            **facts,
        )

    for index in range(guard.max_retries + 1):
        row = DraftRequest(
            prompt=plan.prompt,
            prompt_ids=plan.prompt_ids,
            temperature=plan.temperature,
            top_p=plan.top_p,
            seed=plan.seed + index,
            max_new_tokens=budget,
            ban_end=not plan.end_allowed,
            first_bans=plan.first_bans,
            server_prompt=plan.server_prompt,
            report_end_logprob=guard.end_threshold is not None,
        )
        draft = usage.add(await backend.draft(row))
        cut = draft.finish == "max_tokens" and budget < plan.max_tokens
        if cut and word_count(parse_turn(draft.text, ended=draft.ended).text) <= guard.max_words:
            # the budget may have cut a turn that is still short enough: draft it in full (same seed: the same
            # tokens, continued), so the result is what an uncut draft would have been
            row = dataclasses.replace(row, max_new_tokens=plan.max_tokens)
            draft = usage.add(await backend.draft(row))
            cut = False
        if index == 0:
            first_end_logprob = draft.end_logprob
        if _over_end_threshold(draft, plan):
            attempts.append(
                _attempt(index, row, draft, None, "accepted: end probability over end_threshold", cut)
            )
            return result("", EndReason.END_THRESHOLD, draft, ended_by_threshold=True)
        parsed, rejection = _judge(draft, plan)
        decision = "accepted" if rejection is None else f"rejected: {rejection.reason.value}"
        attempt = _attempt(index, row, draft, parsed, decision, cut, rejection)
        attempts.append(attempt)
        if rejection is None:
            return result(parsed.text, parsed.end_reason, draft, text_before_end=parsed.text_before_end)
        if cut:
            rejection.detail = f"{rejection.detail}; drafting stopped at the {budget}-token length budget"
        rejected.append(rejection)
        rejected_rows.append((attempt, row, cut))

    # every draft failed: return the least bad one, flagged
    best = best_rejected(rejected, guard)
    attempt, row, cut = rejected_rows[best]
    if rejected[best].reason is RejectReason.EARLY_END:
        # every draft tried to end (an allowed end is accepted): never return an end while ending is banned
        if rejected[best].text:
            attempt.decision += " (returned: retries exhausted; the text before its end)"
            return result(rejected.pop(best).text, None, attempt, exhausted=True)
        last = usage.add(await backend.draft(_no_end_row(plan)))
        parsed = parse_turn(last.text, ended=last.ended)
        # cut before an end it writes later; a spelled end with nothing before it is returned as the text it is
        text = parsed.text_before_end or parsed.text
        decision = (
            "returned: retries exhausted, every draft an end attempt; drawn with the end token, the stop tokens "
            "and the spelled end string banned at its first content position"
        )
        attempts.append(_attempt(len(attempts), _no_end_row(plan), last, parsed, decision, False))
        return result(text, None, last, exhausted=True)
    attempt.decision += " (returned: retries exhausted)"
    del rejected[best]
    if not cut:
        return result(attempt.text, None, attempt, exhausted=True)
    # return the whole draft, not the part the length budget let through
    full = usage.add(await backend.draft(dataclasses.replace(row, max_new_tokens=plan.max_tokens)))
    whole = parse_turn(full.text, ended=full.ended)  # an end past the budget keeps the text before it
    ends = whole.end_reason is not None or (whole.spelled_end and not plan.end_allowed)
    text = whole.text if not ends else (whole.text_before_end or attempt.text)
    return result(text, None, full, exhausted=True)


def _no_end_row(plan: TurnPlan) -> DraftRequest:
    """The last-resort draft when every draft tried to end while ending is banned: the stop tokens, the end token
    and the spelled end string's first token banned at the first content position (`TurnPlan.no_end_bans`), so it
    is neither an empty turn nor an end; returned cut before any end it writes later."""
    return DraftRequest(
        prompt=plan.prompt,
        prompt_ids=plan.prompt_ids,
        temperature=plan.temperature,
        top_p=plan.top_p,
        seed=plan.seed + plan.guard.max_retries + 1,
        max_new_tokens=plan.max_tokens,
        ban_end=True,
        first_bans=[*plan.first_bans, *plan.no_end_bans],
        server_prompt=plan.server_prompt,
    )


def _over_end_threshold(draft: Draft, plan: TurnPlan) -> bool:
    """The threshold stopping rule: end when P(end) at the first content position reaches `end_threshold`, once
    the rule may end the conversation (`GuardrailConfig.threshold_end_allowed`: never on the first turn)."""
    threshold = plan.guard.end_threshold
    return (
        threshold is not None
        and plan.guard.threshold_end_allowed(plan.user_turns_in_input)
        and draft.end_logprob is not None
        and draft.end_logprob >= math.log(threshold)
    )


def _attempt(
    index: int,
    row: DraftRequest,
    draft: Draft,
    parsed: Any,
    decision: str,
    cut: bool,
    rejection: Rejection | None = None,
) -> Attempt:
    return Attempt(
        attempt=index,
        seed=row.seed,
        raw=draft.raw,
        text=parsed.text if parsed is not None else "",
        end_reason=parsed.end_reason if parsed is not None else None,
        finish=draft.finish,
        stopped_at_length_budget=cut,
        new_tokens=draft.new_tokens,
        decision=decision,
        detail=None if rejection is None else rejection.detail,
        first_token=draft.first_token,
        first_token_bans=draft.first_token_bans,
        batch_size=draft.batch_size,
        queued_s=draft.queued_s,
        generate_s=draft.generate_s,
        end_logprob=draft.end_logprob,
        output_tokens=draft.output_tokens,
        details=dict(draft.details),
    )


__all__ = ["Attempt", "TurnPlan", "TurnResult", "draft_turn"]
