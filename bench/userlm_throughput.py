"""Throughput of the `userlm/` provider side by side with raw HF `generate` and the memory-bandwidth bound.

    .venv/bin/python bench/userlm_throughput.py                         # tiny model, 16 concurrent (the CPU bar)
    .venv/bin/python bench/userlm_throughput.py --staggered 24          # + requests arriving at random times
    .venv/bin/python bench/userlm_throughput.py --shape llama3-8b --concurrency 1 8 32 64   # on a GPU
    .venv/bin/python bench/userlm_throughput.py --shape llama3-8b --dry-run                 # sizes + bound only

At each concurrency N, in one process, interleaved in every repeat (so machine load hits them alike), on the same
N conversations (0..2 earlier exchanges, so prompt lengths differ):

* `userlm/ off`: N concurrent `Model.generate` calls through Inspect (template, engine, decoding, metadata, the
  ModelCall, the transcript event), guardrails off (no first-token filter, no length/repetition checks, no
  retries); each call runs in its own task with its own transcript, created before the clock starts as an eval
  creates it at sample start (created inside the call, Inspect seeds a fresh `random.Random` per call);
* `userlm/ default`: the same with the paper's default guardrails (retries count as output tokens);
* `raw batched`: one HF `model.generate` of the same N prompts (left-padded, HF sampling, eager, dynamic cache);
* `raw static`: the same with `cache_implementation="static"` (compiled by HF on CUDA);
* `raw sequential`: one `generate` per prompt, one after another;
* `bound`: N tokens per (weight bytes / --bandwidth), the memory-bandwidth limit of a decode step.

Raw runs execute on the runtime's torch thread with its thread settings, as the engine does. Output tokens are
counted the same way everywhere (drawn tokens plus a stop token when drawn). Reported: the best of --repeats,
ratios against the raw runs and the bound, and where the engine's time went (decode steps, mean rows per step,
share of wall time outside model work).

`--staggered K` also sends K requests through Inspect at random arrival times (exponential gaps, mean
--mean-gap-ms), a quarter of them long (--long-tokens), the rest short: what an eval does, where samples'
assistants answer at different times. Per-request latency is printed for short and long requests.

`--shape llama3-8b` builds UserLM-8b's exact shape (Llama-3-8B config, vocab 128,257, bf16) with random weights (no
download) and a 128,257-entry word-level tokenizer with UserLM's template and special-token ids (bench_shapes.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "tests"))
sys.path.insert(0, str(ROOT))

OFF = {"first_token_filter": False, "length_filter": False, "repetition_filter": False, "max_retries": 0}


def conversations(n: int, shape: str) -> list[list[Any]]:
    from inspect_ai.model import ChatMessageAssistant, ChatMessageSystem, ChatMessageUser

    convs = []
    for i in range(n):
        if shape == "tiny":
            intent = f"You are a user who wants help with a unit test for my code number {i}"
            turns = ["my code failed can you help?", "the test expects a sorted list"]
            reply = "Sure, here is a faster loop for the csv file. " * 3
        else:
            intent = " ".join(f"w{1000 + (i * 7 + k) % 5000}" for k in range(40))
            turns = [" ".join(f"w{2000 + k}" for k in range(20)), " ".join(f"w{2500 + k}" for k in range(12))]
            reply = " ".join(f"w{3000 + k}" for k in range(120))
        msgs: list[Any] = [ChatMessageSystem(content=intent)]
        for t in turns[: i % (len(turns) + 1)]:
            msgs += [ChatMessageUser(content=t), ChatMessageAssistant(content=reply)]
        convs.append(msgs)
    return convs


# ----- the userlm/ provider through Inspect -----


async def through_inspect(
    model: Any, convs: list, max_tokens: int, guard: dict, seed0: int
) -> dict[str, Any]:
    from inspect_ai.log import transcript
    from inspect_ai.model import GenerateConfig

    from userlm_plugin.runtime.local import torch_thread

    stats = model.api.engine.stats
    before = (stats.generate_s, stats.steps, stats.row_steps)
    go = asyncio.Event()

    async def one(conv: list, config: GenerateConfig) -> Any:
        transcript()  # in an eval each sample has its transcript before it calls a model: not timed here either
        await go.wait()
        return await model.generate(conv, config=config)

    tasks = [
        asyncio.create_task(
            one(c, GenerateConfig(seed=seed0 + i, max_tokens=max_tokens, extra_body={"userlm": guard}))
        )
        for i, c in enumerate(convs)
    ]
    await asyncio.sleep(0)
    cpu0 = (time.thread_time(), torch_thread.call(time.thread_time))
    t0 = time.perf_counter()
    go.set()
    outs = await asyncio.gather(*tasks)
    wall = time.perf_counter() - t0
    loop_cpu, torch_cpu = time.thread_time() - cpu0[0], torch_thread.call(time.thread_time) - cpu0[1]
    steps, row_steps = stats.steps - before[1], stats.row_steps - before[2]
    return {
        "wall_s": wall,
        "tokens": sum(o.usage.output_tokens for o in outs),
        "steps": steps,
        "rows_per_step": row_steps / max(steps, 1),
        "outside_model": 1 - (stats.generate_s - before[0]) / wall,
        "loop_cpu_s": loop_cpu,
        "torch_cpu_s": torch_cpu,
    }


# ----- raw HF generate on the same prompts -----


def prompt_ids(tokenizer: Any, convs: list) -> list[list[int]]:
    from userlm_plugin.runtime.template import conversation_from_messages, render_prompt_ids

    return [render_prompt_ids(tokenizer, conversation_from_messages(c))[1] for c in convs]


def raw_generate(loaded: Any, prompts: list[list[int]], max_tokens: int, seed: int, static: bool) -> dict:
    """One left-padded `model.generate` of `prompts` with HF's own sampling (on the torch thread)."""
    import torch

    model, pad = loaded.model, loaded.pad_id
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=model.device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=model.device)
    extra = {"cache_implementation": "static"} if static else {}
    torch.manual_seed(seed)
    _sync()
    t0, cpu0 = time.perf_counter(), time.thread_time()
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            do_sample=True,
            temperature=1.0,
            top_p=0.8,
            max_new_tokens=max_tokens,
            eos_token_id=loaded.stop_ids,
            pad_token_id=pad,
            **extra,
        )
    _sync()
    wall, cpu = time.perf_counter() - t0, time.thread_time() - cpu0
    stops, tokens = set(loaded.stop_ids), 0
    for row in out[:, width:].tolist():
        cut = next((k for k, t in enumerate(row) if t in stops), None)
        tokens += len(row) if cut is None else cut + 1
    return {"wall_s": wall, "tokens": tokens, "steps": out.shape[1] - width, "torch_cpu_s": cpu}


