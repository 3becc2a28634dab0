"""The end of a conversation is a token, not a string (docs/termination.md "The end is a token").

Round 3 decided the end on decoded text: 14 ordinary tokens spelling `<|endconversation|>` ended a conversation in
which ending is banned, and when every draft did so the exhausted fallback returned the end anyway. Here each way
in is tried against the real parts: the tiny Llama taught to *spell* the end string in ordinary tokens (local
engine), the guardrail loop with scripted drafts (every fallback path), and a scripted `/v1/completions` server
that answers with the end token or with its spelling, with and without token strings (remote backend).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_backend import FakeBackend, scripted_draft, userlm_with_backend
from inspect_ai.model import (
    ChatMessageAssistant,
    ChatMessageSystem,
    ChatMessageUser,
    GenerateConfig,
    get_model,
)
from local_servers import app_in_thread
from tiny_llama import plain_ids

from userlm_plugin.runtime.template import WORD_JOINER
from userlm_plugin.simulators.userlm import turn_from_output
from userlm_plugin.turns import END_CONVERSATION, USERLM_METADATA_KEY, EndReason, RejectReason

INTENT = "You are a user who wants a python function that sorts a list; ask the assistant for it."
MESSAGES = [ChatMessageSystem(content=INTENT), ChatMessageAssistant(content="Hello! How can I help?")]
SPOKEN = [
    ChatMessageSystem(content=INTENT),
    ChatMessageUser(content="hi, I need a sort function"),
    ChatMessageAssistant(content="Sure! Which language?"),
]
GOOD = "\ncan you sort it in place please"


def md(output: Any) -> dict[str, Any]:
    return output.metadata[USERLM_METADATA_KEY]


def assert_not_an_end(output: Any) -> None:
    """Not an end by any reading: the metadata, the text (no literal end string), the simulator's conversion."""
    assert md(output)["end_reason"] is None
    assert output.completion and END_CONVERSATION not in output.completion
    assert not turn_from_output(output).ended


# ----- local: the tiny Llama spells the end string in ordinary tokens -----


@pytest.fixture(scope="module")
def spells_the_end(tiny_userlm_factory: Any) -> Path:
    return tiny_userlm_factory(spelled_end=True, scripts={END_CONVERSATION: 14.0})


async def test_a_spelled_end_does_not_end_a_conversation_in_which_ending_is_banned(
    spells_the_end: Path, tiny_userlm_model: Any
) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(spells_the_end)
    assert len(plain_ids(tokenizer, END_CONVERSATION)) == 3  # "<|", "endconversation", "|>": no end token
    model = tiny_userlm_model(spells_the_end, max_retries=3)
    output, call = await model.api.generate(MESSAGES, [], "none", GenerateConfig(seed=1))
    attempts = call.response["attempts"]
    drafted = attempts[:4]
    assert all(a["raw"].strip() == END_CONVERSATION for a in drafted)  # the model did spell it, every time
    assert all(a["end_reason"] is None for a in drafted)  # ...and no draft ended
    assert [r["reason"] for r in md(output)["rejected"]] == [RejectReason.EARLY_END.value] * 4
    assert all("spelled in ordinary tokens" in r["detail"] for r in md(output)["rejected"])
    # retries exhausted: the last-resort draft may not open with the spelling, so it is an ordinary turn
    assert md(output)["guardrails_exhausted"] is True and len(attempts) == 5
    assert not attempts[-1]["raw"].lstrip().startswith("<|")
    assert_not_an_end(output)


async def test_a_spelled_end_is_just_text_when_ending_is_allowed(
    spells_the_end: Path, tiny_userlm_model: Any
) -> None:
    model = tiny_userlm_model(spells_the_end, min_turns_before_end=0, length_filter=False)
    output, call = await model.api.generate(SPOKEN, [], "none", GenerateConfig(seed=1))
    assert call.response["attempts"][0]["decision"] == "accepted"
    assert output.completion.replace(WORD_JOINER, "") == END_CONVERSATION  # the text, defused
    assert_not_an_end(output)


