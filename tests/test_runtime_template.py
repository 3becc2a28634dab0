"""UserLM's prompt contract, output parsing and the torch-free guardrail checks."""

from __future__ import annotations

import pytest
from inspect_ai.model import (
    ChatMessageAssistant,
    ChatMessageSystem,
    ChatMessageTool,
    ChatMessageUser,
    ContentText,
)
from transformers import AutoTokenizer

from userlm_plugin.errors import IntentError
from userlm_plugin.runtime.guardrails import (
    DraftContext,
    GuardrailConfig,
    best_rejected,
    check_draft,
    first_token_ban_sequences,
    whitespace_token_ids,
)
from userlm_plugin.runtime.template import WORD_JOINER, conversation_from_messages, parse_turn, render_prompt
from userlm_plugin.turns import END_CONVERSATION, EndReason, Rejection, RejectReason

PAPER_PROMPT = (  # docs/userlm.md#the-chat-template-contract
    "<|start_header_id|>system<|end_header_id|>\nINTENT<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\nfirst<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\nreply<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>"
)
MESSAGES = [
    ChatMessageSystem(content="INTENT"),
    ChatMessageUser(content="first"),
    ChatMessageAssistant(content="reply"),
]


def test_userlm_template_renders_paper_prompt_with_real_roles(tiny_userlm_dir) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_userlm_dir, local_files_only=True)
    prompt, mode = render_prompt(tokenizer, conversation_from_messages(MESSAGES))
    assert (prompt, mode) == (PAPER_PROMPT, "native")
    assert tokenizer.bos_token not in prompt


def test_generic_template_gets_a_user_turn_opened_not_assistant(tiny_userlm_factory) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_userlm_factory(flavour="llama3"), local_files_only=True)
    prompt, mode = render_prompt(tokenizer, conversation_from_messages(MESSAGES))
    assert mode == "opened"
    assert prompt.endswith("reply<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n")
    assert prompt.count("<|begin_of_text|>") == 1


def test_conversation_drops_tools_coalesces_and_keeps_roles() -> None:
    conv = conversation_from_messages(
        [
            ChatMessageSystem(content=" INTENT "),
            ChatMessageUser(content="a"),
            ChatMessageUser(content="b"),
            ChatMessageAssistant(content=""),
            ChatMessageTool(content="tool output", tool_call_id="1"),
            ChatMessageAssistant(content="answer"),
            ChatMessageSystem(content="assistant-side system prompt"),
        ]
    )
    assert conv.intent == "INTENT"
    assert conv.turns == [{"role": "user", "content": "a\n\nb"}, {"role": "assistant", "content": "answer"}]


@pytest.mark.parametrize(
    "messages, match",
    [
        ([], "no messages"),
        ([ChatMessageUser(content="hi")], "role 'user'"),
        ([ChatMessageSystem(content=[ContentText(text="intent")])], "must be|to be a str"),
        ([ChatMessageSystem(content="  ")], "empty intent"),
    ],
)
def test_bad_intent_is_a_clear_error(messages, match) -> None:
    with pytest.raises(IntentError, match=match):
        conversation_from_messages(messages)


def test_parse_turn() -> None:
    assert parse_turn("\nmake it faster please") == parse_turn("make it faster please")
    assert parse_turn("\nmake it faster").end_reason is None
    ended = parse_turn("\nthanks!", ended=True)  # the backend drew the end token's id after "thanks!"
    assert (ended.text, ended.end_reason, ended.text_before_end) == ("", EndReason.END_TOKEN, "thanks!")
    assert parse_turn("\n  \n").end_reason == EndReason.EMPTY_TURN
    # the end string spelled in ordinary tokens is text: not an end, flagged, and defused in what is returned
    spelled = parse_turn("\nthanks!" + END_CONVERSATION + "assistant\nYou're welcome")
    assert spelled.end_reason is None and spelled.spelled_end and spelled.text_before_end == "thanks!"
    assert END_CONVERSATION not in spelled.text and spelled.text.replace(WORD_JOINER, "").startswith(
        "thanks!" + END_CONVERSATION
    )
    assert parse_turn(END_CONVERSATION.upper()).spelled_end is False  # another case: not the end string...
    assert (
        END_CONVERSATION.upper() not in parse_turn(END_CONVERSATION.upper()).text
    )  # ...but defused all the same


def test_guardrail_config_defaults_are_the_papers() -> None:
    g = GuardrailConfig()
    assert (g.min_words, g.max_words, g.first_token_filter, g.repetition_filter, g.length_filter) == (
        3,
        25,
        True,
        True,
        True,
    )
    assert set(g.banned_first_words) == {"I", "You", "Here", "i", "you", "here"}
    assert not g.end_allowed(100)  # None: banned always
    assert GuardrailConfig(min_turns_before_end=0).end_allowed(0)
    assert not GuardrailConfig(min_turns_before_end=2).end_allowed(1)
    assert GuardrailConfig(min_turns_before_end=2).end_allowed(2)
    with pytest.raises(ValueError, match="min_words"):
        GuardrailConfig(min_words=10, max_words=5)
    with pytest.raises(ValueError, match="Unknown guardrail setting"):
        g.merged({"max_wordz": 3})
    assert g.merged({"max_words": 40}).max_words == 40


def test_check_draft_length_and_repetition() -> None:
    ctx = DraftContext(
        intent="You are a user who wants a regex",
        user_turns=["give me a regex please"],
        assistant_turns=["Here is a regex that matches every json key in the output file"],
    )
    g = GuardrailConfig()
    assert check_draft("too short", ctx, g).reason == RejectReason.TOO_SHORT
    assert check_draft(" ".join(["word"] * 26), ctx, g).reason == RejectReason.TOO_LONG
    assert check_draft("  YOU are a user  who wants a REGEX ", ctx, g).reason == RejectReason.REPEATS_INTENT
    assert check_draft("Give me a regex\nplease", ctx, g).reason == RejectReason.REPEATS_USER_TURN
    # an 8+ word verbatim span of an assistant turn is an echo; a short common phrase is not
    assert check_draft("regex that matches every json key in the output", ctx, g).reason == (
        RejectReason.ECHOES_ASSISTANT
    )
    assert check_draft("what about the json key", ctx, g) is None
    assert check_draft("too short", ctx, GuardrailConfig(length_filter=False)) is None
    assert check_draft("give me a regex please", ctx, GuardrailConfig(repetition_filter=False)) is None


def test_best_rejected_prefers_length_misses_closest_to_range() -> None:
    g = GuardrailConfig()
    rejected = [
        Rejection(text="x", reason=RejectReason.REPEATS_INTENT),
        Rejection(text=" ".join(["w"] * 40), reason=RejectReason.TOO_LONG),
        Rejection(text=" ".join(["w"] * 27), reason=RejectReason.TOO_LONG),
        Rejection(text="", reason=RejectReason.EARLY_END),
    ]
    assert best_rejected(rejected, g) == 2


def test_token_sets(tiny_userlm_dir) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_userlm_dir, local_files_only=True)
    seqs = first_token_ban_sequences(tokenizer, ["I", "You", "Here"])
    variants = [v for w in ["I", "You", "Here"] for v in (w, " " + w)]
    assert seqs == [tokenizer.encode(v, add_special_tokens=False) for v in variants]
    ws = whitespace_token_ids(tokenizer)
    assert tokenizer.encode("\n", add_special_tokens=False)[0] in ws
    assert tokenizer.encode("I", add_special_tokens=False)[0] not in ws
