"""HTTP overhead of `userlm-plugin serve`: the same workload in-process (`userlm/`) and through serve + LiteLLM.

    .venv/bin/python bench/serve_overhead.py                       # tiny UserLM built on the fly
    .venv/bin/python bench/serve_overhead.py --model /path/to/UserLM-8b --requests 256 --concurrency 32

Workload: `--requests` next-user-turn requests (distinct conversations, fixed seeds, `--max-tokens` each),
`--concurrency` in flight at once, run once in-process through `get_model("userlm/...")` and once through a
`serve` subprocess with `litellm.acompletion(model="openai/<name>", api_base=...)` as the client. Both paths use
the same engine settings and guardrails. Prints wall time, requests/s and the overhead ratio (serve / local).
A warm-up pass runs before each timed pass.

    .venv/bin/python bench/serve_overhead.py --abuse-mb 7.6        # also: /health while a 7.6 MB intent is handled

`--abuse-mb` sends one request whose intent is that many MB (the prompt is rendered and tokenized, then refused as
longer than the context) and polls `/health` every 50 ms meanwhile: prints /health's latency idle and during the
huge request side by side (the event loop must stay free: docs/serving.md "serve under abuse").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # tiny_llama, local_servers
INTENT = "You are a user who needs a python function that sorts a list; ask the assistant for it."


def conversation(i: int) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": INTENT},
        {"role": "user", "content": f"hi, I need a sort function number {i}"},
        {"role": "assistant", "content": "Sure! Which language, and should it sort in place?"},
    ]


async def run_local(
    model_path: str, model_args: dict[str, object], n: int, concurrency: int, max_tokens: int
) -> float:
    from inspect_ai.model import (
        ChatMessageAssistant,
        ChatMessageSystem,
        ChatMessageUser,
        GenerateConfig,
        get_model,
    )

    model = get_model(f"userlm/{model_path}", memoize=False, **model_args)
    role = {"system": ChatMessageSystem, "user": ChatMessageUser, "assistant": ChatMessageAssistant}
    semaphore = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with semaphore:
            messages = [role[m["role"]](content=m["content"]) for m in conversation(i)]
            await model.api.generate(messages, [], "none", GenerateConfig(seed=i, max_tokens=max_tokens))

    await asyncio.gather(*(one(i) for i in range(min(n, concurrency))))  # warm-up
    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return time.perf_counter() - started


async def run_httpx(api_base: str, name: str, n: int, concurrency: int, max_tokens: int) -> float:
    """The same requests with a bare httpx client: separates the server's cost from LiteLLM's client cost."""
    import httpx

    semaphore = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=120) as client:

        async def one(i: int) -> None:
            async with semaphore:
                body = {"model": name, "messages": conversation(i), "max_tokens": max_tokens, "seed": i}
                response = await client.post(f"{api_base}/chat/completions", json=body)
                response.raise_for_status()

        await asyncio.gather(*(one(i) for i in range(min(n, concurrency))))
        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return time.perf_counter() - started


async def run_served(api_base: str, name: str, n: int, concurrency: int, max_tokens: int) -> float:
    import litellm

    semaphore = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with semaphore:
            await litellm.acompletion(
                model=f"openai/{name}",
                api_base=api_base,
                api_key="x",
                messages=conversation(i),
                max_tokens=max_tokens,
                seed=i,
                num_retries=0,
                max_retries=0,
                timeout=600,
            )

    await asyncio.gather(
        *(one(i) for i in range(min(n, concurrency)))
    )  # warm-up (and litellm's lazy imports)
    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return time.perf_counter() - started


def run_health_under_abuse(url: str, api_base: str, name: str, megabytes: float) -> dict[str, float]:
    """/health latency (s) idle, then while one request with a `megabytes` intent is being handled."""
    import threading

    import httpx

    def latencies(client: httpx.Client, until: Callable[[], bool], at_least: int = 0) -> list[float]:
        out: list[float] = []
        while not until() or len(out) < at_least:
            started = time.perf_counter()
            client.get(f"{url}/health", timeout=120).raise_for_status()
            out.append(time.perf_counter() - started)
            time.sleep(0.05)
        return out

    intent = INTENT + " detail" * int(megabytes * 1e6 / 7)
    body = {"model": name, "messages": [{"role": "system", "content": intent}], "max_tokens": 8}
    result: dict[str, float] = {}

    def huge() -> None:
        started = time.perf_counter()
        response = httpx.post(f"{api_base}/chat/completions", json=body, timeout=600)
        result["huge_s"], result["huge_status"] = time.perf_counter() - started, response.status_code

    with httpx.Client() as client:
        idle = latencies(client, lambda: True, at_least=20)
        worker = threading.Thread(target=huge)
        worker.start()
        busy = latencies(client, lambda: not worker.is_alive())
        worker.join(timeout=660)  # the huge request itself has a 600 s deadline
    result.update(
        idle_max_s=max(idle), idle_median_s=sorted(idle)[len(idle) // 2], busy_max_s=max(busy, default=0.0),
        busy_median_s=sorted(busy)[len(busy) // 2] if busy else 0.0, busy_polls=len(busy),
    )  # fmt: skip
    return result


def start_serve(
    model_path: str, model_args: list[str], port: int, name: str
) -> tuple[subprocess.Popen[bytes], Path]:
    log = Path(tempfile.mkstemp(prefix="serve_bench_", suffix=".log")[1])
    command = [sys.executable, "-m", "userlm_plugin.serve", model_path, "--port", str(port)]
    command += ["--served-model-name", name]
    for arg in model_args:
        command += ["-M", arg]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    import httpx
    from local_servers import wait_until_ready

    try:
        wait_until_ready(
            process,
            lambda: httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200,
            what="serve",
            log_tail=lambda: log.read_text()[-2000:],
            timeout_s=600,
            not_yet=(httpx.HTTPError,),
        )
    except RuntimeError:
        process.kill()
        raise
    return process, log


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default=None, help="model folder or hub id (default: build the tiny UserLM)"
    )
    parser.add_argument("--requests", type=int, default=96)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--abuse-mb", type=float, default=0.0, help="also time /health during a huge request")
    args = parser.parse_args()

    model_path = args.model
    if model_path is None:
        from tiny_llama import build_tiny_userlm

        model_path = str(build_tiny_userlm(tempfile.mkdtemp(prefix="tiny_userlm_bench_")))
    engine = {"max_batch_size": args.max_batch_size, "max_new_tokens": args.max_tokens}

    local_s = asyncio.run(run_local(model_path, engine, args.requests, args.concurrency, args.max_tokens))

    from local_servers import free_port

    port, name = free_port(), "bench-userlm"
    process, log = start_serve(model_path, [f"{k}={v}" for k, v in engine.items()], port, name)
    try:
        httpx_s = asyncio.run(
            run_httpx(f"http://127.0.0.1:{port}/v1", name, args.requests, args.concurrency, args.max_tokens)
        )
        served_s = asyncio.run(
            run_served(f"http://127.0.0.1:{port}/v1", name, args.requests, args.concurrency, args.max_tokens)
        )
        import httpx

        batching = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()["batching"]
        abuse = (
            run_health_under_abuse(
                f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/v1", name, args.abuse_mb
            )
            if args.abuse_mb > 0
            else None
        )
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.unlink(missing_ok=True)

    import torch

    device = (
        "cuda: " + torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu x{os.cpu_count()}"
    )
    n = args.requests
    print(
        f"model={model_path} device={device} requests={n} concurrency={args.concurrency} max_tokens={args.max_tokens}"
    )
    print(f"local  (userlm/ in-process): {local_s:7.2f} s  {n / local_s:7.1f} req/s")
    print(f"serve  (HTTP + bare httpx):  {httpx_s:7.2f} s  {n / httpx_s:7.1f} req/s")
    print(f"serve  (HTTP + LiteLLM):     {served_s:7.2f} s  {n / served_s:7.1f} req/s")
    print(
        f"serve batches: max {batching.get('max_batch_size')} mean {batching.get('mean_batch_size')} "
        f"(limit {batching.get('max_batch_size_limit')})"
    )
    print(f"HTTP overhead ratio, serve + httpx   / local: {httpx_s / local_s:.2f}x")
    print(f"HTTP overhead ratio, serve + LiteLLM / local: {served_s / local_s:.2f}x")
    if abuse is not None:
        print(
            f"/health while a {args.abuse_mb} MB intent is handled ({abuse['huge_s']:.1f} s, status "
            f"{abuse['huge_status']:.0f}; {abuse['busy_polls']:.0f} polls): max {abuse['busy_max_s'] * 1000:.0f} ms, "
            f"median {abuse['busy_median_s'] * 1000:.0f} ms; idle: max {abuse['idle_max_s'] * 1000:.0f} ms, "
            f"median {abuse['idle_median_s'] * 1000:.0f} ms; ratio of medians "
            f"{abuse['busy_median_s'] / abuse['idle_median_s']:.1f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