async def test_the_end_token_ends_the_draft_and_the_conversation_when_allowed(
    tiny_userlm_factory: Any, tiny_userlm_model: Any
) -> None:
    model = tiny_userlm_model(tiny_userlm_factory(token_bias={END_CONVERSATION: 6.0}), min_turns_before_end=0)
    ended = 0
    for seed in range(4):
        output, call = await model.api.generate(SPOKEN, [], "none", GenerateConfig(seed=seed))
        if md(output)["end_reason"] == EndReason.END_TOKEN:
            ended += 1
            last = call.response["attempts"][-1]
            assert last["raw"].endswith(END_CONVERSATION)  # the engine stopped on the token
            assert output.completion == "" and turn_from_output(output).end_reason == EndReason.END_TOKEN
    assert ended >= 2


# ----- the guardrail loop: no fallback returns an end while ending is banned -----


async def turn(model_dir: Path, drafts: list[Any], messages: list[Any] = MESSAGES, **args: Any) -> Any:
    backends: list[FakeBackend] = []

    def make(tokenizer: Any) -> FakeBackend:
        backends.append(FakeBackend(tokenizer, drafts, end_token_id=tokenizer.get_vocab()[END_CONVERSATION]))
        return backends[0]

    model = userlm_with_backend(model_dir, make, max_retries=2, **args)
    output, call = await model.api.generate(messages, [], "none", GenerateConfig(seed=3))
    return output, call, backends[0]


async def test_exhausted_end_tokens_return_the_text_before_the_end(tiny_userlm_dir: Path) -> None:
    drafts = [scripted_draft("\nok", ended=True), scripted_draft("\nthanks that is all", ended=True)]
    output, call, backend = await turn(tiny_userlm_dir, drafts)
    assert output.completion == "thanks that is all" and md(output)["guardrails_exhausted"] is True
    assert_not_an_end(output)
    assert len(backend.requests) == 3  # no extra draft was needed
    assert "the text before its end" in call.response["attempts"][1]["decision"]


@pytest.mark.parametrize(
    "first",
    [scripted_draft("\n"), scripted_draft("\n", ended=True), scripted_draft("\n" + END_CONVERSATION)],
    ids=["empty turns", "bare end tokens", "bare spelled ends"],
)
async def test_exhausted_bare_ends_draw_one_draft_that_cannot_end(tiny_userlm_dir: Path, first: Any) -> None:
    output, call, backend = await turn(tiny_userlm_dir, [first, first, first, scripted_draft(GOOD)])
    assert output.completion == GOOD.strip() and md(output)["guardrails_exhausted"] is True
    assert_not_an_end(output)
    last = backend.requests[-1]
    assert len(backend.requests) == 4 and last.ban_end
    tokenizer = backend.tokenizer
    end_id = tokenizer.get_vocab()[END_CONVERSATION]
    spelled_first = plain_ids(tokenizer, END_CONVERSATION)[0]
    for banned in (
        [0],
        [end_id],
        [spelled_first],
    ):  # FakeBackend's stop id, the end token, the spelling's opener
        assert banned in [list(b) for b in last.first_bans]
    assert "first content position" in call.response["attempts"][-1]["decision"]


async def test_a_last_resort_draft_that_spells_the_end_is_returned_as_text(tiny_userlm_dir: Path) -> None:
    spelled = scripted_draft("\n" + END_CONVERSATION)
    output, _, _ = await turn(tiny_userlm_dir, [spelled])
    assert output.completion.replace(WORD_JOINER, "") == END_CONVERSATION
    assert_not_an_end(output)


# ----- remote: a scripted /v1/completions server, the end token vs its spelling -----

