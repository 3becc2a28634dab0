"""Continuous batching: requests from Inspect's samples join the running decode between steps and leave when done.

Why: in an eval, user-turn requests arrive one at a time as each sample's assistant answers. With static batches a
late request waited for the whole running batch (a 6-token turn behind a 1,200-token batch), and finished rows kept
decoding until the longest one ended. Here a request is prefilled into the running batch at the next step boundary
(`RunningBatch.join`; several arrivals are prefilled together) and its result is handed back the step it ends
(its own stop token or max_new_tokens), while the others keep decoding.

Threads: callers on any event loop hand a request to `generate`/`submit` and await a `concurrent.futures.Future`
(so the engine survives the several loops tests and `inspect_ai.eval` create). A daemon driver thread waits for
work; the model runs on the process's one torch thread (torch_thread.py) in slices of at most `SLICE_S`, so several
engines (models) in one process take turns instead of one starving the others.

Protection of the device (Inspect's adaptive concurrency ignores a provider's `max_connections`; docs/inspect.md):
at most `max_batch_size` rows decode at once, at most `max_batch_tokens` rows x (longest prompt + max new tokens),
at most `max_queue` requests queued or running (callers wait for a slot: back-pressure). An out-of-memory error
while prefilling splits the joining group in halves; while decoding it sends the upper half of the rows back to the
queue (they restart later and, seeds being counter-based, draw the same tokens) and caps the batch until it drains.
Only a single row that still does not fit fails, alone. A caller that cancels its future (a client that left) has
its row dropped at the next step.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from ...errors import ConfigError
from ..settings import EngineSettings
from ..types import RowSpec
from . import torch_thread
from .batch import LiveRow, RunningBatch

logger = logging.getLogger(__name__)

SLICE_S = 0.25
"""Longest stretch the engine holds the torch thread before letting other queued torch work run."""


@dataclass
class GenRequest:
    prompt_ids: list[int]
    row: RowSpec


@dataclass
class GenResult:
    token_ids: list[int]
    """Generated tokens before the stop token (which is excluded)."""
    stop_token: int | None
    """The stop token that ended the row: an eos id or the end-of-conversation token (None: max_new_tokens)."""
    finish: Literal["stop", "max_tokens"]
    prompt_tokens: int
    batch_size: int
    """The most rows that decoded together while this request was in the batch."""
    queued_s: float
    """From submission to joining the running batch."""
    generate_s: float
    """From joining the running batch to the result."""
    first_token_bans: int
    first_content_token: int | None = None
    end_logprob: float | None = None
    """log P(end token) at temperature 1 before any ban, at the first content position (sampling.py)."""


@dataclass
class EngineStats:
    batches: int = 0
    """Prefill groups: requests that joined the running decode together."""
    rows: int = 0
    """Requests admitted."""
    batch_sizes: list[int] = field(default_factory=list)
    """Rows decoding right after each join (what `serve`'s /health reports)."""
    steps: int = 0
    """Decode steps."""
    row_steps: int = 0
    """Sum of live rows over decode steps (mean occupancy = row_steps / steps)."""
    generate_s: float = 0.0
    """Wall time in model work: prefills and decode steps, sampler included."""
    prefill_s: float = 0.0
    sampler_s: float = 0.0
    """Host time in the sampler (on CUDA: launch time only, the work is asynchronous)."""
    oom_splits: int = 0
    preempted: int = 0
    """Rows sent back to the queue by an out-of-memory error while decoding."""


@dataclass
class _Ticket:
    request: GenRequest
    future: Future[GenResult]
    enqueued: float
    joined: float = 0.0
    alone: bool = False
    """Out of memory when joining a busy batch: join only once the batch is empty."""


def is_oom(error: BaseException) -> bool:
    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


class BatchingEngine:
    """Owns one model's running batch; takes requests from any thread or event loop."""

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
        self.settings = settings or EngineSettings()
        self.stats = EngineStats()
        self.batch = torch_thread.call(  # its buffers are made, like all torch work, on the torch thread
            RunningBatch,
            model,
            stop_ids=self.stop_ids,
            end_token_id=end_token_id,
            whitespace_ids=whitespace_ids,
            max_rows=self.settings.max_batch_size,
        )
        self._inbox: queue.SimpleQueue[_Ticket | None] = queue.SimpleQueue()
        self._pending: deque[_Ticket] = deque()
        self._slots = threading.BoundedSemaphore(self.settings.max_queue)
        self._row_cap = self.settings.max_batch_size
        self._closing = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    # ----- public -----

    async def generate(self, request: GenRequest) -> GenResult:
        """Queue a request and wait for its result without blocking the event loop."""
        while not self._slots.acquire(blocking=False):  # back-pressure: max_queue requests are in the engine
            await asyncio.sleep(0.005)
        return await asyncio.wrap_future(self.submit(request, slot_taken=True))

    def submit(self, request: GenRequest, *, slot_taken: bool = False) -> Future[GenResult]:
        """Queue a request from any thread; cancelling the future drops the request (queued or decoding). A request
        the model cannot take fails at once, with a `ConfigError` (on CUDA an out-of-range token id would be a
        device-side assert that poisons every later request)."""
        future: Future[GenResult] = Future()
        problem = self._invalid(request)
        if problem is not None:
            if slot_taken:
                self._slots.release()
            future.set_exception(ConfigError(problem))
            return future
        if not slot_taken:
            self._slots.acquire()
        self._ensure_driver()
        future.add_done_callback(lambda _: self._slots.release())
        self._inbox.put(_Ticket(request, future, time.perf_counter()))
        return future

    def close(self) -> None:
        """Finish the queued and running requests, then stop the driver thread."""
        if self._thread is not None and self._thread.is_alive():
            self._inbox.put(None)
            self._thread.join(timeout=5)
        self._thread = None

    def _invalid(self, request: GenRequest) -> str | None:
        ids, vocab = request.prompt_ids, self.batch.consts.whitespace.shape[0]
        if not ids:
            return (
                "userlm engine: prompt_ids is empty; render the prompt with the model's chat template first"
            )
        if min(ids) < 0 or max(ids) >= vocab:
            bad = next(t for t in ids if not 0 <= t < vocab)
            return (
                f"userlm engine: prompt_ids holds token id {bad}, outside the model's vocabulary (0..{vocab - 1}); "
                "encode the prompt with this model's tokenizer"
            )
        if request.row.max_new_tokens < 1:
            return f"userlm engine: max_new_tokens must be at least 1, got {request.row.max_new_tokens}"
        return None

    # ----- the driver thread -----

    def _ensure_driver(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._closing = False
                self._thread = threading.Thread(target=self._drive, name="userlm-engine", daemon=True)
                self._thread.start()

    def _drive(self) -> None:
        while True:
            if not self._pending and not self.batch.n:
                if self._closing:
                    return
                ticket = self._inbox.get()  # idle: sleep until a request arrives
                if ticket is None:
                    return
                self._pending.append(ticket)
                self._gather_burst()
            try:
                torch_thread.call(self._run_slice)
            except BaseException as error:  # noqa: BLE001 - an engine bug must not leave callers waiting
                logger.exception("userlm engine failed")
                for row in self.batch.truncate(0):
                    _fail(row.ticket, error)
                while self._pending:
                    _fail(self._pending.popleft(), error)

    def _gather_burst(self) -> None:
        """The batch is empty: collect a burst of concurrent arrivals (each sample renders its prompt on the event
        loop, a few ms apart) so they share one prefill. Wait `max_wait_ms` after the latest arrival, at most
        `max_hold_ms` in all. Requests arriving later join the running decode between steps without waiting."""
        settings = self.settings
        hold_until = time.perf_counter() + settings.max_hold_ms / 1000
        while len(self._pending) < settings.max_batch_size:
            timeout = min(settings.max_wait_ms / 1000, hold_until - time.perf_counter())
            if timeout <= 0:
                return
            try:
                ticket = self._inbox.get(timeout=timeout)
            except queue.Empty:
                return
            if ticket is None:
                self._closing = True
                return
            self._pending.append(ticket)

    # ----- on the torch thread -----

    def _run_slice(self) -> None:
        deadline = time.perf_counter() + SLICE_S
        with torch.inference_mode():
            while True:
                self._drain_inbox()
                self._admit()
                if not self.batch.n:
                    return
                self._decode_step()
                if time.perf_counter() > deadline:
                    return

    def _drain_inbox(self) -> None:
        while True:
            try:
                ticket = self._inbox.get_nowait()
            except queue.Empty:
                return
            if ticket is None:
                self._closing = True
            else:
                self._pending.append(ticket)

    def _admit(self) -> None:
        """Join as many queued requests as the limits allow (always at least one into an empty batch).

        Into a running batch, arrivals join as a group once the burst is over (no arrival for `max_wait_ms`) or
        the first of them has waited `max_hold_ms`: one prefill for a burst instead of one per step."""
        if not self._pending:
            return
        if self.batch.n:
            now, settings = time.perf_counter(), self.settings
            if (
                now - self._pending[-1].enqueued < settings.max_wait_ms / 1000
                and now - self._pending[0].enqueued < settings.max_hold_ms / 1000
                and self.batch.n + len(self._pending) < self.settings.max_batch_size
            ):
                return
        group: list[_Ticket] = []
        live = [(len(r.prompt_ids), r.spec.max_new_tokens) for r in self.batch.live]
        limit = min(self._row_cap, self.settings.max_batch_size)
        while self._pending and len(live) < limit:
            ticket = self._pending[0]
            if ticket.future.done():  # cancelled while queued
                self._pending.popleft()
                continue
            request = ticket.request
            shape = (len(request.prompt_ids), request.row.max_new_tokens)
            if live and (ticket.alone or _cost([*live, shape]) > self.settings.max_batch_tokens):
                break
            live.append(shape)
            group.append(self._pending.popleft())
        if group:
            self._join(group)

    def _join(self, group: list[_Ticket]) -> None:
        now = time.perf_counter()
        for ticket in group:
            ticket.joined = now
        rows = [LiveRow(t.request.prompt_ids, t.request.row, ticket=t) for t in group]
        try:
            ended = self.batch.join(rows)
        except Exception as error:  # noqa: BLE001 - handed to the waiting callers
            self._account(now, prefill=True)
            if is_oom(error):
                self._free_memory(f"prefilling {len(group)} request(s)")
                if len(group) > 1:
                    half = len(group) // 2
                    self._pending.extendleft(reversed(group[half:]))
                    self._join(group[:half])
                    return
                if self.batch.n:  # retry alone once the batch has drained
                    group[0].alone = True
                    self._pending.appendleft(group[0])
                    return
            elif len(group) > 1:  # another error (a bad request): find it, so it fails alone
                for ticket in group:
                    self._join([ticket])
                return
            for ticket in group:
                _fail(ticket, error)
            return
        self._account(now, prefill=True)
        self.stats.batches += 1
        self.stats.rows += len(group)
        self.stats.batch_sizes.append(self.batch.n)
        self._finish(ended)

    def _decode_step(self) -> None:
        n = self.batch.n
        t0 = time.perf_counter()
        try:
            ended = self.batch.step()
        except Exception as error:  # noqa: BLE001 - handed to the waiting callers
            self._account(t0)
            if is_oom(error) and n > 1:
                self._free_memory(f"decoding {n} rows")
                keep = n // 2
                self._row_cap = keep
                self.stats.preempted += n - keep
                self._pending.extendleft(reversed([r.ticket for r in self.batch.truncate(keep)]))
                return
            for row in self.batch.truncate(0):
                _fail(row.ticket, error)
            return
        self._account(t0)
        self.stats.steps += 1
        self.stats.row_steps += n
        self._finish(ended)
        cancelled = [r for r in self.batch.live if r.ticket.future.done()]
        if cancelled:
            self.batch.remove(cancelled)
        if not self.batch.n:
            self._row_cap = self.settings.max_batch_size

    def _finish(self, ended: list[LiveRow]) -> None:
        if not ended:
            return
        self.batch.remove(ended)
        now = time.perf_counter()
        for row in ended:
            ticket = row.ticket
            result = GenResult(
                token_ids=row.tokens,
                stop_token=row.stop_token,
                finish=row.finish,  # type: ignore[arg-type]
                prompt_tokens=len(row.prompt_ids),
                batch_size=row.peak_batch,
                queued_s=ticket.joined - ticket.enqueued,
                generate_s=now - ticket.joined,
                first_token_bans=row.first_token_bans,
                first_content_token=row.first_content_token,
                end_logprob=row.end_logprob,
            )
            try:
                ticket.future.set_result(result)
            except InvalidStateError:  # cancelled meanwhile
                pass

    def _account(self, since: float, *, prefill: bool = False) -> None:
        elapsed = time.perf_counter() - since
        self.stats.generate_s += elapsed
        if prefill:
            self.stats.prefill_s += elapsed
        self.stats.sampler_s = self.batch.sampler_s

    def _free_memory(self, what: str) -> None:
        self.stats.oom_splits += 1
        logger.warning("userlm: out of memory %s; backing off and retrying", what)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _cost(shapes: Sequence[tuple[int, int]]) -> int:
    """Cache cells a set of rows needs: rows x the longest prompt + max new tokens (the cache is a rectangle)."""
    return len(shapes) * max(p + m for p, m in shapes)


def _fail(ticket: _Ticket, error: BaseException) -> None:
    try:
        ticket.future.set_exception(error)
    except InvalidStateError:
        pass


__all__ = ["BatchingEngine", "EngineStats", "GenRequest", "GenResult", "is_oom"]
