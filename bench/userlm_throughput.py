"""Throughput of the `userlm/` provider: N concurrent simulated-user requests, batched vs sequential.

    .venv/bin/python bench/userlm_throughput.py                       # tiny model, 16 concurrent (CPU bar)
    .venv/bin/python bench/userlm_throughput.py --shape llama3-8b --concurrency 1 8 32 64   # on a GPU
    .venv/bin/python bench/userlm_throughput.py --shape llama3-8b --dry-run                 # sizes + bound only

Both runs go through the real provider (`get_model("userlm/...").generate`): template rendering, the per-row
sampler with the first-token and end-token bans, decoding and guardrail checks. `max_retries=0` so each request
is exactly one draft (resampling would make the two runs do different work). "sequential" is one `generate` per
request, awaited one after another (engine max_batch_size=1); "batched" fires all N at once.

Printed per run: output tokens/s, the batched/sequential ratio, and the share of wall time outside the model's
`generate` (plus, separately, with our sampler's time inside it counted as overhead too). The batched round is
run twice: through Inspect's `Model.generate` (what an eval pays, Inspect's per-call machinery included) and
through our provider's `generate` alone (our overhead only).

`--shape llama3-8b` builds UserLM-8b's exact shape (Llama-3-8B config, vocab 128,257, bf16) with random weights
(no download) and a 128,257-entry word-level tokenizer with UserLM's template and special-token ids.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

HBM_TBPS = {"H100": 3.35, "H200": 4.8, "A100": 2.0}  # SXM spec-sheet memory bandwidth, TB/s

LLAMA3_8B = dict(
    vocab_size=128257,
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    max_position_embeddings=8192,
    rms_norm_eps=1e-5,
    bos_token_id=128000,
    eos_token_id=128001,
    tie_word_embeddings=False,
    rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
)


def llama3_8b_shape_tokenizer() -> Any:
    """Word-level tokenizer with 128,257 ids laid out like UserLM-8b's (specials at 128000+, <|endconversation|>
    at 128256, non-special) and UserLM's chat template."""
    from tiny_llama import USERLM_CHAT_TEMPLATE
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"w{i}": i for i in range(128000)}
    vocab["\n"] = 198
    del vocab["w198"]
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.Split("\n", behavior="isolated")
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split("\n", behavior="isolated"), pre_tokenizers.WhitespaceSplit()]
    )
    specials = ["<|begin_of_text|>", "<|end_of_text|>"] + [
        f"<|reserved_special_token_{i}|>" for i in range(2)
    ]
    specials += [
        "<|finetune_right_pad_id|>",
        "<|reserved_special_token_2|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eom_id|>",
        "<|eot_id|>",
    ]
    specials += [f"<|reserved_special_token_{i}|>" for i in range(3, 3 + 256 - len(specials))]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tok.add_tokens([AddedToken("<|endconversation|>", special=False, normalized=False)])
    assert tok.get_vocab_size() == 128257, tok.get_vocab_size()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        chat_template=USERLM_CHAT_TEMPLATE,
    )


