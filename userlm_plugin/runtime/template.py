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

Output: generation stops on every eos id (`<|eot_id|>` and `<|end_of_text|>`: UserLM's configs disagree) and
on the `<|endconversation|>` token. The end is decided on token ids, never on text (`parse_turn(text, ended=...)`:
the backend says whether the end token's id was generated): the characters `<|endconversation|>` written in
ordinary tokens are text, and every copy of them in a returned turn is defused (`defuse_end`), so the literal
string appears in the plugin's output only as the end signal. An empty turn, or the token, means the user ended
the conversation (docs/termination.md "The end is a token").
"""

from __future__ import annotations

import re
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from inspect_ai.model import ChatMessage

from ..errors import ConfigError, IntentError
from ..turns import END_CONVERSATION, EndReason

_SENTINEL = "USERLMSENTINELQXZ"
TemplateMode = Literal["native", "opened"]
WORD_JOINER = "\u2060"
"""Invisible, zero-width: breaks a control-token string in text (prompts sent to a server; defused output)."""
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
    runs: list[tuple[str, list[str]]] = []  # (role, texts): joined once, so coalescing stays linear
    for message in messages[1:]:
        if message.role not in ("user", "assistant"):
            continue
        text = message.text.strip()
        if not text:
            continue
        if runs and runs[-1][0] == message.role:
            runs[-1][1].append(text)
        else:
            runs.append((message.role, [text]))
    turns = [{"role": role, "content": "\n\n".join(texts)} for role, texts in runs]
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
    with_marks = _render(
        tokenizer, [{**m, "content": f"USERLM{nonce}M{i}E"} for i, m in enumerate(chat)], mode, nonce
    )
    # one pass over the text (linear in its length, whatever the number of messages): the marks must appear
    # exactly once each, in order
    found = list(re.finditer(f"USERLM{nonce}M([0-9]+)E", with_marks))
    if [int(m.group(1)) for m in found] != list(range(len(chat))):
        seen = Counter(int(m.group(1)) for m in found)
        missing = next((i for i in range(len(chat)) if seen[i] != 1), len(chat) - 1)
        raise ConfigError(
            f"the chat template does not render each message's content exactly once (a {chat[missing]['role']!r} "
            "message was dropped or repeated), so the User LM prompt cannot be built; pass -M chat_template="
            "<file.jinja> with a template that writes every message once (UserLM-8b's does)"
        )
    pieces: list[str] = []
    at = 0
    for match, message in zip(found, chat, strict=True):
        pieces += [with_marks[at : match.start()], message["content"]]
        at = match.end()
    pieces.append(with_marks[at:])
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
    """The user turn (empty when the user ended the conversation), every spelled end string defused."""
    end_reason: EndReason | None
    text_before_end: str | None = None
    """What the model wrote before `<|endconversation|>` (the token, or the spelled string), if anything."""
    spelled_end: bool = False
    """The text holds the characters `<|endconversation|>` written in ordinary tokens (not the end token): just
    text, but an end attempt while ending is banned (drafting.py)."""


_END_TEXT = re.compile(re.escape(END_CONVERSATION), re.IGNORECASE)


def defuse_end(text: str) -> str:
    """`text` with every copy of the end string (any case) broken by an invisible WORD JOINER after its first
    character: it reads the same, but no client or parser (ours included) can take it for the end signal."""
    if "<|" not in text:
        return text
    return _END_TEXT.sub(lambda m: m.group(0)[0] + WORD_JOINER + m.group(0)[1:], text)


def parse_turn(text: str, *, ended: bool = False) -> ParsedTurn:
    """Parse a draft's decoded text into a user turn.

    `ended`: the backend generated the end token's id (`Draft.ended`); `text` is then what came before it. The
    end is never read from the text: a spelled `<|endconversation|>` is flagged (`spelled_end`) and defused."""
    text = text.lstrip("\n")
    if ended:
        before = text.strip()
        return ParsedTurn(text="", end_reason=EndReason.END_TOKEN, text_before_end=defuse_end(before) or None)
    text = text.strip()
    if not text:
        return ParsedTurn(text="", end_reason=EndReason.EMPTY_TURN)
    spelled = text.find(END_CONVERSATION)
    if spelled < 0:
        return ParsedTurn(text=defuse_end(text), end_reason=None)
    before = defuse_end(text[:spelled].strip())
    return ParsedTurn(
        text=defuse_end(text), end_reason=None, text_before_end=before or None, spelled_end=True
    )
