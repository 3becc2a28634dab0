"""Decode steps replayed from CUDA graphs (CUDA only; NOT YET RUN ON A GPU: see docs/engine.md).

Why: an eager decode step of an 8B Llama launches ~1,000 small kernels, and on an H200 the host cannot launch
them as fast as the GPU runs them (one eager step at batch 32 kept the GPU busy for a third of its time). A CUDA
graph replays the whole step (decoder, LM head, sampler) with one launch.

A graph needs fixed shapes and fixed addresses, so the step here is the static-shape twin of
`RunningBatch.decode`: it runs `rows` rows (the live count rounded up to a power of two; rows past the live count
are dead slots whose results are ignored, their cache writes clamped into the buffer) over `width` columns
(rounded up to `WIDTH_STEP`), reading only persistent buffers (the KV cache, the sampler state, the index
buffer), with every sampler stage on (`sample_step`'s full form, no host sync). One graph per (rows, width)
bucket, captured the second time a bucket is used (the first, eager, run is the warm-up that torch requires) and
dropped whenever the batch reallocates a buffer. A capture failure turns graphs off for the process's batch and
the eager step carries on.

`capture=False` runs the same static step eagerly: the tests use it on CPU to check that the bucketed step draws
exactly what the eager step draws.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch

from .sampling import sample_step

logger = logging.getLogger(__name__)

WIDTH_STEP = 256


def graphs_wanted(device: torch.device) -> bool:
    """CUDA graphs on CUDA unless `USERLM_CUDA_GRAPHS=0`."""
    return device.type == "cuda" and os.environ.get("USERLM_CUDA_GRAPHS", "1") != "0"


class DecodeGraphs:
    """Per-bucket CUDA graphs of the decode step of one `RunningBatch`."""

    def __init__(self, batch: Any, *, capture: bool = True) -> None:
        self.batch = batch
        self.capture = capture
        self.enabled = True
        self._graphs: dict[tuple[int, int], tuple[Any, torch.Tensor]] = {}
        self._warmed: set[tuple[int, int]] = set()
        self._pool: Any = None
        self.replays = 0
        self.captures = 0

    def invalidate(self) -> None:
        """Buffers moved: every captured graph points at freed memory."""
        self._graphs.clear()
        self._warmed.clear()

    def bucket(self, n: int, width: int) -> tuple[int, int]:
        cache = self.batch.cache
        rows = min(1 << max(n - 1, 0).bit_length(), cache.rows)
        return rows, min(-(-width // WIDTH_STEP) * WIDTH_STEP, cache.columns)

    def ready(self, n: int, width: int) -> bool:
        return self.enabled and n > 0

    def replay(self, n: int, width: int) -> torch.Tensor:
        """One decode step for the live rows [0, n); returns their packed draws."""
        key = self.bucket(n, width)
        if not self.capture:
            return self.static_step(*key)[:n]
        if key in self._graphs:
            graph, out = self._graphs[key]
            graph.replay()
            self.replays += 1
            return out[:n]
        if key not in self._warmed:
            self._warmed.add(key)
            return self.static_step(*key)[:n]
        try:
            self._graphs[key] = self._capture(*key)
        except Exception:  # noqa: BLE001 - fall back to the eager step, which needs no graph
            logger.warning("userlm: CUDA graph capture failed; decoding eagerly from now on", exc_info=True)
            self.enabled = False
            return self.static_step(*key)[:n]
        return self.replay(n, width)

    def static_step(self, rows: int, width: int) -> torch.Tensor:
        """The decode step over `rows` slots and `width` columns, shapes and addresses fixed (capturable)."""
        batch = self.batch
        st, cache = batch.state, batch.cache
        positions = st.pos[:rows].clamp(max=cache.columns - 1)  # dead slots: keep their writes in the buffer
        index = batch._columns(max(rows, width))
        cache.plan_decode(rows, positions, index[:rows], width)
        keep = index[:width][None, :] <= positions[:, None]
        hidden = batch.forward(st.last[:rows, None], positions[:, None], batch._mask(keep[:, None, None]))
        packed = sample_step(batch.head(hidden[:, 0]), st, 0, rows, batch.consts)
        st.pos[:rows] += 1
        return packed

    def _capture(self, rows: int, width: int) -> tuple[Any, torch.Tensor]:
        self.batch._columns(max(self.batch.cache.rows, self.batch.cache.columns))  # no growth inside a graph
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        torch.cuda.synchronize()
        with torch.cuda.graph(graph, pool=self._pool):
            out = self.static_step(rows, width)
        self.captures += 1
        return graph, out


__all__ = ["WIDTH_STEP", "DecodeGraphs", "graphs_wanted"]
