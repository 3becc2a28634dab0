"""UserLM-8b's prompt contract and output parsing (paper.md §1.3, §1.6).

Input: the intent as the system message, then the conversation with its REAL roles (user = the simulated user's
earlier turns, assistant = the model under test); no role flipping. The prompt must end by opening a *user* turn:
UserLM's own template always appends `<|start_header_id|>user<|end_header_id|>` (no newline), so every completion
starts with `\\n`, which we strip. A generic template (Llama-3-Instruct, ChatML) opens an *assistant* header and
the model then writes the assistant's side; for those we open a user turn ourselves (`template_mode="opened"`).

Output: generation stops on every eos id (`<|eot_id|>` and `<|end_of_text|>`: UserLM's configs disagree);
`<|endconversation|>` is matched as text (it is a non-special added token and survives `skip_special_tokens`);
an empty turn, or the token, means the user ended the conversation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from inspect_ai.model import ChatMessage

from ..errors import IntentError
from ..turns import END_CONVERSATION, EndReason

_SENTINEL = "USERLMSENTINELQXZ"
TemplateMode = Literal["native", "opened"]
EXTRA_STOP_TOKENS = ("<|eot_id|>", "<|end_of_text|>", "<|eom_id|>")
"""Llama-3 end tokens stopped on whenever the vocabulary has them, whatever the configs say (paper.md §1.2)."""


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
    same-role turns are coalesced and empty ones dropped (UserLM was trained on alternating turns, paper.md §1.3).
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
    eos, then the `EXTRA_STOP_TOKENS` in the vocabulary (UserLM's configs disagree on eos: stop on all, paper.md
    §1.2). Empty when none is known; the caller raises its own error."""
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


def render_prompt(tokenizer: Any, conversation: UserLMInput) -> tuple[str, TemplateMode]:
    """The exact prompt text, ending by opening a user turn."""
    mode = template_mode(tokenizer)
    chat = conversation.chat()
    if mode == "native":
        return tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True), mode
    # Open a user turn with the template's own user header: render a sentinel user message and cut before it.
    probe = [*chat, {"role": "user", "content": _SENTINEL}]
    rendered = tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=False)
    return rendered.split(_SENTINEL, 1)[0], mode


def render_prompt_ids(tokenizer: Any, conversation: UserLMInput) -> tuple[str, list[int], TemplateMode]:
    """The prompt as text and as the token ids the model is given (`render_prompt`, encoded without adding
    special tokens: the template already has whatever it needs)."""
    prompt, mode = render_prompt(tokenizer, conversation)
    return prompt, list(tokenizer.encode(prompt, add_special_tokens=False)), mode


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
