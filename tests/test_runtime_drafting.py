"""The guardrail loop's end-probability rule (`end_threshold`), driven through the real provider by a scripted
backend: when it may end a conversation (never on the first user turn, not before `min_turns_before_end`), how it
sits with the end-token ban, and that log P(end) reaches the output metadata and the turn record."""

from __future__ import annotations

import math
from typing import Any

import pytest
from fake_backend import FakeBackend, scripted_draft, userlm_with_backend
from inspect_ai.model import ChatMessageAssistant, ChatMessageSystem, ChatMessageUser, GenerateConfig

from userlm_plugin.simulators.userlm import turn_from_output
from userlm_plugin.turns import USERLM_METADATA_KEY, EndReason, RejectReason

INTENT = "You are a user chatting with an assistant language model to get a regex for json keys"
GOOD = "\ncan you make it match nested keys too"


def conversation(user_turns: int) -> list[Any]:
    messages: list[Any] = [ChatMessageSystem(content=INTENT)]
    for i in range(user_turns):
        messages += [
            ChatMessageUser(content=f"I need a regex, take {i}"),
            ChatMessageAssistant(content="Sure: .*"),
        ]
    if not user_turns:
        messages.append(ChatMessageAssistant(content="Hello! How can I help?"))
    return messages


async def turn(model_dir: Any, drafts: list[Any], user_turns: int, **model_args: Any) -> tuple[Any, Any, Any]:
    """One user turn through the provider; returns (output, ModelCall, the fake backend)."""
    backends: list[FakeBackend] = []

    def make(tokenizer: Any) -> FakeBackend:
        backends.append(FakeBackend(tokenizer, drafts))
        return backends[0]

    model = userlm_with_backend(model_dir, make, **model_args)
    output, call = await model.api.generate(conversation(user_turns), [], "none", GenerateConfig(seed=3))
    return output, call, backends[0]


def md(output: Any) -> dict[str, Any]:
    return output.metadata[USERLM_METADATA_KEY]


async def test_threshold_ends_once_the_user_has_spoken_despite_the_ban(tiny_userlm_dir) -> None:
    output, call, backend = await turn(
        tiny_userlm_dir, [scripted_draft(GOOD, end_logprob=math.log(0.5))], 1, end_threshold=0.2
    )
    assert output.completion == "" and md(output)["end_reason"] == EndReason.END_THRESHOLD
    assert md(output)["end_logprob"] == pytest.approx(math.log(0.5))
    request = backend.requests[0]
    # the ban still governs sampling (min_turns_before_end is None); the rule reads the unbanned probability
    assert request.ban_end and request.report_end_logprob
    assert call.response["attempts"][0]["decision"] == "accepted: end probability over end_threshold"
    assert call.response["end_reason"] == EndReason.END_THRESHOLD
    # the turn record the solver writes says why and with what probability
    record = turn_from_output(output)
    assert record.end_reason == EndReason.END_THRESHOLD
    assert record.metadata["end_logprob"] == pytest.approx(math.log(0.5))


async def test_threshold_never_ends_the_first_user_turn(tiny_userlm_dir) -> None:
    output, _, backend = await turn(
        tiny_userlm_dir, [scripted_draft(GOOD, end_logprob=0.0)], 0, end_threshold=0.01
    )  # P(end) = 1, yet the user has not said anything yet
    assert output.completion == GOOD.strip() and md(output)["end_reason"] is None
    assert md(output)["end_logprob"] == 0.0 and len(backend.requests) == 1


async def test_threshold_waits_for_min_turns_before_end(tiny_userlm_dir) -> None:
    drafts = [scripted_draft(GOOD, end_logprob=math.log(0.9))]
    early, _, backend = await turn(tiny_userlm_dir, drafts, 2, end_threshold=0.5, min_turns_before_end=3)
    assert md(early)["end_reason"] is None and early.completion
    assert backend.requests[0].ban_end  # not allowed to end yet: the token stays banned as well
    late, _, backend = await turn(tiny_userlm_dir, drafts, 3, end_threshold=0.5, min_turns_before_end=3)
    assert md(late)["end_reason"] == EndReason.END_THRESHOLD
    assert not backend.requests[0].ban_end


@pytest.mark.parametrize("end_logprob", [math.log(0.19), None])
async def test_below_threshold_or_unknown_is_an_ordinary_turn(tiny_userlm_dir, end_logprob) -> None:
    output, _, _ = await turn(
        tiny_userlm_dir, [scripted_draft(GOOD, end_logprob=end_logprob)], 2, end_threshold=0.2
    )
    assert md(output)["end_reason"] is None and output.completion == GOOD.strip()
    # recorded either way while the rule is on, so a log shows when the backend could not tell (None)
    assert "end_logprob" in md(output) and md(output)["end_logprob"] == end_logprob


async def test_rule_off_asks_nothing_extra_but_keeps_a_reported_value(tiny_userlm_dir) -> None:
    output, _, backend = await turn(tiny_userlm_dir, [scripted_draft(GOOD, end_logprob=math.log(0.99))], 2)
    assert not backend.requests[0].report_end_logprob
    assert md(output)["end_reason"] is None and md(output)["end_logprob"] == pytest.approx(math.log(0.99))
    output, _, _ = await turn(tiny_userlm_dir, [scripted_draft(GOOD)], 2)
    assert "end_logprob" not in md(output)  # nothing known, nothing asked: no key


async def test_a_sampled_end_token_still_ends_when_allowed(tiny_userlm_dir) -> None:
    drafts = [scripted_draft("\n", ended=True, end_logprob=math.log(0.05))]
    output, _, _ = await turn(tiny_userlm_dir, drafts, 1, end_threshold=0.5, min_turns_before_end=1)
    assert md(output)["end_reason"] == EndReason.END_TOKEN  # below the threshold, but drawn and allowed


async def test_the_rule_is_checked_on_every_draft(tiny_userlm_dir) -> None:
    drafts = [
        scripted_draft("\nok", end_logprob=math.log(0.1)),
        scripted_draft(GOOD, end_logprob=math.log(0.8)),
    ]
    output, call, backend = await turn(tiny_userlm_dir, drafts, 1, end_threshold=0.5)
    assert md(output)["end_reason"] == EndReason.END_THRESHOLD
    assert [r["reason"] for r in md(output)["rejected"]] == [RejectReason.TOO_SHORT.value]
    assert [a["decision"] for a in call.response["attempts"]] == [
        "rejected: too_short",
        "accepted: end probability over end_threshold",
    ]
    # the turn's reported value is the first draft's: the model's own view before any resampling
    assert md(output)["end_logprob"] == pytest.approx(math.log(0.1)) and len(backend.requests) == 2
