"""The running batch: the rows decoding right now, their KV cache and sampler state, stepped one token at a time.

`join` prefills new requests (batched together, straight into free cache slots) and draws their first token;
`step` runs one decode step for every live row; `remove` drops rows that ended, moving the last live rows into
their slots. The engine (engine.py) decides who joins and when; this class only runs the model. Every call here
runs on the torch thread (torch_thread.py).

Per step the host does: one forward of the model's decoder on [rows, 1] with position ids and a prepared 4D mask,
the LM head on the last hidden state only, `sampling.sample_step` on the device, and ONE device->host transfer
(token, first-token-ban count, end logprob per row) followed by per-row bookkeeping (append, stop check). On CUDA
the whole step can be replayed from a captured graph (cuda_graphs.py).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..types import RowSpec
from .cuda_graphs import DecodeGraphs, graphs_wanted
from .kv_cache import RowKVCache, kv_shape
from .sampling import RowTensors, SamplerConstants, sample_step


@dataclass
class LiveRow:
    """Host-side bookkeeping of one request in the running batch."""

    prompt_ids: Sequence[int]
    spec: RowSpec
    ticket: Any = None
    """The engine's handle for this request (its future and timings)."""
    tokens: list[int] = field(default_factory=list)
    position: int = 0
    """Cache column (= position) of the token fed to the next decode step: prompt length + tokens drawn - 1."""
    content_from: int | None = None
    """Index in `tokens` of the first content (non-whitespace) token."""
    finish: str | None = None
    stop_token: int | None = None
    first_token_bans: int = 0
    end_logprob: float | None = None
    peak_batch: int = 0

    @property
    def first_content_token(self) -> int | None:
        """The first non-whitespace token drawn (the one the first-token filter governs)."""
        return None if self.content_from is None else self.tokens[self.content_from]

    def needs_end_logprob(self) -> bool:
        return self.content_from is None

    def needs_bans(self) -> bool:
        """Inside the first-token filter's window (fewer content tokens than the longest banned sequence)."""
        if not self.spec.first_bans:
            return False
        window = max(len(b) for b in self.spec.first_bans)
        return self.content_from is None or len(self.tokens) - self.content_from < window


