"""Long conversations fit `max_length` as windows that keep every user turn and the end turn (train/windows.py), each
window rendered exactly as the runtime renders it; what could not be kept is counted, never silent."""

from __future__ import annotations

from typing import Any

import pytest
from tiny_llama import build_tokenizer

from userlm_plugin.runtime.template import UserLMInput, render_prompt_ids
from userlm_plugin.train.conversations import ChatRecord, parse_record
from userlm_plugin.train.flip import flip_record
from userlm_plugin.train.tokens import prepare_tokenizer
from userlm_plugin.train.windows import fit_examples, window_bounds, window_record

INTENT = "You are a user chatting with an assistant language model to fix a failing unit test"
LONG_REPLY = " ".join(["the test expects a sorted list"] * 12)  # ~80 tokens


@pytest.fixture(scope="module", params=["userlm", "chatml"])
def tokenizer(request: pytest.FixtureRequest) -> Any:
    """A base tokenizer of each layout (UserLM's template / ChatML's own), prepared as `train sft` prepares it."""
    tok = build_tokenizer(flavour=request.param, chat_template=request.param == "chatml", end_token=False)
    prepare_tokenizer(tok)
    return tok


def conversation(turns: int, reply: str = LONG_REPLY, id: str = "c") -> ChatRecord:
    messages = []
    for k in range(turns):
        messages += [
            {"role": "user", "content": f"question {k} about my code"},
            {"role": "assistant", "content": f"{reply} {k}"},
        ]
    return parse_record({"id": id, "intent": INTENT, "messages": messages})[0]


def loss_texts(tokenizer: Any, examples: list[Any]) -> list[str]:
    """The text of every loss-carrying span, in order (each user turn, then the end turn)."""
    out = []
    for example in examples:
        for span in example.spans:
            out.append(tokenizer.decode(example.input_ids[span.start : span.end]).strip())
    return out


def test_short_conversations_are_one_sequence_untouched(tokenizer: Any) -> None:
    rec = conversation(2)
    fitted = fit_examples(tokenizer, [rec], 4096)
    assert fitted.examples == [flip_record(tokenizer, rec)]
    assert fitted.report.longer == 0 and "nothing cut" in fitted.report.line()


def test_windows_keep_every_user_turn_and_the_end_turn(tokenizer: Any) -> None:
    rec = conversation(8)
    whole = flip_record(tokenizer, rec)
    max_length = len(whole.input_ids) // 3
    fitted = fit_examples(tokenizer, [rec], max_length)
    assert len(fitted.examples) >= 3 and all(len(e.input_ids) <= max_length for e in fitted.examples)
    # the same loss-carrying tokens as the whole conversation, each exactly once, in order
    assert loss_texts(tokenizer, fitted.examples) == loss_texts(tokenizer, [whole])
    assert sum(e.loss_tokens for e in fitted.examples) == whole.loss_tokens
    assert fitted.examples[-1].spans[-1].is_end and not any(
        s.is_end for e in fitted.examples[:-1] for s in e.spans
    )
    report = fitted.report
    assert (report.user_turns, report.end_turns, report.user_turns_cut, report.end_turns_cut) == (8, 1, 0, 0)
    assert report.longer == 1 and report.sequences == len(fitted.examples)
    assert report.shortened_history == sum(len(e.spans) for e in fitted.examples[1:])  # minus the end turn


def test_each_window_is_what_the_runtime_renders_and_answers_a_reply(tokenizer: Any) -> None:
    rec = conversation(6)
    whole = flip_record(tokenizer, rec)
    max_length = len(whole.input_ids) // 2
    fitted = fit_examples(tokenizer, [rec], max_length)
    bounds = window_bounds(whole, max_length)
    assert len(bounds) == len(fitted.examples) > 1
    for k, (example, (first, end)) in enumerate(zip(fitted.examples, bounds, strict=True)):
        window = window_record(rec, first, end, with_end_turn=k == len(bounds) - 1)
        # a later window opens with the reply its first user turn answers, never with a user turn
        assert window.turns[0]["role"] == ("user" if k == 0 else "assistant")
        users = [i for i, t in enumerate(window.turns) if t["role"] == "user"] + [len(window.turns)]
        for span, position in zip(example.spans, users, strict=False):
            # the prompt before every trained turn is exactly what the runtime renders for the window
            runtime = render_prompt_ids(
                tokenizer, UserLMInput(intent=INTENT, turns=list(window.turns[:position]))
            )
            assert example.input_ids[: span.start] == runtime[1]


def test_a_reply_too_long_for_any_window_keeps_its_end(tokenizer: Any) -> None:
    document = " ".join(f"line {k} of a very long document" for k in range(60))  # one reply over max_length
    rec = conversation(3, reply=document)
    fitted = fit_examples(tokenizer, [rec], 120)
    assert all(len(e.input_ids) <= 120 for e in fitted.examples)
    report = fitted.report
    assert report.replies_shortened >= 1 and (report.user_turns_cut, report.end_turns_cut) == (0, 0)
    last = tokenizer.decode(fitted.examples[-1].input_ids)
    assert "line 59 of a very long document 2" in last and "line 0 of" not in last  # the reply's end is kept
    assert "long replies kept from their end" in report.line() and "raise --max-length" not in report.line()


def test_a_user_turn_longer_than_max_length_is_cut_and_counted(tokenizer: Any) -> None:
    messages = [
        {"role": "user", "content": "short question"},
        {"role": "assistant", "content": "short answer"},
        {"role": "user", "content": " ".join(["my pasted log line"] * 80)},  # the user turn alone is too long
        {"role": "assistant", "content": "I see"},
    ]
    rec = parse_record({"id": "paste", "intent": INTENT, "messages": messages})[0]
    fitted = fit_examples(tokenizer, [rec], 96)
    assert all(len(e.input_ids) <= 96 for e in fitted.examples)
    assert fitted.report.user_turns_cut == 1 and fitted.report.end_turns_cut == 0
    assert "1 of 2 user turns" in fitted.report.line() and "raise --max-length" in fitted.report.line()


def test_overflow_cut_keeps_the_start_and_says_what_it_lost(tokenizer: Any) -> None:
    rec = conversation(8)
    whole = flip_record(tokenizer, rec)
    fitted = fit_examples(tokenizer, [rec], len(whole.input_ids) // 3, overflow="cut")
    (example,) = fitted.examples
    assert example.input_ids == whole.input_ids[: len(whole.input_ids) // 3]
    assert fitted.report.end_turns_cut == 1 and fitted.report.user_turns_cut >= 5
    assert "cut at max_length" in fitted.report.line()


def test_windows_for_a_model_without_the_end_token(tokenizer: Any) -> None:
    rec = conversation(6)
    whole = flip_record(tokenizer, rec, end_turn=False)
    fitted = fit_examples(tokenizer, [rec], len(whole.input_ids) // 2, end_turn=False)
    assert loss_texts(tokenizer, fitted.examples) == loss_texts(tokenizer, [whole])
    assert fitted.report.end_turns == 0 and fitted.report.user_turns_cut == 0
