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


@dataclass
class RowSpec:
    """Sampling settings of one request (one batch row)."""

    temperature: float
    top_p: float
    seed: int
    max_new_tokens: int
    ban_end: bool
    first_bans: Sequence[Sequence[int]] = ()


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
        scores = scores.float().clone()
        neg_inf = float("-inf")
        n_rows = len(self.rows)
        greedy_rows: list[int] = []
        for i, (spec, st) in enumerate(zip(self.rows, self.state, strict=True)):
            if st.finished:
                continue
            if st.generated >= spec.max_new_tokens:  # this row's own budget is spent: end it here
                scores[i].fill_(neg_inf)
                scores[i, self.force_id] = 0.0
                st.forced_stop = True
                continue
            if spec.ban_end and self.end_token_id is not None:
                scores[i, self.end_token_id] = neg_inf
            if spec.first_bans and len(st.content) < self.max_first:
                j = len(st.content)  # content tokens drawn so far (0 until the first non-whitespace token)
                banned = [s[j] for s in spec.first_bans if len(s) == j + 1 and list(s[:j]) == st.content]
                if banned:
                    scores[i, banned] = neg_inf
                    self.first_token_bans_applied[i] += 1
            if spec.temperature <= 0:
                greedy_rows.append(i)
        temps = torch.tensor([max(r.temperature, 1e-5) for r in self.rows], device=scores.device)
        top_p = torch.tensor([r.top_p for r in self.rows], device=scores.device)
        probs = torch.softmax(scores / temps[:, None], dim=-1)
        sorted_p, sorted_idx = probs.sort(dim=-1, descending=True)
        cum = sorted_p.cumsum(dim=-1)
        keep = (cum - sorted_p) < top_p[
            :, None
        ]  # smallest prefix whose mass reaches top_p (at least 1 token)
        kept = sorted_p * keep
        kept_cum = kept.cumsum(dim=-1)
        # one uniform draw per live row from that row's own generator
        u = torch.tensor(
            [
                torch.rand((), generator=st.generator, dtype=torch.float64).item() if not st.finished else 0.0
                for st in self.state
            ],
            dtype=kept_cum.dtype,
        ).to(scores.device)
        pos = (kept_cum < (u * kept_cum[:, -1])[:, None]).sum(dim=-1).clamp_(max=scores.shape[-1] - 1)
        chosen = sorted_idx.gather(1, pos[:, None]).squeeze(1)
        if greedy_rows:
            g = torch.tensor(greedy_rows, device=scores.device)
            chosen[g] = scores[g].argmax(dim=-1)
        chosen_list = chosen.tolist()
        for i, st in enumerate(self.state):
            if st.finished or st.forced_stop:
                chosen_list[i] = self.force_id
        out = torch.full_like(scores, neg_inf)
        out[torch.arange(n_rows, device=scores.device), torch.tensor(chosen_list, device=scores.device)] = 0.0
        self._last = chosen_list
        self.seconds += time.perf_counter() - t0
        return out

    def first_content_tokens(self) -> list[int | None]:
        """Per row: the first non-whitespace token drawn (the one the first-token filter governs)."""
        return [st.content[0] if st.content else None for st in self.state]

    def finish_reasons(self) -> list[str]:
        """Per row: "stop" when the row drew a stop token itself, "max_tokens" when its budget ran out."""
        self._advance()
        self._last = None
        return ["stop" if st.finished and not st.forced_stop else "max_tokens" for st in self.state]