def raw_sequential(loaded: Any, prompts: list[list[int]], max_tokens: int, seed: int) -> dict:
    runs = [raw_generate(loaded, [p], max_tokens, seed + i, static=False) for i, p in enumerate(prompts)]
    return {key: sum(r[key] for r in runs) for key in ("wall_s", "tokens", "torch_cpu_s")}


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


# ----- the rounds -----


def weight_bytes(model: Any) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


async def bench(args: argparse.Namespace, name: str, loaded: Any) -> list[dict]:
    from inspect_ai.model import get_model

    from userlm_plugin.runtime.local import torch_thread

    model = get_model(
        f"userlm/{name}", memoize=False, max_batch_size=max(args.concurrency), max_wait_ms=args.max_wait_ms
    )
    step_bound = weight_bytes(loaded.model) / args.bandwidth
    warm = conversations(2, args.shape)
    await through_inspect(model, warm, 4, OFF, 0)
    warm_prompts = prompt_ids(loaded.tokenizer, warm)
    for static in (False,) if args.skip_static else (False, True):
        torch_thread.call(raw_generate, loaded, warm_prompts, 4, 0, static)
    rows = []
    for n in args.concurrency:
        convs = conversations(n, args.shape)
        prompts = prompt_ids(loaded.tokenizer, convs)
        best: dict[str, dict] = {}
        for r in range(args.repeats):
            runs = {
                "userlm/ off": await through_inspect(model, convs, args.max_tokens, OFF, 1000 * r),
                "raw batched": torch_thread.call(raw_generate, loaded, prompts, args.max_tokens, r, False),
                "userlm/ default": await through_inspect(model, convs, args.max_tokens, {}, 1000 * r),
            }
            if not args.skip_static:
                runs["raw static"] = torch_thread.call(
                    raw_generate, loaded, prompts, args.max_tokens, r, True
                )
            if not args.skip_sequential:
                runs["raw sequential"] = torch_thread.call(
                    raw_sequential, loaded, prompts, args.max_tokens, r
                )
            for key, run in runs.items():
                run["tok_s"] = run["tokens"] / run["wall_s"]
                if key not in best or run["tok_s"] > best[key]["tok_s"]:
                    best[key] = run
        best["bound"] = {"tok_s": n / step_bound, "wall_s": step_bound * args.max_tokens}
        rows.append({"concurrency": n, **best})
        print_round(n, best, step_bound)
    if args.staggered:
        rows.append({"staggered": await staggered(model, args)})
    return rows


