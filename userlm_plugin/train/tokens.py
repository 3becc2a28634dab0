"""Turn a base model's tokenizer and embeddings into a User LM's: `<|endconversation|>` and UserLM's template.

* `<|endconversation|>` is added as a NON-special token (UserLM-8b adds it with `special: False`, so it survives
  `skip_special_tokens=True` and the runtime detects it as text; docs/userlm.md). When the vocabulary grows, the
  new input-embedding and output rows are copied from the EOS token's, as the public reproduction of the recipe
  does: the model starts by treating "end of conversation" like "end of text" and learns the difference.
* The chat template is the base model's own when it has one (ChatML, Llama-3-Instruct, ...: the `userlm/` runtime
  opens a user turn in any template, runtime/template.py), else UserLM-8b's (templates/userlm_chat_template.jinja);
  `--chat-template FILE` (or `userlm`) overrides both. The template used for training is the one the output folder
  ships, so training and the runtime render every prompt identically and `--model-role user=userlm/<dir>` works
  with no `-M chat_template` (docs/training.md#which-chat-template).

torch/transformers are imported inside the functions that need them.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..turns import END_CONVERSATION

PAD_CANDIDATES = ("<|finetune_right_pad_id|>", "<|reserved_special_token_0|>")


USERLM_TEMPLATE_NAME = "userlm"
"""`--chat-template userlm`: the packaged UserLM-8b template, without naming its file."""


def userlm_chat_template() -> str:
    """UserLM-8b's chat template, shipped as package data (its source is in the file's header comment)."""
    return resources.files(__package__).joinpath("templates/userlm_chat_template.jinja").read_text("utf-8")


@dataclass(frozen=True)
class ChatTemplateChoice:
    """The template a training or scoring run renders with, and where it came from (for messages and the record)."""

    text: str
    source: str
    """`the model's own`, `UserLM-8b's: the model has none`, `UserLM-8b's, --chat-template userlm`, or the file."""


def read_chat_template(value: str) -> ChatTemplateChoice:
    """`--chat-template VALUE`: `userlm`, or the path of a Jinja file (a ConfigError naming the option otherwise)."""
    if value == USERLM_TEMPLATE_NAME:
        return ChatTemplateChoice(
            userlm_chat_template(), f"UserLM-8b's (--chat-template {USERLM_TEMPLATE_NAME})"
        )
    path = Path(value).expanduser()
    if path.is_file():
        return ChatTemplateChoice(path.read_text("utf-8"), f"--chat-template {value}")
    if "{{" in value or "{%" in value:  # template text passed directly (the Python API)
        return ChatTemplateChoice(value, "the chat_template argument")
    raise ConfigError(
        f"--chat-template {value}: no such file; pass a Jinja template file, or `{USERLM_TEMPLATE_NAME}` for "
        "UserLM-8b's template"
    )


def choose_chat_template(tokenizer: Any, chat_template: str | None = None) -> ChatTemplateChoice:
    """The template for training: `chat_template` (see `read_chat_template`) when given, else the model's own,
    else UserLM-8b's. Does not change the tokenizer."""
    if chat_template is not None:
        return read_chat_template(chat_template)
    own = getattr(tokenizer, "chat_template", None)
    if isinstance(own, str) and own.strip():
        return ChatTemplateChoice(own, "the model's own")
    return ChatTemplateChoice(userlm_chat_template(), "UserLM-8b's: the model has none")


@dataclass(frozen=True)
class TokenSetup:
    end_token_id: int
    added_end_token: bool
    """True when `<|endconversation|>` was new to the vocabulary (its rows were initialised from EOS)."""
    init_from_id: int | None
    """The token whose embedding rows the new one copied (the EOS token), when it was added."""
    pad_token_id: int


def prepare_tokenizer(tokenizer: Any, chat_template: str | None = None) -> bool:
    """Add `<|endconversation|>` (non-special) and set the chat template (`choose_chat_template`: the given one,
    else the model's own, else UserLM's). Returns whether the token was added (the model's embeddings must then
    grow: `prepare_model`)."""
    from tokenizers import AddedToken

    choice = choose_chat_template(tokenizer, chat_template)
    tokenizer.chat_template = choice.text
    tokenizer._userlm_template_source = choice.source
    added = END_CONVERSATION not in tokenizer.get_vocab()
    if added:
        tokenizer.add_tokens([AddedToken(END_CONVERSATION, special=False, normalized=False)])
    if tokenizer.pad_token_id is None:
        vocab = tokenizer.get_vocab()
        pad = next((t for t in PAD_CANDIDATES if t in vocab), None)
        tokenizer.pad_token = pad if pad is not None else tokenizer.eos_token
    return added


def eos_id(tokenizer: Any, model: Any) -> int:
    """The base model's end-of-text token: the tokenizer's eos, else the config's first eos id."""
    if tokenizer.eos_token_id is not None:
        return int(tokenizer.eos_token_id)
    config_eos = getattr(model.config, "eos_token_id", None)
    if isinstance(config_eos, (list, tuple)):
        config_eos = config_eos[0] if config_eos else None
    if config_eos is None:
        raise ConfigError(
            "the base model names no EOS token (tokenizer or config); cannot initialise the end token"
        )
    return int(config_eos)


def prepare_model(model: Any, tokenizer: Any, added: bool) -> TokenSetup:
    """Grow the embeddings to the tokenizer's size and initialise a newly added `<|endconversation|>` from EOS."""
    import torch

    end_id = tokenizer.convert_tokens_to_ids(END_CONVERSATION)
    source = eos_id(tokenizer, model) if added else None
    if model.get_input_embeddings().weight.shape[0] < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    if added and source is not None:
        with torch.no_grad():
            emb = model.get_input_embeddings().weight
            emb[end_id] = emb[source]
            out = model.get_output_embeddings()
            if out is not None and out.weight.data_ptr() != emb.data_ptr():
                out.weight[end_id] = out.weight[source]
    model.config.pad_token_id = tokenizer.pad_token_id
    return TokenSetup(
        end_token_id=int(end_id),
        added_end_token=added,
        init_from_id=source,
        pad_token_id=int(tokenizer.pad_token_id),
    )
