"""Per-row sampling inside one batched `model.generate` call.

Why a logits processor that *samples* (under greedy decoding) rather than HF's own sampling: HF applies one
temperature/top_p and one global RNG to the whole batch, so a request's text would depend on what it was batched
with. Here every row has its own temperature, top_p, bans and `torch.Generator` seeded from the request, the
processor draws that row's token and masks everything else to -inf, and `generate(do_sample=False)` takes it.
A row's generator advances once per step while the row is alive, so the same seed gives the same tokens batched
or alone (up to float noise from padding, which only matters at an exact CDF boundary).

The two token-level guardrails of Appendix D.1 live here too, as bans applied before temperature/top-p:
the first-token filter (on the first token that is not whitespace, i.e. after UserLM's leading newline) and
the `<|endconversation|>` ban.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from transformers import LogitsProcessor

from ..guardrails import banned_next
from ..types import RowSpec

TOP_K = 1024


@dataclass
class _RowState:
    generator: torch.Generator
    generated: int = 0
    finished: bool = False
    forced_stop: bool = False
    content: list[int] = field(default_factory=list)
    content_started: bool = False


class RowSampler(LogitsProcessor):
    """Samples each row with its own settings; returns scores that are -inf except at the chosen token."""

    def __init__(
        self,
        rows: Sequence[RowSpec],
        *,
        stop_ids: Sequence[int],
        end_token_id: int | None,
        whitespace_ids: frozenset[int],
    ) -> None:
        self.rows = list(rows)
        self.stop_ids = frozenset(stop_ids)
        self.force_id = int(stop_ids[0])
        self.end_token_id = end_token_id
        self.whitespace_ids = whitespace_ids
        self.state = [_RowState(generator=torch.Generator().manual_seed(int(r.seed) % (2**63))) for r in rows]
        self.max_first = max((len(s) for r in rows for s in r.first_bans), default=0)
        self._last: list[int] | None = None
        self._greedy = [i for i, r in enumerate(rows) if r.temperature <= 0]
        self._temps: torch.Tensor | None = None
        self._top_p: torch.Tensor | None = None
        self._rows_idx: torch.Tensor | None = None
        self.seconds = 0.0
        """Wall time spent in this processor (our overhead inside `generate`)."""
        self.first_token_bans_applied = [0] * len(rows)
        """Per row: steps on which the first-token ban masked at least one token."""

    def _advance(self) -> None:
        if self._last is None:
            return
        for st, token in zip(self.state, self._last, strict=True):
            if st.finished:
                continue
            st.generated += 1
            if token in self.stop_ids:
                st.finished = True
            elif not st.content_started:
                if token not in self.whitespace_ids:
                    st.content_started = True
                    st.content.append(token)
            elif len(st.content) < self.max_first:
                st.content.append(token)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        t0 = time.perf_counter()
        self._advance()
        device = scores.device
        if self._temps is None:  # per-batch constants, built once
            self._temps = torch.tensor([max(r.temperature, 1e-5) for r in self.rows], device=device)[:, None]
            self._top_p = torch.tensor([r.top_p for r in self.rows], device=device)[:, None]
            self._rows_idx = torch.arange(len(self.rows), device=device)
        ban_rows: list[int] = []
        ban_cols: list[int] = []
        for i, (spec, st) in enumerate(zip(self.rows, self.state, strict=True)):
            if st.finished:
                continue
            if st.generated >= spec.max_new_tokens:  # this row's own budget is spent: end it here
                st.forced_stop = True
                continue
            if spec.ban_end and self.end_token_id is not None:
                ban_rows.append(i)
                ban_cols.append(self.end_token_id)
            if spec.first_bans and len(st.content) < self.max_first:
                banned = banned_next(
                    spec.first_bans, st.content
                )  # content so far: empty until non-whitespace
                if banned:
                    ban_rows.extend([i] * len(banned))
                    ban_cols.extend(banned)
                    self.first_token_bans_applied[i] += 1
        scores = scores.float().clone()
        if ban_rows:
            scores[torch.tensor(ban_rows, device=device), torch.tensor(ban_cols, device=device)] = float(
                "-inf"
            )
        probs = torch.softmax(scores / self._temps, dim=-1)
        sorted_p, sorted_idx = self._nucleus_candidates(probs)
        cum = sorted_p.cumsum(dim=-1)
        kept_cum = torch.where((cum - sorted_p) < self._top_p, sorted_p, 0.0).cumsum(dim=-1)
        # one uniform draw per live row from that row's own generator (finished rows draw nothing)
        u = torch.tensor(
            [
                torch.rand((), generator=st.generator, dtype=torch.float64).item() if not st.finished else 0.0
                for st in self.state
            ],
            dtype=kept_cum.dtype,
        ).to(device)
        pos = (kept_cum < (u * kept_cum[:, -1])[:, None]).sum(dim=-1).clamp_(max=scores.shape[-1] - 1)
        chosen = sorted_idx.gather(1, pos[:, None]).squeeze(1)
        if self._greedy:
            g = torch.tensor(self._greedy, device=device)
            chosen[g] = scores[g].argmax(dim=-1)
        chosen_list = chosen.tolist()
        for i, st in enumerate(self.state):
            if st.finished or st.forced_stop:
                chosen_list[i] = self.force_id
        out = torch.full_like(scores, float("-inf"))
        out[self._rows_idx, torch.tensor(chosen_list, device=device)] = 0.0
        self._last = chosen_list
        self.seconds += time.perf_counter() - t0
        return out

    def _nucleus_candidates(self, probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens by descending probability, as far as any row's nucleus can reach: the top TOP_K when they hold
        every row's top_p mass (the usual case; a full 128k-vocab sort per step is wasted work on a GPU), else
        the whole vocabulary. Exact either way."""
        if probs.shape[-1] > TOP_K:
            top_p, top_idx = probs.topk(TOP_K, dim=-1)
            if bool((top_p.sum(dim=-1, keepdim=True) >= self._top_p).all()):
                return top_p, top_idx
        return probs.sort(dim=-1, descending=True)

    def first_content_tokens(self) -> list[int | None]:
        """Per row: the first non-whitespace token drawn (the one the first-token filter governs)."""
        return [st.content[0] if st.content else None for st in self.state]

    def finish_reasons(self) -> list[str]:
        """Per row: "stop" when the row drew a stop token itself, "max_tokens" when its budget ran out."""
        self._advance()
        self._last = None
        return ["stop" if st.finished and not st.forced_stop else "max_tokens" for st in self.state]
