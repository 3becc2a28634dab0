"""The running batch's KV cache: one preallocated buffer per layer, a row per request, a column per position.

Why this layout (rather than HF's left-padded `DynamicCache`): with left padding every row shares one write
column, so a request joining with a longer prompt shifts every other row, and `DynamicCache` re-concatenates the
whole cache on every step. Here row r's token at position p lives in column p of slot r: a joining request is
prefilled straight into a free slot (columns [0, prompt_len)), each decode step writes one column per row in place
(its own position), and a request that ends frees its slot, which the batch fills by moving the last live row
into it. Attention reads columns [0, width) with a per-row mask (column <= the row's position), where width is
the longest live row; padding is never copied.

The model talks to it through `update(key, value, layer_idx)`, the only call HF's attention layers make on a cache
when they are given position ids and a prepared 4D mask (transformers 5.x). Buffers grow (rows up to the engine's
`max_batch_size`, columns in steps of `COLUMN_STEP`) and keep their addresses between growths, so the decode step
can be captured in a CUDA graph (cuda_graphs.py).
"""

from __future__ import annotations

from typing import Any

import torch

COLUMN_STEP = 256


class RowKVCache:
    """K/V buffers [rows, kv_heads, columns, head_dim] per layer, written as planned by the running batch."""

    def __init__(self, n_layers: int, kv_heads: int, head_dim: int, dtype: torch.dtype, device: torch.device):
        self.n_layers, self.kv_heads, self.head_dim = n_layers, kv_heads, head_dim
        self.dtype, self.device = dtype, device
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.rows = 0
        self.columns = 0
        self._start = 0
        self._count = 0
        self._positions: torch.Tensor | None = None
        self._row_index: torch.Tensor | None = None
        self._width = 0

    # ----- capacity -----

    def reserve(self, rows: int, columns: int, live: int, width: int) -> bool:
        """Make room for `rows` x `columns`, keeping live rows [0, live) x columns [0, width). True if it grew
        (buffer addresses changed)."""
        if rows <= self.rows and columns <= self.columns:
            return False
        rows = max(rows, self.rows)
        if columns > self.columns:  # grow at least 2x: fewer reallocations (and graph re-captures)
            columns = max(-(-columns // COLUMN_STEP) * COLUMN_STEP, 2 * self.columns)
        columns = max(columns, self.columns)
        shape = (rows, self.kv_heads, columns, self.head_dim)
        keys, values = [], []
        for layer in range(self.n_layers):
            k = torch.zeros(shape, dtype=self.dtype, device=self.device)
            v = torch.zeros(shape, dtype=self.dtype, device=self.device)
            if self.keys and live and width:
                k[:live, :, :width] = self.keys[layer][:live, :, :width]
                v[:live, :, :width] = self.values[layer][:live, :, :width]
            keys.append(k)
            values.append(v)
        self.keys, self.values = keys, values
        self.rows, self.columns = rows, columns
        return True

    def move(self, dst: torch.Tensor, src: torch.Tensor, width: int) -> None:
        """Copy rows `src` into rows `dst` (columns [0, width)): compaction after requests leave."""
        for k, v in zip(self.keys, self.values, strict=True):
            k[dst, :, :width] = k[src, :, :width]
            v[dst, :, :width] = v[src, :, :width]

    # ----- what the next forward writes and reads -----

    def plan_prefill(self, start: int, count: int) -> None:
        """Next forward: prompts of rows [start, start + count), written from column 0 (attending to themselves)."""
        self._start, self._count, self._positions = start, count, None

    def plan_decode(self, count: int, positions: torch.Tensor, row_index: torch.Tensor, width: int) -> None:
        """Next forward: one token per row [0, count), written at `positions`; attention over [0, width)."""
        self._start, self._count = 0, count
        self._positions, self._row_index, self._width = positions, row_index, width

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        keys, values = self.keys[layer_idx], self.values[layer_idx]
        if self._positions is None:
            stop, length = self._start + self._count, key_states.shape[2]
            keys[self._start : stop, :, :length] = key_states
            values[self._start : stop, :, :length] = value_states
            return key_states, value_states  # a prompt attends only to itself
        keys[self._row_index, :, self._positions] = key_states[:, :, 0]
        values[self._row_index, :, self._positions] = value_states[:, :, 0]
        return keys[: self._count, :, : self._width], values[: self._count, :, : self._width]


def kv_shape(config: Any) -> tuple[int, int, int]:
    """(layers, kv heads, head dim) of a decoder config (Llama-style names)."""
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return config.num_hidden_layers, kv_heads, head_dim


__all__ = ["COLUMN_STEP", "RowKVCache", "kv_shape"]