def build_llama3_8b_shape(device: str, meta: bool = False) -> Any:
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**LLAMA3_8B)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("meta" if meta else device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    if not meta:
        with torch.no_grad():  # small random weights keep bf16 activations finite
            for p in model.parameters():
                if p.dim() > 1:
                    p.normal_(0, 0.02)
    model.generation_config = GenerationConfig(bos_token_id=128000, eos_token_id=128009)
    return model.eval()


def intents(n: int, shape: str) -> list[list[Any]]:
    from inspect_ai.model import ChatMessageAssistant, ChatMessageSystem, ChatMessageUser

    convs = []
    for i in range(n):
        if shape == "tiny":
            intent = f"You are a user who wants help with a unit test for my code number {i}"
            turns = ["my code failed can you help?", "the test expects a sorted list"]
            reply = "Sure, here is a faster loop for the csv file. " * 3
        else:
            intent = " ".join(f"w{1000 + (i * 7 + k) % 5000}" for k in range(40))
            turns = [" ".join(f"w{2000 + k}" for k in range(20))]
            reply = " ".join(f"w{3000 + k}" for k in range(120))
        msgs: list[Any] = [ChatMessageSystem(content=intent)]
        for t in turns[: i % (len(turns) + 1)]:
            msgs += [ChatMessageUser(content=t), ChatMessageAssistant(content=reply)]
        convs.append(msgs)
    return convs


async def run_mode(
    model: Any, convs: list, max_tokens: int, concurrent: bool, seed0: int, via: str = "inspect"
) -> dict[str, float]:
    """One round of requests. via="inspect": Inspect's `Model.generate` (what an eval does, Inspect's per-call
    machinery included); via="provider": our `UserLMAPI.generate` directly (our code only)."""
    from inspect_ai.model import GenerateConfig

    engine = model.api.engine
    gen0, samp0 = engine.stats.generate_s, engine.stats.sampler_s
    n_batches0 = len(engine.stats.batch_sizes)
    configs = [
        GenerateConfig(seed=seed0 + i, max_tokens=max_tokens, extra_body={"userlm": {"max_retries": 0}})
        for i in range(len(convs))
    ]
    if via == "inspect":
        call = model.generate
    else:

        async def call(c: list, config: Any) -> Any:
            return (await model.api.generate(c, [], "none", config))[0]

    t0 = time.perf_counter()
    if concurrent:
        outs = await asyncio.gather(*[call(c, config=cfg) for c, cfg in zip(convs, configs, strict=True)])
    else:
        outs = [await call(c, config=cfg) for c, cfg in zip(convs, configs, strict=True)]
    wall = time.perf_counter() - t0
    tokens = sum(o.usage.output_tokens for o in outs)
    gen, samp = engine.stats.generate_s - gen0, engine.stats.sampler_s - samp0
    sizes = engine.stats.batch_sizes[n_batches0:]
    return {
        "batches": len(sizes),
        "mean_batch": sum(sizes) / max(len(sizes), 1),
        "wall_s": wall,
        "tokens": tokens,
        "tok_per_s": tokens / wall,
        "outside_generate": 1 - gen / wall,
        "overhead": 1 - (gen - samp) / wall,
    }


async def bench(
    model_name: str, shape: str, concurrency: list[int], max_tokens: int, repeats: int
) -> list[dict]:
    from inspect_ai.model import get_model

    batched = get_model(f"userlm/{model_name}", memoize=False, max_batch_size=max(concurrency), max_wait_ms=5)
    sequential = get_model(f"userlm/{model_name}", memoize=False, max_batch_size=1)
    warm = intents(2, shape)
    await run_mode(batched, warm, 8, True, 0)
    await run_mode(sequential, warm[:1], 8, False, 0)
    rows = []
    for n in concurrency:
        convs = intents(n, shape)
        for r in range(repeats):
            seq = await run_mode(sequential, convs, max_tokens, False, 1000 * r)
            bat = await run_mode(batched, convs, max_tokens, True, 1000 * r)
            ours = await run_mode(batched, convs, max_tokens, True, 1000 * r, via="provider")
            row = {
                "concurrency": n,
                "repeat": r,
                "sequential": seq,
                "batched": bat,
                "batched_provider_only": ours,
                "ratio": bat["tok_per_s"] / seq["tok_per_s"],
            }
            rows.append(row)
            print(
                f"N={n:3d}  sequential {seq['tok_per_s']:9.1f} tok/s   batched {bat['tok_per_s']:9.1f} tok/s   "
                f"ratio {row['ratio']:5.2f}x   overhead: batched {bat['overhead']:.1%} "
                f"(outside generate {bat['outside_generate']:.1%}), sequential {seq['overhead']:.1%}; "
                f"batches {bat['batches']} (mean size {bat['mean_batch']:.1f}); provider alone (no Inspect "
                f"machinery): outside generate {ours['outside_generate']:.1%}",
                flush=True,
            )
    return rows


def bandwidth_bound(model: Any, concurrency: list[int]) -> None:
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    n_params = sum(p.numel() for p in model.parameters())
    print(f"params {n_params:,}  weights {weight_bytes / 1e9:.2f} GB (bf16)")
    for gpu, tbps in HBM_TBPS.items():
        step = weight_bytes / (tbps * 1e12)
        bounds = ", ".join(f"N={n}: {n / step:,.0f} tok/s" for n in concurrency)
        print(f"  {gpu} {tbps} TB/s: >= {step * 1e3:.2f} ms per decode step (weights only) -> bound {bounds}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=["tiny", "llama3-8b"], default="tiny")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16])
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--dry-run", action="store_true", help="llama3-8b: build on the meta device, print sizes"
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()

    import torch

    from userlm_plugin.runtime.local.loading import register_loaded, resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(
        f"torch {torch.__version__}, device {device}"
        + (
            f" ({torch.cuda.get_device_name()})"
            if device.startswith("cuda")
            else f", {torch.get_num_threads()} threads"
        ),
        flush=True,
    )
    if args.shape == "llama3-8b":
        if args.dry_run or not device.startswith("cuda"):
            bandwidth_bound(build_llama3_8b_shape(device, meta=True), args.concurrency)
            if not args.dry_run:
                print("no CUDA device: only the meta-device sizes and bound were printed")
            return 0
        from userlm_plugin.runtime.local import torch_thread

        model = torch_thread.call(build_llama3_8b_shape, device)  # the runtime's torch thread owns the model
        bandwidth_bound(model, args.concurrency)
        name = "bench/llama3-8b-shape"
        register_loaded(name, model, llama3_8b_shape_tokenizer(), device=args.device)
    else:
        from tiny_llama import build_tiny_userlm

        from userlm_plugin.runtime.local import torch_thread

        # built on the torch thread, like everything else the runtime runs (see runtime/torch_thread.py)
        name = str(torch_thread.call(build_tiny_userlm, Path(tempfile.mkdtemp()) / "tiny-userlm"))
    rows = asyncio.run(bench(name, args.shape, args.concurrency, args.max_tokens, args.repeats))
    best = {}
    for row in rows:
        best[row["concurrency"]] = max(best.get(row["concurrency"], 0), row["ratio"])
    print("best ratio per concurrency:", {n: round(r, 2) for n, r in best.items()})
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