def print_round(n: int, best: dict[str, dict], step_bound: float) -> None:
    print(f"\nN={n} concurrent requests (best of repeats; output tokens/s):", flush=True)
    for key, run in best.items():
        extra = ""
        if key.startswith("userlm/"):
            extra = (
                f"  {run['steps']} decode steps, {run['rows_per_step']:.1f} rows/step, "
                f"{run['outside_model']:.0%} of wall outside model work; CPU: event loop "
                f"{run['loop_cpu_s'] * 1e3:.0f} ms, torch thread {run['torch_cpu_s'] * 1e3:.0f} ms"
            )
        elif key == "bound":
            extra = f"  ({step_bound * 1e3:.3f} ms per decode step)"
        else:
            extra = f"  CPU: torch thread {run['torch_cpu_s'] * 1e3:.0f} ms"
        print(f"  {key:16s} {run['tok_s']:10,.0f} tok/s{extra}", flush=True)
    ours = best["userlm/ off"]["tok_s"]
    ratios = [
        f"userlm/ off / {k} = {ours / best[k]['tok_s']:.2f}x" for k in best if not k.startswith("userlm/")
    ]
    ratios.append(
        f"userlm/ default / raw batched = {best['userlm/ default']['tok_s'] / best['raw batched']['tok_s']:.2f}x"
    )
    print("  ratios: " + "; ".join(ratios), flush=True)


