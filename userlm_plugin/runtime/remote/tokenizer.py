"""The served model's tokenizer, loaded without its weights (and without torch), and its eos ids.

The remote backend renders UserLM's template and maps banned words to token ids itself, so it needs the tokenizer
of the model the server runs (a hub id, a local folder or a `.gguf` file; `-M tokenizer=`, default the model name).
Only `transformers`' tokenizer path is used, which works without torch.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from ...errors import ConfigError, missing_dependency
from ..template import has_chat_template, set_chat_template, token_ids

_TOKENIZERS: dict[tuple[Any, ...], Any] = {}
_LOCK = threading.Lock()


def load_tokenizer(
    source: str,
    *,
    revision: str | None = None,
    trust_remote_code: bool = False,
    chat_template: str | None = None,
) -> Any:
    """The tokenizer (with its chat template) of a hub id, a local folder or a `.gguf` file; cached per process."""
    key = (source, revision, trust_remote_code, chat_template)
    with _LOCK:
        if key in _TOKENIZERS:
            return _TOKENIZERS[key]
        try:
            from transformers import AutoTokenizer
        except ImportError as error:
            raise missing_dependency(
                "transformers", "runtime", "userlm/ with -M base_url (the served model's tokenizer)"
            ) from error

        path = Path(source).expanduser()
        kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code, "revision": revision}
        try:
            if path.suffix == ".gguf":
                if not path.is_file():
                    raise FileNotFoundError(f"no such GGUF file: {path}")
                tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name, **kwargs)
            elif path.is_dir():
                tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True, **kwargs)
            else:
                tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        except Exception as error:
            raise ConfigError(
                f"userlm remote backend: could not load the tokenizer {source!r} ({error}). Pass -M tokenizer=<hub "
                "id, local folder or .gguf file of the served model>: it renders the prompt and maps banned tokens "
                "to the server's ids (only the tokenizer is loaded, never the weights)."
            ) from error
        set_chat_template(tokenizer, chat_template)
        if not has_chat_template(tokenizer):
            raise ConfigError(
                f"userlm remote backend: the tokenizer {source!r} has no chat template; pass -M chat_template="
                "<file.jinja> (UserLM-8b ships one)."
            )
        _TOKENIZERS[key] = tokenizer
        return tokenizer


def eos_ids_from_configs(source: str, revision: str | None) -> list[int]:
    """eos ids in the checkpoint's generation_config.json when it can be read (UserLM's configs disagree on eos:
    docs/userlm.md "Two EOS ids"). Missing files are fine: the tokenizer's eos and the Llama-3 stop tokens still
    apply."""
    path = Path(source).expanduser()
    if path.suffix == ".gguf":
        return []
    try:
        from transformers import GenerationConfig

        kwargs: dict[str, Any] = {"revision": revision}
        if path.is_dir():
            kwargs["local_files_only"] = True
        value = GenerationConfig.from_pretrained(
            str(path) if path.is_dir() else source, **kwargs
        ).eos_token_id
    except Exception:  # noqa: BLE001 - optional facts
        return []
    return token_ids(value)


__all__ = ["eos_ids_from_configs", "load_tokenizer"]