class RunningBatch:
    """Owns the device state of the live rows of one model."""

    def __init__(
        self,
        model: Any,
        *,
        stop_ids: Sequence[int],
        end_token_id: int | None,
        whitespace_ids: frozenset[int],
        max_rows: int,
    ) -> None:
        if model.config._attn_implementation not in ("sdpa", "eager"):
            model.set_attn_implementation("sdpa")  # our prepared 4D masks need SDPA (or eager) attention
        self.model = model
        self.base = model.base_model
        self.head = model.get_output_embeddings()
        self.device = torch.device(model.device)
        self.max_rows = max_rows
        # the end token ends a draft like a stop token: the end is decided on its id (docs/termination.md)
        self.stops = frozenset([*stop_ids, *([] if end_token_id is None else [end_token_id])])
        self.whitespace = whitespace_ids
        self.cache = RowKVCache(*kv_shape(model.config), dtype=model.dtype, device=self.device)
        vocab = self.head.weight.shape[0]
        self.consts = SamplerConstants.build(vocab, whitespace_ids, end_token_id, self.device)
        self.state = RowTensors.empty(0, self.device)
        self.live: list[LiveRow] = []
        self._float_mask = model.config._attn_implementation == "eager"
        self._arange = torch.arange(0, device=self.device)
        self.sampler_s = 0.0
        self.graphs: DecodeGraphs | None = DecodeGraphs(self) if graphs_wanted(self.device) else None
        """Set when decode steps are replayed from CUDA graphs (CUDA only)."""

    @property
    def n(self) -> int:
        return len(self.live)

    def width(self) -> int:
        return max(r.position for r in self.live) + 1 if self.live else 0

    # ----- joining -----

    def join(self, rows: Sequence[LiveRow]) -> list[LiveRow]:
        """Prefill `rows` into slots [n, n + len(rows)) and draw their first token; returns those that already
        ended (a stop token first, or max_new_tokens=1). A failure (e.g. out of memory) leaves the batch as it was."""
        start, count = self.n, len(rows)
        lengths = [len(r.prompt_ids) for r in rows]
        longest = max(lengths)
        self._reserve(start + count, rows)
        self.state.write(start, [r.spec for r in rows])
        ids = torch.zeros((count, longest), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : lengths[i]] = torch.tensor(list(r.prompt_ids), dtype=torch.long)
        ids = ids.to(self.device)
        length_t = torch.tensor(lengths, device=self.device)
        cols = self._columns(longest)
        keep = (cols[None, :] <= cols[:, None])[None] & (cols[None, None, :] < length_t[:, None, None])
        self.cache.plan_prefill(start, count)
        hidden = self.forward(ids, cols[None, :], self._mask(keep[:, None]))
        last = hidden[torch.arange(count, device=self.device), length_t - 1]
        packed = self._sample(self.head(last), start, start + count)
        self.state.pos[start : start + count] = length_t
        for r, n_prompt in zip(rows, lengths, strict=True):
            r.position = n_prompt
        self.live.extend(rows)
        return self._record(start, packed)

    def _reserve(self, rows_needed: int, joining: Sequence[LiveRow]) -> None:
        every = [*self.live, *joining]
        columns = max(len(r.prompt_ids) + r.spec.max_new_tokens + 1 for r in every)
        # CUDA graphs: every row slot up front (a reallocation drops the captured graphs)
        rows = (
            self.max_rows
            if self.graphs is not None
            else min(self.max_rows, max(rows_needed, 2 * self.cache.rows))
        )
        rows = max(rows, rows_needed)
        n_seqs = max((len(r.spec.first_bans) for r in every), default=0)
        seq_len = max((len(s) for r in every for s in r.spec.first_bans), default=1)
        grew = self.cache.reserve(rows, columns, self.n, self.width())
        st = self.state
        if rows > st.capacity or n_seqs > st.ban_len.shape[1] or seq_len > st.ban_seqs.shape[2]:
            self.state = st.resized(
                max(rows, st.capacity),
                max(n_seqs, st.ban_len.shape[1]),
                max(seq_len, st.ban_seqs.shape[2]),
                self.n,
            )
            grew = True
        if grew and self.graphs is not None:
            self.graphs.invalidate()

    # ----- decoding -----

    def step(self) -> list[LiveRow]:
        """One decode step for every live row; returns the rows that ended on it."""
        n, width = self.n, self.width()
        if self.graphs is not None and self.graphs.ready(n, width):
            packed = self.graphs.replay(n, width)
        else:
            packed = self.decode(n, width)
        for row in self.live:
            row.position += 1
        return self._record(0, packed)

    def decode(self, n: int, width: int) -> torch.Tensor:
        """The decode step's device work for rows [0, n) attending to columns [0, width) (no host sync on CUDA)."""
        st = self.state
        positions = st.pos[:n]
        self.cache.plan_decode(n, positions, self._columns(n), width)
        keep = self._columns(width)[None, :] <= positions[:, None]
        hidden = self.forward(st.last[:n, None], positions[:, None], self._mask(keep[:, None, None]))
        live = self.live
        packed = self._sample(
            self.head(hidden[:, 0]),
            0,
            n,
            end=any(r.needs_end_logprob() for r in live),
            bans=any(r.needs_bans() for r in live),
            greedy=any(r.spec.temperature <= 0 for r in live),
        )
        st.pos[:n] += 1
        return packed

    def forward(self, ids: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The decoder (no LM head) over `ids` with our cache; returns the last hidden states."""
        out = self.base(
            input_ids=ids, attention_mask=mask, position_ids=positions, cache=self.cache, use_cache=True
        )
        return out.last_hidden_state

    def _sample(self, logits: torch.Tensor, lo: int, hi: int, **needs: bool) -> torch.Tensor:
        t0 = time.perf_counter()
        packed = sample_step(logits, self.state, lo, hi, self.consts, **needs)
        self.sampler_s += time.perf_counter() - t0
        return packed

    def _columns(self, count: int) -> torch.Tensor:
        """[0, count) on the device, sliced from one persistent buffer (CUDA graphs read it)."""
        if self._arange.shape[0] < count:
            self._arange = torch.arange(max(count, 2 * self._arange.shape[0]), device=self.device)
            if self.graphs is not None:
                self.graphs.invalidate()
        return self._arange[:count]

    def _mask(self, keep: torch.Tensor) -> torch.Tensor:
        """SDPA takes the boolean mask; eager attention adds a float one."""
        if not self._float_mask:
            return keep
        dtype = self.model.dtype
        return torch.zeros(keep.shape, dtype=dtype, device=self.device).masked_fill_(
            ~keep, torch.finfo(dtype).min
        )

    # ----- bookkeeping -----

    def _record(self, start: int, packed: torch.Tensor) -> list[LiveRow]:
        """Apply one step's draws (the one host transfer) to rows [start, ...); returns the rows that ended."""
        ended = []
        size = self.n
        for row, (token, bans, end_lp) in zip(self.live[start:], packed.tolist(), strict=True):
            token = int(token)
            row.peak_batch = max(row.peak_batch, size)
            if token in self.stops:
                row.finish, row.stop_token = "stop", token
            else:
                row.tokens.append(token)
                if row.content_from is None and token not in self.whitespace:
                    row.content_from = len(row.tokens) - 1
                if len(row.tokens) >= row.spec.max_new_tokens:
                    row.finish = "max_tokens"
            if row.finish is not None:
                row.first_token_bans = int(bans)
                row.end_logprob = None if end_lp != end_lp else float(end_lp)  # NaN: never reached content
                ended.append(row)
        return ended

    def remove(self, rows: Sequence[LiveRow]) -> None:
        """Drop `rows` from the batch: the last live rows move into their slots (KV and sampler state)."""
        if not rows:
            return
        gone = {id(r) for r in rows}
        keep_n = self.n - len(gone)
        holes = [i for i, r in enumerate(self.live[:keep_n]) if id(r) in gone]
        movers = [i for i, r in enumerate(self.live) if i >= keep_n and id(r) not in gone]
        if holes:
            width = self.width()
            dst = torch.tensor(holes, device=self.device)
            src = torch.tensor(movers, device=self.device)
            self.state.move(dst, src)
            self.cache.move(dst, src, width)
            for h, m in zip(holes, movers, strict=True):
                self.live[h] = self.live[m]
        del self.live[keep_n:]

    def truncate(self, keep: int) -> list[LiveRow]:
        """Drop rows [keep, n) without moving anything (out-of-memory back-off); returns them."""
        dropped = self.live[keep:]
        del self.live[keep:]
        return dropped


__all__ = ["LiveRow", "RunningBatch"]
