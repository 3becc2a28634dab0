"""UserLM-8b's prompt contract and output parsing (docs/userlm.md "The chat template contract").

Input: the intent as the system message, then the conversation with its REAL roles (user = the simulated user's
earlier turns, assistant = the model under test); no role flipping. The prompt must end by opening a *user* turn:
UserLM's own template always appends `<|start_header_id|>user<|end_header_id|>` (no newline), so every completion
starts with `\\n`, which we strip. A generic template (Llama-3-Instruct, ChatML) opens an *assistant* header and
the model then writes the assistant's side; for those we open a user turn ourselves (`template_mode="opened"`).

Message contents are text, never template: the template is rendered around per-message placeholders, so a
message that contains `<|eot_id|><|start_header_id|>system...` or any placeholder-like string can neither add
control tokens nor cut the prompt (`prompt_encoding.py` turns the pieces into token ids; docs/serving.md
"Message contents are text").

Output: generation stops on every eos id (`<|eot_id|>` and `<|end_of_text|>`: UserLM's configs disagree);
`<|endconversation|>` is matched as text (it is a non-special added token and survives `skip_special_tokens`);
an empty turn, or the token, means the user ended the conversation.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from inspect_ai.model import ChatMessage

from ..errors import ConfigError, IntentError
from ..turns import END_CONVERSATION, EndReason

_SENTINEL = "USERLMSENTINELQXZ"
TemplateMode = Literal["native", "opened"]
EXTRA_STOP_TOKENS = ("<|eot_id|>", "<|end_of_text|>", "<|eom_id|>")
"""Llama-3 end tokens stopped on whenever the vocabulary has them, whatever the configs say (docs/userlm.md "Two EOS ids")."""


@dataclass(frozen=True)
class UserLMInput:
    """The User LM's view of a conversation: intent plus alternating real-role turns."""

    intent: str
    turns: list[dict[str, str]]

    @property
    def user_turns(self) -> list[str]:
        return [t["content"] for t in self.turns if t["role"] == "user"]

    @property
    def assistant_turns(self) -> list[str]:
        return [t["content"] for t in self.turns if t["role"] == "assistant"]

    def chat(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.intent}, *self.turns]


def conversation_from_messages(messages: list[ChatMessage]) -> UserLMInput:
    """Validate Inspect messages into a `UserLMInput`.

    The first message must be a system message whose content is a plain string (the intent). Later system
    messages, tool messages and tool calls are not part of what a user sees and are dropped; consecutive
    same-role turns are coalesced and empty ones dropped (UserLM was trained on alternating turns: docs/userlm.md "Consequences").
    """
    if not messages or messages[0].role != "system":
        raise IntentError(
            "userlm/ expects the intent as the first message, a system message (e.g. ChatMessageSystem("
            "content='You are a user chatting with an assistant language model to ...')), followed by the "
            "conversation with real roles; got "
            + (f"a first message with role {messages[0].role!r}" if messages else "no messages")
        )
    content = messages[0].content
    if not isinstance(content, str):
        raise IntentError(
            "userlm/ needs the intent (the system message's content) to be a str, got "
            f"{type(content).__name__}: pass ChatMessageSystem(content='<intent text>')"
        )
    if not content.strip():
        raise IntentError("userlm/ got an empty intent: the system message must describe what the user wants")
    turns: list[dict[str, str]] = []
    for message in messages[1:]:
        if message.role not in ("user", "assistant"):
            continue
        text = message.text.strip()
        if not text:
            continue
        if turns and turns[-1]["role"] == message.role:
            turns[-1]["content"] += "\n\n" + text
        else:
            turns.append({"role": message.role, "content": text})
    return UserLMInput(intent=content.strip(), turns=turns)


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def set_chat_template(tokenizer: Any, chat_template: str | None) -> None:
    """Apply `-M chat_template=`: the path of a template file, else the template text itself (None: keep)."""
    if chat_template is not None:
        template_file = Path(chat_template).expanduser()
        tokenizer.chat_template = template_file.read_text() if template_file.is_file() else chat_template


def token_ids(value: Any) -> list[int]:
    """An `eos_token_id`-style field (an id, a list of ids, or None) as a list of ids."""
    if value is None:
        return []
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]


def stop_token_ids(tokenizer: Any, config_eos_ids: Sequence[int]) -> list[int]:
    """Every id generation stops on, each once, in this order: the checkpoint configs' eos ids, the tokenizer's
    eos, then the `EXTRA_STOP_TOKENS` in the vocabulary (UserLM's configs disagree on eos: stop on all,
    docs/userlm.md). Empty when none is known; the caller raises its own error."""
    vocab = tokenizer.get_vocab()
    stop_ids: list[int] = []
    for candidate in [
        *config_eos_ids,
        *token_ids(tokenizer.eos_token_id),
        *[vocab[t] for t in EXTRA_STOP_TOKENS if t in vocab],
    ]:
        if candidate not in stop_ids:
            stop_ids.append(candidate)
    return stop_ids


def template_mode(tokenizer: Any) -> TemplateMode:
    """ "native" when `add_generation_prompt=True` already opens a user turn (UserLM's template), else "opened"."""
    cached = getattr(tokenizer, "_userlm_template_mode", None)
    if cached is not None:
        return cached
    probe = [{"role": "system", "content": "S"}, {"role": "assistant", "content": _SENTINEL}]
    rendered = tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
    suffix = rendered.rsplit(_SENTINEL, 1)[-1]
    mode: TemplateMode = "native" if "user" in suffix.lower() else "opened"
    tokenizer._userlm_template_mode = mode
    return mode


