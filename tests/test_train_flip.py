"""Dialogue flipping on the tiny UserLM-flavoured tokenizer: exactly which tokens carry loss (golden), and the
training sequence equals, token for token, what the `userlm/` runtime renders for every user turn."""

from __future__ import annotations

from typing import Any

import pytest
from tiny_llama import (
    CHATML_CHAT_TEMPLATE,
    LLAMA3_CHAT_TEMPLATE,
    USERLM_CHAT_TEMPLATE,
    build_tokenizer,
)

from userlm_plugin.errors import ConfigError
from userlm_plugin.runtime.template import UserLMInput, render_prompt_ids
from userlm_plugin.train.conversations import parse_record
from userlm_plugin.train.flip import (
    IGNORE,
    FlipError,
    TemplateError,
    flip_record,
    flip_records,
    show_loss_tokens,
    turn_frame,
)
from userlm_plugin.train.tokens import choose_chat_template, prepare_tokenizer, userlm_chat_template

INTENT = "You are a user chatting with an assistant language model to get a regex"


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    """A base tokenizer (no end token, no template) prepared the way `train sft` prepares it."""
    tok = build_tokenizer(chat_template=False, end_token=False)
    assert prepare_tokenizer(tok) is True  # the end token was added
    return tok


def record(*texts: str, intent: str | None = INTENT) -> Any:
    roles = ["user", "assistant"] * len(texts)
    messages = [{"role": r, "content": t} for r, t in zip(roles, texts, strict=False)]
    return parse_record({"id": "r", "intent": intent, "messages": messages})[0]


def test_golden_loss_tokens(tokenizer: Any) -> None:
    example = flip_record(tokenizer, record("need a regex", "Sure: \\w+", "thanks", "welcome"))
    loss = [
        tokenizer.decode([t])
        for t, label in zip(example.input_ids, example.labels, strict=True)
        if label != IGNORE
    ]
    assert loss == [
        "\n", "need", " a", " regex", "<|eot_id|>",  # user turn 1: lead-in newline, text, end of turn
        "\n", "t", "hanks", "<|eot_id|>",  # user turn 2
        "\n", "<|endconversation|>", "<|eot_id|>",  # the user's final turn: the end token
    ]  # fmt: skip
    assert show_loss_tokens(tokenizer, example) == (
        f"<|start_header_id|>system<|end_header_id|>\n{INTENT}<|eot_id|><|start_header_id|>user<|end_header_id|>"
        "⟦\nneed a regex<|eot_id|>⟧<|start_header_id|>assistant<|end_header_id|>\nSure: \\w+<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>⟦\nthanks<|eot_id|>⟧<|start_header_id|>assistant<|end_header_id|>"
        "\nwelcome<|eot_id|><|start_header_id|>user<|end_header_id|>⟦\n<|endconversation|><|eot_id|>⟧"
    )
    # nothing after the final end-of-turn (no dangling header), and the end token is one id
    assert example.input_ids[-1] == tokenizer.convert_tokens_to_ids("<|eot_id|>")
    assert example.loss_tokens == 12 and [s.is_end for s in example.spans] == [False, False, True]


def test_every_user_turn_follows_the_runtime_prompt_token_for_token(tokenizer: Any) -> None:
    # a control-token string typed by the user is text, never the token (runtime.template encodes content as text)
    texts = ("my <|eot_id|> literal", "A reply.", "second  question?", "Answer two", "ok", "bye")
    rec = record(*texts)
    example = flip_record(tokenizer, rec)
    turns = list(rec.turns)
    user_positions = [i for i, t in enumerate(turns) if t["role"] == "user"] + [len(turns)]
    assert len(example.spans) == len(user_positions)
    frame = turn_frame(tokenizer)
    for span, position in zip(example.spans, user_positions, strict=True):
        # exactly what userlm/ hands the model before it writes this user turn
        _, runtime_ids, mode = render_prompt_ids(
            tokenizer, UserLMInput(intent=INTENT, turns=turns[:position])
        )
        assert mode == "native" and example.input_ids[: span.start] == runtime_ids
        assert example.input_ids[span.start : span.content_start] == list(frame.lead)
    # and the label mask is exactly the spans
    mask = [label != IGNORE for label in example.labels]
    in_spans = [any(s.start <= k < s.end for s in example.spans) for k in range(len(example.input_ids))]
    assert mask == in_spans


def test_the_packaged_template_is_userlms(tokenizer: Any) -> None:
    reference = build_tokenizer()  # tiny UserLM with tests/tiny_llama.py's copy of UserLM-8b's template
    chat = [
        {"role": "system", "content": INTENT},
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
    ]
    for prompt in (True, False):
        assert tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=prompt) == (
            reference.apply_chat_template(chat, tokenize=False, add_generation_prompt=prompt)
        )
    assert reference.chat_template == USERLM_CHAT_TEMPLATE and userlm_chat_template().startswith("{#-")
    # the end token is added like UserLM's: not special, so it survives skip_special_tokens
    end_id = tokenizer.convert_tokens_to_ids("<|endconversation|>")
    assert tokenizer.decode([end_id], skip_special_tokens=True) == "<|endconversation|>"


def test_without_intent_only_the_intent_text_goes(tokenizer: Any) -> None:
    rec = record("need a regex", "Sure")
    with_intent, without = flip_record(tokenizer, rec), flip_record(tokenizer, rec, with_intent=False)
    assert show_loss_tokens(tokenizer, without) == show_loss_tokens(tokenizer, with_intent).replace(
        INTENT, ""
    )
    with pytest.raises(FlipError, match="train intents"):
        flip_record(tokenizer, record("a", "b", intent=None))


