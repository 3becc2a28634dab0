"""Load a User LM once per process: bf16 on CUDA, fp32 on CPU, `trust_remote_code` off unless asked.

Also derives the token facts the runtime needs from the checkpoint instead of hard-coding Llama-3 names: every
eos id (UserLM's config.json says `<|end_of_text|>`, its generation_config `<|eot_id|>`: stop on both,
docs/userlm.md#two-eos-ids-stop-on-both), the `<|endconversation|>` id when the vocabulary has it, a pad id, and the whitespace-only token ids.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import ModelLoadError
from ...turns import END_CONVERSATION
from ..guardrails import whitespace_token_ids
from ..settings import EngineSettings
from ..template import (
    has_chat_template,
    looks_local,
    set_chat_template,
    stop_token_ids,
    template_mode,
    token_ids,
)
from . import torch_thread
from .engine import BatchingEngine

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

_PAD_CANDIDATES = ("<|finetune_right_pad_id|>",)


@dataclass
class LoadedUserLM:
    name: str
    model: Any
    tokenizer: Any
    device: str
    dtype: str
    stop_ids: list[int]
    end_token_id: int | None
    pad_id: int
    whitespace_ids: frozenset[int]
    template_mode: str
    engines: dict[EngineSettings, BatchingEngine] = field(default_factory=dict)

    def engine(self, settings: EngineSettings) -> BatchingEngine:
        """The batching engine for these settings (one per setting set, sharing the model)."""
        with _LOCK:
            if settings not in self.engines:
                self.engines[settings] = BatchingEngine(
                    self.model,
                    pad_id=self.pad_id,
                    stop_ids=self.stop_ids,
                    end_token_id=self.end_token_id,
                    whitespace_ids=self.whitespace_ids,
                    settings=settings,
                )
            return self.engines[settings]


_CACHE: dict[tuple[Any, ...], LoadedUserLM] = {}
_LOCK = threading.RLock()


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_dtype(dtype: str, device: str) -> Any:
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    value = getattr(torch, dtype, None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"dtype must be 'auto' or a torch dtype name like 'bfloat16', got {dtype!r}")
    return value


def load_userlm(
    name: str,
    *,
    device: str = "auto",
    dtype: str = "auto",
    trust_remote_code: bool = False,
    revision: str | None = None,
    chat_template: str | None = None,
) -> LoadedUserLM:
    """Load (or return the already-loaded) model and tokenizer for a hub id or local folder."""
    device = resolve_device(device)
    key = (name, device, dtype, trust_remote_code, revision, chat_template)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        # on the torch thread: the thread that loads the weights must be the one that runs them (torch_thread.py)
        loaded = torch_thread.call(_load, name, device, dtype, trust_remote_code, revision, chat_template)
        _CACHE[key] = loaded
        return loaded


def register_loaded(
    name: str, model: Any, tokenizer: Any, *, device: str = "auto", dtype: str = "auto"
) -> LoadedUserLM:
    """Serve an in-memory model as `userlm/<name>` (benchmarks, tests): it goes into the load cache."""
    loaded = _wrap(name, model, tokenizer, resolve_device(device), dtype)
    with _LOCK:
        _CACHE[(name, resolve_device(device), dtype, False, None, None)] = loaded
    return loaded


def _load(
    name: str,
    device: str,
    dtype: str,
    trust_remote_code: bool,
    revision: str | None,
    chat_template: str | None,
) -> LoadedUserLM:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local = looks_local(name)
    path = Path(name).expanduser()
    if local and not path.is_dir():
        raise ModelLoadError(
            f"userlm/{name}: no such model folder ({path.resolve()}). Pass an existing local folder with "
            "config.json, tokenizer files and weights, or a hub id like microsoft/UserLM-8b."
        )
    source = str(path) if local else name
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code, "revision": revision}
    if local:
        kwargs["local_files_only"] = True
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    except Exception as error:
        raise ModelLoadError(f"userlm/{name}: could not load the tokenizer: {error}") from error
    set_chat_template(tokenizer, chat_template)
    if not has_chat_template(tokenizer):
        raise ModelLoadError(
            f"userlm/{name}: the tokenizer has no chat template, so the intent/turn prompt cannot be rendered. "
            "Add chat_template.jinja (UserLM-8b ships one) to the folder, or pass -M chat_template=<file.jinja>."
        )
    resolved_dtype = resolve_dtype(dtype, device)
    try:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=resolved_dtype, **kwargs)
    except Exception as error:
        raise ModelLoadError(f"userlm/{name}: could not load the model weights: {error}") from error
    model.to(device)
    model.eval()
    return _wrap(name, model, tokenizer, device, dtype)


def _wrap(name: str, model: Any, tokenizer: Any, device: str, dtype: str) -> LoadedUserLM:
    vocab = tokenizer.get_vocab()
    stop_ids = stop_token_ids(
        tokenizer,
        [
            *token_ids(getattr(model.generation_config, "eos_token_id", None)),
            *token_ids(getattr(model.config, "eos_token_id", None)),
        ],
    )
    if not stop_ids:
        raise ModelLoadError(
            f"userlm/{name}: found no eos token id in the config, generation config or tokenizer"
        )
    from transformers import GenerationConfig

    # Drop the checkpoint's sampling defaults (UserLM ships temperature 0.6 / top_p 0.9; the card and paper use
    # 1.0 / 0.8): the runtime samples per request itself and must not inherit them.
    model.generation_config = GenerationConfig(
        bos_token_id=getattr(model.generation_config, "bos_token_id", None), eos_token_id=stop_ids
    )
    end_token_id = vocab.get(END_CONVERSATION)
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = next((vocab[t] for t in _PAD_CANDIDATES if t in vocab), stop_ids[0])
    return LoadedUserLM(
        name=name,
        model=model,
        tokenizer=tokenizer,
        device=device,
        dtype=str(getattr(model, "dtype", dtype)),
        stop_ids=stop_ids,
        end_token_id=end_token_id,
        pad_id=int(pad_id),
        whitespace_ids=whitespace_token_ids(tokenizer),
        template_mode=template_mode(tokenizer),
        engines={},
    )