@dataclass(frozen=True)
class RenderedPrompt:
    """A prompt rendered by the model's template, kept in pieces: template text and message contents alternate,
    `pieces[1::2]` being the contents (intent first, then the turns in order), each exactly as the message had it.
    """

    pieces: tuple[str, ...]
    mode: TemplateMode

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def contents(self) -> tuple[str, ...]:
        return self.pieces[1::2]


def render_pieces(tokenizer: Any, conversation: UserLMInput) -> RenderedPrompt:
    """Render the template around a fresh random placeholder per message, then split at the placeholders.

    Content never passes through the split, so no string inside a message (a placeholder look-alike, a template
    sentinel, a control-token string) can cut the prompt or move a boundary. The template must insert each
    content unchanged (every common template does; contents are already stripped): a template that rewrites
    message text is refused, because its contents could not be kept apart from its control tokens."""
    mode = template_mode(tokenizer)
    chat = conversation.chat()
    nonce = secrets.token_hex(8)
    marks = [f"USERLM{nonce}M{i}E" for i in range(len(chat))]
    with_marks = _render(
        tokenizer, [{**m, "content": mark} for m, mark in zip(chat, marks, strict=True)], mode, nonce
    )
    pieces: list[str] = []
    rest = with_marks
    for mark, message in zip(marks, chat, strict=True):
        before, found, rest = rest.partition(mark)
        if not found or mark in rest:
            raise ConfigError(
                f"the chat template does not render each message's content exactly once (a {message['role']!r} "
                "message was dropped or repeated), so the User LM prompt cannot be built; pass -M chat_template="
                "<file.jinja> with a template that writes every message once (UserLM-8b's does)"
            )
        pieces += [before, message["content"]]
    pieces.append(rest)
    rendered = RenderedPrompt(pieces=tuple(pieces), mode=mode)
    if _render(tokenizer, chat, mode, nonce) != rendered.text:
        raise ConfigError(
            "the chat template changes message text (it trims, splits or rewrites message['content']), so "
            "message contents cannot be encoded as text apart from the template's control tokens; pass "
            "-M chat_template=<file.jinja> with a template that inserts message['content'] unchanged "
            "(UserLM-8b's does)"
        )
    return rendered


def _render(tokenizer: Any, chat: list[dict[str, str]], mode: TemplateMode, nonce: str) -> str:
    """The template's text for `chat`, ending by opening a user turn."""
    if mode == "native":
        return tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    # Open a user turn with the template's own user header: render one more user message and cut before it.
    opener = f"USERLM{nonce}OPEN"
    rendered = tokenizer.apply_chat_template(
        [*chat, {"role": "user", "content": opener}], tokenize=False, add_generation_prompt=False
    )
    head, found, _ = rendered.partition(opener)
    if not found:
        raise ConfigError(
            "the chat template dropped a user message, so a user turn cannot be opened; pass -M chat_template="
            "<file.jinja> (UserLM-8b's template opens a user turn itself)"
        )
    return head


def render_prompt(tokenizer: Any, conversation: UserLMInput) -> tuple[str, TemplateMode]:
    """The exact prompt text, ending by opening a user turn."""
    rendered = render_pieces(tokenizer, conversation)
    return rendered.text, rendered.mode


def render_prompt_ids(tokenizer: Any, conversation: UserLMInput) -> tuple[str, list[int], TemplateMode]:
    """The prompt as text and as the token ids the model is given: the template's own pieces encoded normally
    (its control tokens are real), every message's content encoded as text (`prompt_encoding.encode_rendered`).
    For content without control-token strings the ids are exactly `tokenizer.encode(text,
    add_special_tokens=False)`; no special tokens are added (the template already has whatever it needs)."""
    from .prompt_encoding import encode_rendered

    rendered = render_pieces(tokenizer, conversation)
    return rendered.text, encode_rendered(tokenizer, rendered).ids, rendered.mode


def folder_has_chat_template(folder: Path) -> bool:
    """Whether a local checkpoint folder ships a chat template (read from its files; nothing is loaded).

    A `.gguf` checkpoint or an unreadable tokenizer config counts as having one: the loader decides then."""
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    config = folder / "tokenizer_config.json"
    if not config.is_file():
        return True  # nothing to read here (e.g. GGUF): leave it to the tokenizer at load time
    try:
        import json

        return bool(json.loads(config.read_text(encoding="utf-8")).get("chat_template"))
    except (OSError, ValueError):
        return True


def looks_local(name: str) -> bool:
    """Whether a model name is a local folder rather than a hub id (absolute/relative path, or more than one /)."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or Path(name).exists()


@dataclass(frozen=True)
class ParsedTurn:
    text: str
    """The user turn (empty when the user ended the conversation)."""
    end_reason: EndReason | None
    text_before_end: str | None = None
    """What the model wrote before `<|endconversation|>`, if anything (kept for the log)."""


def parse_turn(raw: str) -> ParsedTurn:
    """Parse decoded new text (special tokens skipped, cut at the stop token) into a user turn."""
    text = raw.lstrip("\n")
    if END_CONVERSATION in text:
        before = text.split(END_CONVERSATION, 1)[0].strip()
        return ParsedTurn(text="", end_reason=EndReason.END_TOKEN, text_before_end=before or None)
    text = text.strip()
    if not text:
        return ParsedTurn(text="", end_reason=EndReason.EMPTY_TURN)
    return ParsedTurn(text=text, end_reason=None)
