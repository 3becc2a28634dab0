"""Dynamic batching: concurrent requests from Inspect's samples -> batched `model.generate` calls.

Inspect's adaptive concurrency ignores a provider's `max_connections` (shared notes G1/G2), so the engine protects
the device itself: at most `max_batch_size` rows and `max_batch_tokens` padded tokens per batch, at most
`max_queue` requests waiting. One daemon worker thread owns the model; callers on any event loop hand it a request
and await a `concurrent.futures.Future`, so torch work never runs on an event loop and the engine survives the
several loops tests and `inspect_ai.eval` create. A CUDA out-of-memory error splits the batch in halves and
retries; only a single row that still does not fit fails (that request alone).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from transformers import GenerationConfig, LogitsProcessorList

from ..settings import EngineSettings
from ..types import RowSpec
from . import torch_thread
from .sampling import RowSampler

logger = logging.getLogger(__name__)


@dataclass
class GenRequest:
    prompt_ids: list[int]
    row: RowSpec


@dataclass
class GenResult:
    token_ids: list[int]
    """Generated tokens before the stop token (which is excluded)."""
    stop_token: int | None
    finish: Literal["stop", "max_tokens"]
    prompt_tokens: int
    batch_size: int
    queued_s: float
    generate_s: float
    """Wall time of the batched `generate` call this request rode in."""
    first_token_bans: int
    first_content_token: int | None = None


@dataclass
class EngineStats:
    batches: int = 0
    rows: int = 0
    generate_s: float = 0.0
    """Total wall time inside `model.generate` (includes `sampler_s`)."""
    sampler_s: float = 0.0
    """Time inside our per-row sampler (our overhead within `generate`)."""
    oom_splits: int = 0
    batch_sizes: list[int] = field(default_factory=list)


@dataclass
class _Item:
    request: GenRequest
    future: Future[GenResult]
    enqueued: float


def is_oom(error: BaseException) -> bool:
    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


class BatchingEngine:
    """Owns one model; batches requests from any thread or event loop."""

    def __init__(
        self,
        model: Any,
        *,
        pad_id: int,
        stop_ids: Sequence[int],
        end_token_id: int | None,
        whitespace_ids: frozenset[int],
        settings: EngineSettings | None = None,
    ) -> None:
        self.model = model
        self.pad_id = pad_id
        self.stop_ids = list(stop_ids)
        self.end_token_id = end_token_id
        self.whitespace_ids = whitespace_ids
        self.settings = settings or EngineSettings()
        self.stats = EngineStats()
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._slots = threading.BoundedSemaphore(self.settings.max_queue)
        self._carry: deque[_Item] = deque()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    # ----- public -----

    async def generate(self, request: GenRequest) -> GenResult:
        """Queue a request and wait for its result without blocking the event loop."""
        while not self._slots.acquire(blocking=False):  # back-pressure: the queue is full
            await asyncio.sleep(0.005)
        future = self.submit(request, slot_taken=True)
        return await asyncio.wrap_future(future)

    def submit(self, request: GenRequest, *, slot_taken: bool = False) -> Future[GenResult]:
        if not slot_taken:
            self._slots.acquire()
        self._ensure_worker()
        future: Future[GenResult] = Future()
        future.add_done_callback(lambda _: self._slots.release())
        self._queue.put(_Item(request, future, time.perf_counter()))
        return future

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=5)
        self._thread = None

    # ----- worker -----

    def _ensure_worker(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="userlm-engine", daemon=True)
                self._thread.start()

    def _next(self, timeout: float | None) -> _Item | None:
        if self._carry:
            return self._carry.popleft()
        if timeout is not None and timeout <= 0:
            return self._queue.get_nowait()
        return self._queue.get(timeout=timeout)

    def _cost(self, items: Sequence[_Item]) -> int:
        longest = max(len(i.request.prompt_ids) + i.request.row.max_new_tokens for i in items)
        return longest * len(items)

    def _loop(self) -> None:
        settings = self.settings
        while True:
            first = self._next(None)
            if first is None:
                return
            batch = [first]
            hold_until = time.perf_counter() + settings.max_hold_ms / 1000
            while len(batch) < settings.max_batch_size:
                now = time.perf_counter()
                try:  # wait max_wait_ms after the latest arrival, within the hold cap
                    item = self._next(min(settings.max_wait_ms / 1000, hold_until - now))
                except queue.Empty:
                    break
                if item is None:  # close(): finish this batch, then stop
                    self._queue.put(None)
                    break
                if self._cost([*batch, item]) > settings.max_batch_tokens:
                    self._carry.append(item)
                    break
                batch.append(item)
            live = [i for i in batch if i.future.set_running_or_notify_cancel()]
            if live:
                self._execute(live)

    def _execute(self, batch: list[_Item]) -> None:
        try:
            results = torch_thread.call(self.run_batch, [i.request for i in batch])
        except Exception as error:  # noqa: BLE001 - handed to the waiting callers
            if is_oom(error) and len(batch) > 1:
                self.stats.oom_splits += 1
                logger.warning("userlm: out of memory on a batch of %d; splitting and retrying", len(batch))
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                half = len(batch) // 2
                self._execute(batch[:half])
                self._execute(batch[half:])
                return
            for item in batch:
                item.future.set_exception(error)
            return
        now = time.perf_counter()
        for item, result in zip(batch, results, strict=True):
            result.queued_s = now - item.enqueued - result.generate_s
            item.future.set_result(result)

    def run_batch(self, requests: Sequence[GenRequest]) -> list[GenResult]:
        """One left-padded batched `generate` call (blocking; the worker thread calls it)."""
        device = self.model.device
        width = max(len(r.prompt_ids) for r in requests)
        ids = torch.full((len(requests), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(requests), width), dtype=torch.long)
        for i, r in enumerate(requests):
            ids[i, width - len(r.prompt_ids) :] = torch.tensor(r.prompt_ids, dtype=torch.long)
            mask[i, width - len(r.prompt_ids) :] = 1
        sampler = RowSampler(
            [r.row for r in requests],
            stop_ids=self.stop_ids,
            end_token_id=self.end_token_id,
            whitespace_ids=self.whitespace_ids,
        )
        config = GenerationConfig(
            do_sample=False,
            num_beams=1,
            max_new_tokens=max(r.row.max_new_tokens for r in requests) + 1,  # +1: room for a forced stop
            eos_token_id=self.stop_ids,
            pad_token_id=self.pad_id,
        )
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                generation_config=config,
                logits_processor=LogitsProcessorList([sampler]),
            )
        elapsed = time.perf_counter() - t0
        finishes = sampler.finish_reasons()
        firsts = sampler.first_content_tokens()
        self.stats.batches += 1
        self.stats.rows += len(requests)
        self.stats.generate_s += elapsed
        self.stats.sampler_s += sampler.seconds
        self.stats.batch_sizes.append(len(requests))
        results = []
        stops = set(self.stop_ids)
        for i, (r, row) in enumerate(zip(requests, out[:, width:].tolist(), strict=True)):
            cut = next((k for k, t in enumerate(row) if t in stops), len(row))
            tokens = row[:cut][: r.row.max_new_tokens]
            results.append(
                GenResult(
                    token_ids=tokens,
                    stop_token=row[cut] if cut < len(row) and finishes[i] == "stop" else None,
                    finish=finishes[i],  # type: ignore[arg-type]
                    prompt_tokens=len(r.prompt_ids),
                    batch_size=len(requests),
                    queued_s=0.0,
                    generate_s=elapsed,
                    first_token_bans=sampler.first_token_bans_applied[i],
                    first_content_token=firsts[i],
                )
            )
        return results
