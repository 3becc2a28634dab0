"""Continuous batching in the local engine: requests join the running decode between steps and leave the step they
end; the same seed draws the same tokens alone, together or joining late; a cancelled request leaves the batch;
the static-shape (CUDA graph) decode step draws what the eager step draws.

Every assertion is on events and counts (which future finished first, how many steps and rows ran), never on
wall time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from userlm_plugin.runtime.local.engine import BatchingEngine, GenRequest, GenResult
from userlm_plugin.runtime.settings import EngineSettings
from userlm_plugin.runtime.types import RowSpec

NO_STOP = {"<|eot_id|>": -30.0, "<|end_of_text|>": -30.0}
"""A tiny model that (practically) never draws a stop token: its drafts run to max_new_tokens."""


@pytest.fixture
def make_engine() -> Iterator[Callable[..., tuple[BatchingEngine, Any]]]:
    """`make(model_dir, **settings) -> (engine, loaded)`: a fresh engine (own stats) on the cached model."""
    from userlm_plugin.runtime.local.loading import load_userlm

    engines: list[BatchingEngine] = []

    def make(path: Path, **settings: Any) -> tuple[BatchingEngine, Any]:
        loaded = load_userlm(str(path), device="cpu")
        engine = BatchingEngine(
            loaded.model,
            pad_id=loaded.pad_id,
            stop_ids=loaded.stop_ids,
            end_token_id=loaded.end_token_id,
            whitespace_ids=loaded.whitespace_ids,
            settings=EngineSettings(**settings),
        )
        engines.append(engine)
        return engine, loaded

    yield make
    for engine in engines:
        engine.close()


def prompt(loaded: Any, i: int) -> list[int]:
    """Prompts of different lengths (the rows' cache columns differ)."""
    text = f"<|start_header_id|>system<|end_header_id|>\nYou want help with test {i}" + " and more" * (i % 4)
    return loaded.tokenizer.encode(
        text + "<|eot_id|><|start_header_id|>user<|end_header_id|>", add_special_tokens=False
    )


def spec(seed: int, max_new_tokens: int, **kw: Any) -> RowSpec:
    return RowSpec(
        temperature=kw.pop("temperature", 1.0),
        top_p=kw.pop("top_p", 0.9),
        seed=seed,
        max_new_tokens=max_new_tokens,
        ban_end=kw.pop("ban_end", True),
        first_bans=kw.pop("first_bans", ()),
    )


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll until `condition` holds (a hang guard, not a timing assertion)."""
    deadline = time.monotonic() + 120
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.002)


def outcome(result: GenResult) -> tuple:
    return (
        result.token_ids,
        result.finish,
        result.stop_token,
        result.first_token_bans,
        result.first_content_token,
    )


def test_short_request_returns_while_a_long_one_decodes(tiny_userlm_factory, make_engine) -> None:
    engine, loaded = make_engine(tiny_userlm_factory(token_bias=NO_STOP), max_batch_size=4)
    finished: list[tuple[str, int]] = []  # (which, decode steps so far), in completion order (torch thread)
    lock = threading.Lock()

    def track(name: str, future: Future) -> None:
        def done(_: Future) -> None:
            with lock:
                finished.append((name, engine.stats.steps))

        future.add_done_callback(done)

    long = engine.submit(GenRequest(prompt(loaded, 0), spec(1, 400)))
    track("long", long)
    wait_for(lambda: engine.stats.steps >= 20, "the long request to be decoding")
    short = engine.submit(GenRequest(prompt(loaded, 1), spec(2, 6)))
    track("short", short)
    short_result, long_result = short.result(timeout=120), long.result(timeout=300)

    assert [name for name, _ in finished] == ["short", "long"]
    steps_when_short_done = finished[0][1]
    assert steps_when_short_done < 100  # the long one had ~300 steps to go
    assert len(short_result.token_ids) == 6 and short_result.finish == "max_tokens"
    assert short_result.batch_size == 2  # it joined the running batch instead of waiting for it
    assert len(long_result.token_ids) == 400 and long_result.finish == "max_tokens"
    assert engine.stats.batches == 2 and engine.stats.steps == 399  # one prefill each; decode never restarted


def test_rows_leave_the_step_they_end(tiny_userlm_factory, make_engine) -> None:
    """Finished rows stop decoding: the batch runs each row's own number of steps, not the longest one's."""
    engine, loaded = make_engine(tiny_userlm_factory(token_bias=NO_STOP), max_batch_size=8, max_wait_ms=300)
    budgets = [2, 3, 40, 7, 40, 1]
    futures = [engine.submit(GenRequest(prompt(loaded, i), spec(i, n))) for i, n in enumerate(budgets)]
    results = [f.result(timeout=120) for f in futures]
    assert engine.stats.batches == 1  # one prefill for the burst
    assert [len(r.token_ids) for r in results] == budgets
    assert engine.stats.steps == max(budgets) - 1  # the first token of each comes from the prefill
    assert engine.stats.row_steps == sum(n - 1 for n in budgets)  # every row left the step it ended
    assert engine.batch.n == 0


def mixed_requests(loaded: Any, n: int) -> list[GenRequest]:
    """Per-request temperature (0 = greedy), top_p, budget, end ban and first-token bans, prompts of different
    lengths."""
    i_ids = loaded.tokenizer.encode("I", add_special_tokens=False)
    you = loaded.tokenizer.encode(" you", add_special_tokens=False)
    bans = [(), (i_ids,), (i_ids, you, [you[0], i_ids[0]])]
    return [
        GenRequest(
            prompt(loaded, i),
            spec(
                100 + i,
                [5, 30, 12, 20][i % 4],
                temperature=[1.0, 0.0, 0.7, 1.3][i % 4],
                top_p=[0.8, 1.0, 0.95][i % 3],
                ban_end=i % 2 == 0,
                first_bans=bans[i % 3],
            ),
        )
        for i in range(n)
    ]


def test_same_seed_same_tokens_alone_together_or_joining_late(tiny_userlm_dir, make_engine) -> None:
    engine, loaded = make_engine(tiny_userlm_dir, max_batch_size=8, max_wait_ms=50)
    requests = mixed_requests(loaded, 10)
    alone = [engine.submit(r).result(timeout=120) for r in requests]
    assert max(engine.stats.batch_sizes) == 1

    together = [f.result(timeout=120) for f in [engine.submit(r) for r in requests]]
    assert max(engine.stats.batch_sizes) == 8  # capped at max_batch_size; the rest joined as rows left

    first = [engine.submit(r) for r in requests[:3]]
    steps = engine.stats.steps
    wait_for(lambda: engine.stats.steps >= steps + 3, "the first three to be decoding")
    late = first + [engine.submit(r) for r in requests[3:]]
    staggered = [f.result(timeout=120) for f in late]

    assert [outcome(r) for r in together] == [outcome(r) for r in alone]
    assert [outcome(r) for r in staggered] == [outcome(r) for r in alone]
    for a, b, c in zip(alone, together, staggered, strict=True):
        assert a.end_logprob == pytest.approx(b.end_logprob, abs=1e-4)
        assert a.end_logprob == pytest.approx(c.end_logprob, abs=1e-4)
    assert any(r.first_token_bans for r in alone)
    assert len({tuple(r.token_ids) for r in alone}) > 5  # seeds and settings really differ


def test_cancelled_request_leaves_the_batch(tiny_userlm_factory, make_engine) -> None:
    engine, loaded = make_engine(tiny_userlm_factory(token_bias=NO_STOP), max_batch_size=4)
    long = engine.submit(GenRequest(prompt(loaded, 0), spec(1, 400)))
    wait_for(lambda: engine.stats.steps >= 5, "the request to be decoding")
    assert long.cancel()  # a client that left
    wait_for(lambda: engine.batch.n == 0, "the cancelled row to leave")
    assert engine.stats.steps < 399
    after = engine.submit(GenRequest(prompt(loaded, 2), spec(3, 4))).result(timeout=120)
    assert after.batch_size == 1 and len(after.token_ids) == 4


def test_static_shape_step_draws_what_the_eager_step_draws(tiny_userlm_dir, make_engine) -> None:
    """The CUDA-graph step (rows rounded up to a power of two, dead slots, width rounded up, every sampler stage
    on) run eagerly on CPU: the same tokens as the eager step, while rows join and leave."""
    from userlm_plugin.runtime.local.cuda_graphs import DecodeGraphs

    eager, loaded = make_engine(tiny_userlm_dir, max_batch_size=8, max_wait_ms=50)
    static, _ = make_engine(tiny_userlm_dir, max_batch_size=8, max_wait_ms=50)
    static.batch.graphs = graphs = DecodeGraphs(static.batch, capture=False)
    requests = mixed_requests(loaded, 7)
    want = [f.result(timeout=120) for f in [eager.submit(r) for r in requests]]
    got = [f.result(timeout=120) for f in [static.submit(r) for r in requests]]
    assert [outcome(r) for r in got] == [outcome(r) for r in want]
    for a, b in zip(want, got, strict=True):
        assert a.end_logprob == pytest.approx(b.end_logprob, abs=1e-4)
    assert graphs.bucket(5, 100) == (8, 256) and graphs.bucket(1, 10) == (1, 256)


def test_eager_attention_draws_what_sdpa_draws(tiny_userlm_dir, make_engine) -> None:
    """Models on HF's eager attention get an additive float mask instead of SDPA's boolean one."""
    from transformers import AutoModelForCausalLM

    sdpa, loaded = make_engine(tiny_userlm_dir, max_batch_size=8, max_wait_ms=50)
    model = AutoModelForCausalLM.from_pretrained(tiny_userlm_dir, attn_implementation="eager").eval()
    eager = BatchingEngine(
        model,
        pad_id=loaded.pad_id,
        stop_ids=loaded.stop_ids,
        end_token_id=loaded.end_token_id,
        whitespace_ids=loaded.whitespace_ids,
        settings=EngineSettings(max_batch_size=8, max_wait_ms=50),
    )
    try:
        requests = mixed_requests(loaded, 6)
        want = [f.result(timeout=120) for f in [sdpa.submit(r) for r in requests]]
        got = [f.result(timeout=120) for f in [eager.submit(r) for r in requests]]
    finally:
        eager.close()
    assert eager.batch._float_mask and not sdpa.batch._float_mask
    assert [outcome(r) for r in got] == [outcome(r) for r in want]


def test_a_request_the_model_cannot_take_fails_at_once(tiny_userlm_dir, make_engine) -> None:
    from userlm_plugin.errors import ConfigError

    engine, loaded = make_engine(tiny_userlm_dir)
    vocab = loaded.model.config.vocab_size
    for ids, row, field in [
        ([*prompt(loaded, 1), vocab + 5], spec(1, 4), f"token id {vocab + 5}"),
        ([-1, *prompt(loaded, 1)], spec(1, 4), "token id -1"),
        ([], spec(1, 4), "prompt_ids is empty"),
        (prompt(loaded, 1), spec(1, 0), "max_new_tokens must be at least 1"),
    ]:
        with pytest.raises(ConfigError, match=field):
            engine.submit(GenRequest(ids, row)).result(timeout=10)
    assert engine.stats.rows == 0


def test_a_failing_request_fails_alone(tiny_userlm_dir, make_engine, monkeypatch) -> None:
    """An error while prefilling a group (here injected for one marked prompt) fails only the request that causes
    it; the others are drawn as if it had never been there."""
    engine, loaded = make_engine(tiny_userlm_dir, max_batch_size=8, max_wait_ms=300)
    requests = mixed_requests(loaded, 4)
    alone = [engine.submit(r).result(timeout=120) for r in requests]
    marker = loaded.tokenizer.encode("zebra", add_special_tokens=False)
    poisoned = GenRequest([*prompt(loaded, 9), *marker], spec(1, 4))
    real = engine.batch.forward

    def forward(ids, positions, mask):
        k = len(marker)
        if any(row[i : i + k] == marker for row in ids.tolist() for i in range(len(row) - k + 1)):
            raise ValueError("injected failure for the marked prompt")
        return real(ids, positions, mask)

    monkeypatch.setattr(engine.batch, "forward", forward)
    futures = [engine.submit(r) for r in [*requests[:2], poisoned, *requests[2:]]]
    with pytest.raises(ValueError, match="injected"):
        futures[2].result(timeout=120)
    good = [f.result(timeout=120) for f in futures[:2] + futures[3:]]
    assert [outcome(r) for r in good] == [outcome(r) for r in alone]
    assert engine.stats.batches == 4 + 4  # four alone, then the failed group of five retried one by one