async def staggered(model: Any, args: argparse.Namespace) -> dict:
    """K requests at random arrival times; per-request latency (arrival -> result) for short and long ones."""
    from inspect_ai.model import GenerateConfig

    rng = random.Random(7)
    convs = conversations(args.staggered, args.shape)
    plan, t = [], 0.0
    for i in range(args.staggered):
        t += rng.expovariate(1000 / args.mean_gap_ms)
        plan.append((t, args.long_tokens if i % 4 == 0 else args.max_tokens))
    latencies: dict[str, list[float]] = {"short": [], "long": []}
    alone = []
    for i in range(3):  # reference: a short request on an idle engine
        t0 = time.perf_counter()
        config = GenerateConfig(seed=i, max_tokens=args.max_tokens, extra_body={"userlm": OFF})
        await model.generate(convs[i], config=config)
        alone.append(time.perf_counter() - t0)
    start = time.perf_counter()

    async def one(i: int, at: float, max_tokens: int) -> None:
        await asyncio.sleep(max(0.0, at - (time.perf_counter() - start)))
        arrived = time.perf_counter()
        config = GenerateConfig(seed=i, max_tokens=max_tokens, extra_body={"userlm": OFF})
        await model.generate(convs[i], config=config)
        latencies["long" if max_tokens == args.long_tokens else "short"].append(time.perf_counter() - arrived)

    await asyncio.gather(*[one(i, at, m) for i, (at, m) in enumerate(plan)])
    wall = time.perf_counter() - start
    print(
        f"\nstaggered: {args.staggered} requests over {plan[-1][0]:.2f} s (mean gap {args.mean_gap_ms} ms), "
        f"wall {wall:.2f} s",
        flush=True,
    )
    summary: dict[str, Any] = {"short_alone_s": min(alone)}
    print(f"  a short request alone on an idle engine: {min(alone) * 1e3:.0f} ms", flush=True)
    for kind, values in latencies.items():
        if values:
            values.sort()
            summary[kind] = {
                "n": len(values),
                "p50_s": statistics.median(values),
                "p90_s": values[int(0.9 * (len(values) - 1))],
                "max_s": values[-1],
            }
            print(
                f"  {kind:5s} ({len(values):2d} requests, max_tokens {args.long_tokens if kind == 'long' else args.max_tokens}): "
                f"latency p50 {summary[kind]['p50_s'] * 1e3:.0f} ms, p90 {summary[kind]['p90_s'] * 1e3:.0f} ms, "
                f"max {summary[kind]['max_s'] * 1e3:.0f} ms",
                flush=True,
            )
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=["tiny", "llama3-8b"], default="tiny")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16])
    parser.add_argument(
        "--max-tokens", type=int, help="new tokens per request (default: 24 tiny, 48 llama3-8b)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bandwidth", type=float, default=4.8e12, help="bytes/s (default: H200, 4.8 TB/s)")
    parser.add_argument(
        "--staggered", type=int, default=0, help="also run K requests arriving at random times"
    )
    parser.add_argument("--mean-gap-ms", type=float, default=20.0)
    parser.add_argument("--long-tokens", type=int, default=400)
    parser.add_argument(
        "--skip-sequential", action="store_true", help="skip raw sequential (slow on a GPU at 64)"
    )
    parser.add_argument(
        "--skip-static", action="store_true", help="skip raw static cache (compiles per shape on CUDA)"
    )
    parser.add_argument(
        "--max-wait-ms", type=float, default=5.0, help="the engine's max_wait_ms (burst gathering)"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--dry-run", action="store_true", help="llama3-8b: build on the meta device, print sizes"
    )
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()
    args.max_tokens = args.max_tokens or (24 if args.shape == "tiny" else 48)

    import torch
    from bench_shapes import build_llama3_8b_shape, llama3_8b_shape_tokenizer

    from userlm_plugin.runtime.local import torch_thread
    from userlm_plugin.runtime.local.loading import load_userlm, register_loaded, resolve_device

    device = resolve_device(args.device)
    if args.shape == "llama3-8b" and (args.dry_run or not device.startswith("cuda")):
        model = build_llama3_8b_shape("cpu", meta=True)
        step = weight_bytes(model) / args.bandwidth
        print(
            f"llama3-8b shape: {weight_bytes(model) / 1e9:.2f} GB of weights; {step * 1e3:.2f} ms per decode step "
            f"at {args.bandwidth / 1e12:.2f} TB/s -> bound "
            + ", ".join(f"N={n}: {n / step:,.0f} tok/s" for n in args.concurrency)
        )
        if not args.dry_run:
            print("no CUDA device: only the meta-device sizes and the bound were printed")
        return 0
    threads = torch_thread.call(torch.get_num_threads)
    where = torch.cuda.get_device_name() if device.startswith("cuda") else f"cpu, {threads} torch thread(s)"
    print(
        f"torch {torch.__version__}, device {device} ({where}), load average {os.getloadavg()[0]:.2f} "
        f"on {os.cpu_count()} cores",
        flush=True,
    )
    if args.shape == "llama3-8b":
        model = torch_thread.call(build_llama3_8b_shape, device)  # the runtime's torch thread owns the model
        name = "bench/llama3-8b-shape"
        loaded = register_loaded(name, model, llama3_8b_shape_tokenizer(), device=args.device)
    else:
        from tiny_llama import build_tiny_userlm

        name = str(torch_thread.call(build_tiny_userlm, Path(tempfile.mkdtemp()) / "tiny-userlm"))
        loaded = load_userlm(name, device=args.device)
    print(
        f"weights {weight_bytes(loaded.model) / 1e9:.4f} GB, {args.max_tokens} new tokens per request",
        flush=True,
    )
    rows = asyncio.run(bench(args, name, loaded))
    print(f"\nload average after: {os.getloadavg()[0]:.2f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