def test_generic_template_opens_the_user_turn_itself() -> None:
    tok = build_tokenizer(flavour="llama3")
    assert tok.chat_template == LLAMA3_CHAT_TEMPLATE
    example = flip_record(tok, record("need a regex", "Sure"))
    # Llama-3-Instruct puts "\n\n" in the header, so the turn's loss starts at the text
    assert "user<|end_header_id|>\n\n⟦need a regex<|eot_id|>⟧" in show_loss_tokens(tok, example)


def test_a_template_that_is_not_prefix_stable_is_one_error_naming_the_option() -> None:
    tok = build_tokenizer(chat_template=False, end_token=False)
    # renders the number of messages first: a longer conversation does not extend the shorter one's prompt
    prepare_tokenizer(tok, "{{ messages | length }}" + USERLM_CHAT_TEMPLATE)
    with pytest.raises(TemplateError, match="not prefix-stable.*--chat-template") as caught:
        flip_records(tok, [record("a b c", "d e f")] * 3)  # one error for the run, not one problem per record
    assert "the chat_template argument" in str(caught.value)


def test_a_record_the_template_renders_differently_fails_alone() -> None:
    tok = build_tokenizer(chat_template=False, end_token=False)
    # prefix-stable for short conversations (the probe), not past 6 messages: only the long record fails
    prepare_tokenizer(tok, "{% if messages | length > 6 %}X{% endif %}" + USERLM_CHAT_TEMPLATE)
    examples, problems = flip_records(tok, [record("a b c", "d e f"), record("a", "b", "c", "d", "e", "f")])
    assert len(examples) == 1 and len(problems) == 1 and "prefix-stable" in problems[0].reason


def test_a_template_without_an_end_of_turn_token_names_the_option() -> None:
    tok = build_tokenizer(chat_template=False, end_token=False)
    prepare_tokenizer(tok, "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}")
    with pytest.raises(
        TemplateError, match="no end-of-turn token.*--chat-template FILE.*--chat-template userlm"
    ):
        flip_records(tok, [record("a", "b")])


def test_chatml_models_train_with_their_own_template() -> None:
    """SmolLM2's layout: no <|eot_id|>, a template that opens an assistant turn. Its own template is kept, the
    user turn is opened the runtime's way, and a turn closes with <|im_end|> (the blocker of issue 21)."""
    tok = build_tokenizer(flavour="chatml", end_token=False)
    assert prepare_tokenizer(tok) is True and tok.chat_template == CHATML_CHAT_TEMPLATE
    rec = record("need a regex", "Sure: \\w+", "thanks", "welcome")
    example = flip_record(tok, rec)
    assert show_loss_tokens(tok, example) == (
        f"<|im_start|>system\n{INTENT}<|im_end|>\n<|im_start|>user\n⟦need a regex<|im_end|>⟧\n"
        "<|im_start|>assistant\nSure: \\w+<|im_end|>\n<|im_start|>user\n⟦thanks<|im_end|>⟧\n"
        "<|im_start|>assistant\nwelcome<|im_end|>\n<|im_start|>user\n⟦<|endconversation|><|im_end|>⟧"
    )
    frame = turn_frame(tok)
    assert frame.lead == () and frame.end_of_turn == tok.convert_tokens_to_ids("<|im_end|>")
    assert frame.end_of_turn_is_stop
    turns = list(rec.turns)
    for span, position in zip(example.spans, [0, 2, 4], strict=True):
        _, runtime_ids, mode = render_prompt_ids(tok, UserLMInput(intent=INTENT, turns=turns[:position]))
        assert mode == "opened" and example.input_ids[: span.start] == runtime_ids


def test_a_base_model_whose_eos_is_not_the_templates_end_of_turn() -> None:
    # a ChatML base (eos <|endoftext|>, e.g. Qwen2.5 base): the turn closes on the template's own <|im_end|>,
    # and `train sft` then adds it to the trained model's stop tokens
    tok = build_tokenizer(flavour="chatml", end_token=False)
    tok.eos_token = "<|endoftext|>"
    prepare_tokenizer(tok)
    frame = turn_frame(tok)
    assert frame.end_of_turn == tok.convert_tokens_to_ids("<|im_end|>") and not frame.end_of_turn_is_stop
    assert flip_record(tok, record("a b", "c")).input_ids[-1] == frame.end_of_turn


def test_which_chat_template(tmp_path: Any) -> None:
    own = build_tokenizer(flavour="llama3", end_token=False)
    assert choose_chat_template(own).text == LLAMA3_CHAT_TEMPLATE
    assert choose_chat_template(own).source == "the model's own"
    none = build_tokenizer(chat_template=False, end_token=False)
    assert choose_chat_template(none).text == userlm_chat_template()
    assert choose_chat_template(own, "userlm").text == userlm_chat_template()
    path = tmp_path / "t.jinja"
    path.write_text(USERLM_CHAT_TEMPLATE)
    assert choose_chat_template(own, str(path)).text == USERLM_CHAT_TEMPLATE
    with pytest.raises(ConfigError, match="--chat-template nope.jinja: no such file"):
        choose_chat_template(own, "nope.jinja")
    # a Llama-3-Instruct-style model keeps its own template too: "\n\n" after the header is the lead-in's context
    prepare_tokenizer(own)
    assert "user<|end_header_id|>\n\n⟦need" in show_loss_tokens(own, flip_record(own, record("need", "x")))


def test_no_end_token_in_vocabulary() -> None:
    tok = build_tokenizer(end_token=False)  # UserLM template, but a vocabulary without <|endconversation|>
    with pytest.raises(FlipError, match="no <\\|endconversation\\|> token"):
        flip_record(tok, record("a", "b"))
    assert not any(s.is_end for s in flip_record(tok, record("a", "b"), end_turn=False).spans)
