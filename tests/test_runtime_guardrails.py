"""Each guardrail of Appendix D.1 against a tiny model that *wants* the failure (biases baked into its weights),
shown stopping it, and shown switched off."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from inspect_ai.model import ChatMessageAssistant, ChatMessageSystem, ChatMessageUser, GenerateConfig
from transformers import AutoTokenizer

from userlm_plugin.turns import END_CONVERSATION, USERLM_METADATA_KEY, EndReason, RejectReason, UserTurn

N = 16
INTENT = "Please write a regex for the json output"
FIRST_WORDS = {"I", "You", "Here", "i", "you", "here"}
OPENER = re.compile(r"^(I|You|Here|i|you|here)\b")
WORDY = {w: 5.0 for w in [" the", " test", " code", " my", " a", " need", " file", " list"]}


async def generate_many(model: Any, messages: list, n: int = N, **userlm: Any) -> list:
    """n concurrent calls with seeds 0..n-1 (they batch), guardrail overrides via extra_body."""
    configs = [GenerateConfig(seed=i, max_tokens=80, extra_body={"userlm": userlm}) for i in range(n)]
    return await asyncio.gather(*[model.generate(messages, config=c) for c in configs])


def md(output: Any) -> dict[str, Any]:
    return output.metadata[USERLM_METADATA_KEY]


def reasons(outputs: list) -> set[str]:
    return {r["reason"] for o in outputs for r in md(o)["rejected"]}


@pytest.fixture(scope="module")
def wants_to_end(tiny_userlm_factory, tiny_userlm_model):
    return tiny_userlm_model(tiny_userlm_factory(token_bias={END_CONVERSATION: 5.0}))


async def test_end_token_banned_by_default_allowed_after_min_turns(wants_to_end) -> None:
    first = [ChatMessageSystem(content="You want a regex")]
    # Off (0 = always allowed): the model ends most conversations right away, with the token.
    free = await generate_many(wants_to_end, first, min_turns_before_end=0)
    ended = [o for o in free if md(o)["end_reason"] == EndReason.END_TOKEN]
    assert len(ended) >= N // 2
    assert all(o.completion == "" for o in ended)
    # Default (None = banned always, as the paper's extrinsic runs): never ends, token never in the text.
    banned = await generate_many(wants_to_end, first)
    assert all(md(o)["end_reason"] is None and o.completion for o in banned)
    assert all(END_CONVERSATION not in o.completion for o in banned)
    assert all(not md(o)["end_allowed"] for o in banned)
    # min_turns_before_end=2 counts the user messages already in the input.
    one_turn = [*first, ChatMessageUser(content="make a regex"), ChatMessageAssistant(content="Sure: .*")]
    two_turns = [*one_turn, ChatMessageUser(content="for json keys"), ChatMessageAssistant(content="ok")]
    early = await generate_many(wants_to_end, one_turn, n=8, min_turns_before_end=2)
    late = await generate_many(wants_to_end, two_turns, n=8, min_turns_before_end=2)
    assert all(md(o)["end_reason"] is None for o in early)
    assert sum(md(o)["end_reason"] == EndReason.END_TOKEN for o in late) >= 4


@pytest.fixture(scope="module")
def wants_first_i(tiny_userlm_factory, tiny_userlm_model):
    path = tiny_userlm_factory(token_bias={"I": 7.0, "You": 6.0, "Here": 6.0})
    return tiny_userlm_model(path), AutoTokenizer.from_pretrained(path, local_files_only=True)


async def test_first_token_filter_acts_after_the_leading_newline(wants_first_i) -> None:
    wants_first_i, tokenizer = wants_first_i
    msgs = [ChatMessageSystem(content="You want a regex")]
    off = await generate_many(
        wants_first_i, msgs, first_token_filter=False, length_filter=False, max_retries=0
    )
    assert sum(md(o)["first_token"].strip() in FIRST_WORDS for o in off) >= N // 2
    on = await generate_many(wants_first_i, msgs, length_filter=False, max_retries=0)
    for o in on:
        assert md(o)["guardrails"]["first_token_filter"] is True
        # the model opened with the template's newline (stripped), and the ban hit the token after it
        assert md(o)["first_token"].strip() not in FIRST_WORDS, o.completion
        assert not OPENER.match(o.completion), o.completion
    # "I" is only banned first: it still appears later in turns
    assert any(" I" in o.completion or "I" in o.completion[1:] for o in on)


@pytest.fixture(scope="module")
def wants_to_ramble(tiny_userlm_factory, tiny_userlm_model):
    # mostly space-separated words until max_tokens, sometimes a short script sentence
    return tiny_userlm_model(tiny_userlm_factory(token_bias=WORDY, scripts={"Ok can you help?": 7.0}))


async def test_length_filter_resamples_rambling_turns(wants_to_ramble) -> None:
    msgs = [ChatMessageSystem(content="You want help with code")]
    off = await generate_many(wants_to_ramble, msgs, length_filter=False, max_retries=0)
    assert sum(len(o.completion.split()) > 25 for o in off) >= N // 4
    on = await generate_many(wants_to_ramble, msgs)
    assert all(3 <= len(o.completion.split()) <= 25 for o in on if not md(o)["guardrails_exhausted"])
    assert sum(md(o)["guardrails_exhausted"] for o in on) <= 1
    assert RejectReason.TOO_LONG in reasons(on)
    assert sum(md(o)["retries"] for o in on) == sum(len(md(o)["rejected"]) for o in on)
    # tighter bounds are honoured too
    strict = await generate_many(wants_to_ramble, msgs, n=8, min_words=5, max_words=40, max_retries=1)
    assert RejectReason.TOO_SHORT in reasons(strict)


async def test_length_budget_stops_rambles_early_without_changing_results(wants_to_ramble) -> None:
    """Drafting stops at max_words*4+8 tokens; the turns returned are exactly those of full-length drafting."""
    msgs = [ChatMessageSystem(content="You want help with code")]
    budget = await generate_many(wants_to_ramble, msgs, max_words=10)  # budget 48 < max_tokens 80
    full = await generate_many(wants_to_ramble, msgs, max_words=10, length_budget=False)
    assert [o.completion for o in budget] == [o.completion for o in full]
    assert [md(o)["guardrails_exhausted"] for o in budget] == [md(o)["guardrails_exhausted"] for o in full]
    cut = [r for o in budget for r in md(o)["rejected"] if "length budget" in (r["detail"] or "")]
    assert cut and all(r["reason"] == RejectReason.TOO_LONG for r in cut)
    assert sum(o.usage.output_tokens for o in budget) < sum(o.usage.output_tokens for o in full)


@pytest.fixture(scope="module")
def wants_to_repeat(tiny_userlm_factory, tiny_userlm_model):
    return tiny_userlm_model(tiny_userlm_factory(scripts={INTENT: 5.0}))


async def test_repetition_filter_resamples_intent_copies(wants_to_repeat) -> None:
    msgs = [ChatMessageSystem(content=INTENT)]
    off = await generate_many(
        wants_to_repeat, msgs, n=3 * N, repetition_filter=False, length_filter=False, max_retries=0
    )
    assert sum(o.completion == INTENT for o in off) >= N // 4
    on = await generate_many(wants_to_repeat, msgs, length_filter=False)
    assert not any(o.completion.lower() == INTENT.lower() for o in on)
    assert RejectReason.REPEATS_INTENT in reasons(on)
    # the same copy becomes an echo when it was the assistant's text, and a self-repeat when it was the user's
    other = [
        ChatMessageSystem(content="You want a regex"),
        ChatMessageUser(content=INTENT),
        ChatMessageAssistant(content=INTENT),
    ]
    echoed = await generate_many(wants_to_repeat, other, length_filter=False)
    assert RejectReason.REPEATS_USER_TURN in reasons(echoed)
    assert not any(o.completion == INTENT for o in echoed)


async def test_exhausted_retries_return_best_draft_flagged(wants_to_repeat) -> None:
    msgs = [ChatMessageSystem(content=INTENT)]
    # max_words=1 rejects everything: every call exhausts its 2 retries and returns a flagged best draft
    outs = await generate_many(wants_to_repeat, msgs, n=4, min_words=0, max_words=1, max_retries=2)
    for o in outs:
        meta = md(o)
        assert meta["guardrails_exhausted"] and meta["retries"] == 2 and len(meta["rejected"]) == 2
        turn = UserTurn(
            text=o.completion,
            **{k: meta[k] for k in ("end_reason", "rejected", "retries", "guardrails_exhausted")},
        )
        assert turn.text and turn.guardrails_exhausted