RECEIVED: list[dict[str, Any]] = []
SPELLED = ["<|", "end", "con", "vers", "ation", "|>"]
ANSWERS = {  # text, token strings (None: the server sends no logprobs)
    "token": ("\nthanks bye" + END_CONVERSATION, ["\n", "thanks", " bye", END_CONVERSATION]),
    "spelled": ("\nthanks bye" + END_CONVERSATION, ["\n", "thanks", " bye", *SPELLED]),
    "both": (
        f"\nsee {END_CONVERSATION} then bye{END_CONVERSATION} and more",
        ["\n", "see", " ", *SPELLED, " then", " bye", END_CONVERSATION, " and", " more"],
    ),
    "silent": ("\nthanks bye" + END_CONVERSATION, None),
    "opener": ("\n" + END_CONVERSATION, ["\n", END_CONVERSATION]),
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def completions(request: Request) -> JSONResponse:
        body = await request.json()
        RECEIVED.append(body)
        text, tokens = ANSWERS[request.path_params["mode"]]
        logprobs = None
        if tokens is not None and body.get("logprobs") is not None:
            logprobs = {"tokens": tokens, "top_logprobs": [{t: -0.1} for t in tokens]}
        choice = {"text": text, "finish_reason": "stop", "logprobs": logprobs}
        return JSONResponse({"choices": [choice], "usage": {"completion_tokens": len(tokens or text)}})

    app = Starlette(routes=[Route("/{mode}/v1/completions", completions, methods=["POST"])])
    with app_in_thread(app) as url:
        yield url


def remote(url: str, tokenizer: Path, **args: Any) -> Any:
    defaults = {"connect_retries": 0, "timeout": 30, "first_token_filter": False, "max_retries": 1}
    return get_model(
        "userlm/tiny", base_url=url, tokenizer=str(tokenizer), memoize=False, **{**defaults, **args}
    )


async def remote_turn(model: Any, messages: list[Any] = SPOKEN) -> tuple[Any, Any]:
    RECEIVED.clear()
    return await model.api.generate(messages, [], "none", GenerateConfig(seed=1))


async def test_a_server_s_end_token_ends_and_its_spelling_does_not(
    upstream: str, tiny_userlm_dir: Path
) -> None:
    allowed = {"min_turns_before_end": 0, "min_words": 0}
    output, call = await remote_turn(remote(f"{upstream}/token/v1", tiny_userlm_dir, **allowed))
    assert md(output)["end_reason"] == EndReason.END_TOKEN and md(output)["text_before_end"] == "thanks bye"
    assert RECEIVED[0]["logprobs"] == 0  # asked for the token strings only
    assert call.response["attempts"][0]["http_calls"][0]["end_token_at"] == 3
    output, call = await remote_turn(remote(f"{upstream}/spelled/v1", tiny_userlm_dir, **allowed))
    assert output.completion.replace(WORD_JOINER, "") == "thanks bye" + END_CONVERSATION
    assert_not_an_end(output)
    assert call.response["attempts"][0]["http_calls"][0]["end_token_at"] is None
    # a spelled copy before the real token is skipped: the text before the end keeps it (defused)
    output, _ = await remote_turn(remote(f"{upstream}/both/v1", tiny_userlm_dir, **allowed))
    assert md(output)["end_reason"] == EndReason.END_TOKEN
    assert md(output)["text_before_end"].replace(WORD_JOINER, "") == f"see {END_CONVERSATION} then bye"


async def test_an_end_token_at_the_first_content_position_ends_in_the_head_call(
    upstream: str, tiny_userlm_dir: Path
) -> None:
    model = remote(f"{upstream}/opener/v1", tiny_userlm_dir, first_token_filter=True, min_turns_before_end=0)
    output, call = await remote_turn(model)
    assert md(output)["end_reason"] == EndReason.END_TOKEN
    assert [c["call"] for c in call.response["attempts"][0]["http_calls"]] == ["head"]  # no continuation


async def test_while_ending_is_banned_no_server_answer_ends_the_conversation(
    upstream: str, tiny_userlm_dir: Path
) -> None:
    for mode in ("token", "spelled", "silent"):  # even a server that ignored the ban and drew the token
        output, call = await remote_turn(remote(f"{upstream}/{mode}/v1", tiny_userlm_dir, min_words=0))
        assert_not_an_end(output)
        assert output.completion == "thanks bye" and md(output)["guardrails_exhausted"] is True
        assert all("logprobs" not in body for body in RECEIVED)  # nothing to ask: any end string is rejected
        assert all(r["reason"] == RejectReason.EARLY_END.value for r in md(output)["rejected"])
        assert "ending banned" in call.response["attempts"][0]["end_detection"]


async def test_a_server_without_token_strings_degrades_to_text_and_says_so(
    upstream: str, tiny_userlm_dir: Path
) -> None:
    allowed = {"min_turns_before_end": 0, "min_words": 0}
    output, call = await remote_turn(remote(f"{upstream}/silent/v1", tiny_userlm_dir, **allowed))
    assert md(output)["end_reason"] == EndReason.END_TOKEN  # the documented degradation: only while allowed
    assert "the server sent no token strings" in call.response["attempts"][0]["end_detection"]
    output, call = await remote_turn(
        remote(f"{upstream}/spelled/v1", tiny_userlm_dir, end_detection="text", **allowed)
    )
    assert md(output)["end_reason"] == EndReason.END_TOKEN and "logprobs" not in RECEIVED[0]
    assert "-M end_detection=text" in call.response["attempts"][0]["end_detection"]
