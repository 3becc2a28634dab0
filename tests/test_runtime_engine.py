"""The engine through Inspect: per-request params in one batch, seeds that give the same text batched or alone,
bounded batches and queue, out-of-memory back-off, one torch thread. Continuous batching itself (joining and
leaving between steps) is in test_engine_batching.py; the sampler in test_engine_sampling.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import torch
from inspect_ai.model import ChatMessageAssistant, ChatMessageSystem, ChatMessageUser, GenerateConfig

from userlm_plugin.turns import USERLM_METADATA_KEY


def conversations(n: int) -> list[list]:
    """n conversations of 0..3 earlier exchanges (different prompt lengths: left padding matters)."""
    convs = []
    for i in range(n):
        msgs: list = [ChatMessageSystem(content=f"You want help with test number {i}")]
        for t in range(i % 4):
            msgs += [
                ChatMessageUser(content=f"my code failed {t}"),
                ChatMessageAssistant(content="try a loop " * t),
            ]
        convs.append(msgs)
    return convs


async def run(model: Any, convs: list, configs: list[GenerateConfig]) -> list:
    return await asyncio.gather(
        *[model.generate(c, config=cfg) for c, cfg in zip(convs, configs, strict=True)]
    )


def mixed_configs(n: int) -> list[GenerateConfig]:
    """Different temperature / top_p / max_tokens / guardrails per request, all in the same batches."""
    return [
        GenerateConfig(
            seed=100 + i,
            temperature=[1.0, 0.7, 1.3][i % 3],
            top_p=[0.8, 0.95][i % 2],
            max_tokens=[24, 40][i % 2],
            extra_body={"userlm": {"max_retries": 2, "min_turns_before_end": [None, 0][i % 2]}},
        )
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def batched_and_alone(tiny_userlm_dir, tiny_userlm_model):
    return (
        tiny_userlm_model(tiny_userlm_dir, max_batch_size=8, max_wait_ms=20),
        tiny_userlm_model(tiny_userlm_dir, max_batch_size=1),
    )


async def test_same_seed_same_text_batched_or_alone(batched_and_alone) -> None:
    batched, alone = batched_and_alone
    convs, configs = conversations(12), mixed_configs(12)
    together = await run(batched, convs, configs)
    one_by_one = [await alone.generate(c, config=cfg) for c, cfg in zip(convs, configs, strict=True)]
    assert [o.completion for o in together] == [o.completion for o in one_by_one]
    assert [o.metadata[USERLM_METADATA_KEY]["rejected"] for o in together] == [
        o.metadata[USERLM_METADATA_KEY]["rejected"] for o in one_by_one
    ]
    assert [o.usage.output_tokens for o in together] == [o.usage.output_tokens for o in one_by_one]
    assert max(batched.api.engine.stats.batch_sizes) > 1  # they really shared batches
    assert max(batched.api.engine.stats.batch_sizes) <= 8
    assert max(alone.api.engine.stats.batch_sizes) == 1
    # another seed gives other text; the same seed again the same text
    again = await run(batched, convs, configs)
    assert [o.completion for o in again] == [o.completion for o in together]
    other = await run(batched, convs, [c.merge(GenerateConfig(seed=7 + i)) for i, c in enumerate(configs)])
    assert [o.completion for o in other] != [o.completion for o in together]


async def test_per_request_params_and_usage(batched_and_alone) -> None:
    batched, _ = batched_and_alone
    convs = conversations(6)
    off = {"userlm": {"length_filter": False, "repetition_filter": False, "max_retries": 0}}
    configs = [
        GenerateConfig(
            seed=i, temperature=0.0 if i < 3 else 1.0, max_tokens=[6, 6, 6, 8, 9, 10][i], extra_body=off
        )
        for i in range(6)
    ]
    outs = await run(batched, [convs[0]] * 6, configs)
    # temperature 0 is greedy: the seed does not matter
    greedy = {o.completion for o in outs[:3]}
    assert len(greedy) == 1
    for i, o in enumerate(outs):
        md = o.metadata[USERLM_METADATA_KEY]
        assert (
            md["temperature"] == configs[i].temperature and md["seed"] == i and md["seed_source"] == "config"
        )
        assert o.usage.output_tokens <= configs[i].max_tokens + 1  # +1: the stop token, when drawn
        assert o.usage.input_tokens > 0
        assert o.usage.total_tokens == o.usage.input_tokens + o.usage.output_tokens
        if md["finish"] == "max_tokens":
            assert o.stop_reason == "max_tokens" and o.usage.output_tokens == configs[i].max_tokens


async def test_oom_splits_the_batch_and_retries(tiny_userlm_dir, tiny_userlm_model, monkeypatch) -> None:
    """An out-of-memory error (injected: any forward over more than 2 rows) splits a joining group in halves and,
    while decoding, sends the upper half of the rows back to the queue; the text is the same as without it."""
    model = tiny_userlm_model(tiny_userlm_dir, max_batch_size=8, max_wait_ms=50, max_queue=64)
    engine = model.api.engine
    convs, configs = conversations(8), mixed_configs(8)
    reference = await run(model, convs, configs)

    real = engine.batch.forward
    seen: list[int] = []

    def flaky(ids, positions, mask):
        seen.append(ids.shape[0])
        if ids.shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
        return real(ids, positions, mask)

    monkeypatch.setattr(engine.batch, "forward", flaky)
    splits_before = engine.stats.oom_splits
    outs = await run(model, convs, configs)
    assert [o.completion for o in outs] == [o.completion for o in reference]
    assert engine.stats.oom_splits > splits_before
    assert max(seen) > 2 and min(seen) <= 2

    # a single request that still does not fit fails alone, with the OOM error
    def always_oom(ids, positions, mask):
        raise torch.OutOfMemoryError("CUDA out of memory (injected)")

    monkeypatch.setattr(engine.batch, "forward", always_oom)
    with pytest.raises(torch.OutOfMemoryError):
        await model.generate(convs[0], config=GenerateConfig(seed=1))


async def test_bounded_queue_and_batch_tokens(tiny_userlm_dir, tiny_userlm_model) -> None:
    # max_batch_tokens admits ~2 rows of (prompt + 16 new tokens): bigger bursts are carried to the next batch
    model = tiny_userlm_model(
        tiny_userlm_dir, max_batch_size=16, max_queue=3, max_batch_tokens=120, max_new_tokens=16
    )
    convs = [conversations(1)[0]] * 10
    outs = await run(model, convs, [GenerateConfig(seed=i) for i in range(10)])
    assert len(outs) == 10 and all(o.usage.output_tokens > 0 for o in outs)
    assert max(model.api.engine.stats.batch_sizes) <= 3  # never more than the queue bound in flight


def test_model_loads_and_runs_on_the_single_torch_thread(tiny_userlm_dir) -> None:
    """Weights are loaded and run by one thread (runtime/torch_thread.py): two torch thread pools fighting over
    the CPU made batched generation 2.7x slower. (The engine calls the decoder and the LM head itself, so the spy
    sits on the decoder's forward.)"""
    import threading

    from userlm_plugin.runtime.local import torch_thread
    from userlm_plugin.runtime.local.engine import GenRequest
    from userlm_plugin.runtime.local.loading import load_userlm
    from userlm_plugin.runtime.settings import EngineSettings
    from userlm_plugin.runtime.types import RowSpec

    seen: list[str] = []
    loaded = load_userlm(str(tiny_userlm_dir), device="cpu")
    decoder = loaded.model.base_model
    original = decoder.forward

    def spy(*args, **kwargs):
        seen.append(threading.current_thread().name)
        return original(*args, **kwargs)

    decoder.forward = spy
    try:
        engine = loaded.engine(EngineSettings())
        ids = loaded.tokenizer.encode("hello there", add_special_tokens=False)
        engine.submit(
            GenRequest(
                ids,
                RowSpec(temperature=1.0, top_p=0.8, seed=1, max_new_tokens=4, ban_end=True, first_bans=[]),
            )
        ).result()
    finally:
        decoder.forward = original
    assert seen and all(name.startswith("userlm-torch") for name in seen)
    assert not torch_thread.on_torch_thread()
