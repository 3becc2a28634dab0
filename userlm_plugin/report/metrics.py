"""Corpus-level P, A90, U for reports, built on the scoring engineer's per-instruction functions
(`userlm_plugin.scoring.answers.reliability`; definitions in docs/lic.md and docs/metrics.md), plus the mean p10 the chart needs.

With one run per instruction (one epoch) A90 = P and U = 0: reports say so rather than hide it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..scoring.answers.reliability import instruction_stats, percentile


@dataclass(frozen=True)
class Reliability:
    """Corpus-level P, A90, U (and mean p10, for charts), over `instructions` instructions."""

    P: float
    A90: float
    U: float
    p10: float
    instructions: int
    runs: int
    """Total scored runs (conversations) behind the numbers."""


def reliability(scores_by_instruction: Mapping[object, Sequence[float]]) -> Reliability:
    """P, A90, U averaged over instructions; each instruction's scores are its runs (epochs), 0..100."""
    groups = [list(s) for s in scores_by_instruction.values() if len(s)]
    if not groups:
        raise ValueError("reliability: no instruction has any score.")
    stats = [instruction_stats(s) for s in groups]
    n = len(groups)
    return Reliability(
        P=sum(s["P"] for s in stats) / n,
        A90=sum(s["A90"] for s in stats) / n,
        U=sum(s["U90_10"] for s in stats) / n,
        p10=sum(percentile(s, 10) for s in groups) / n,
        instructions=n,
        runs=sum(len(s) for s in groups),
    )


def relative_drop(baseline: float, value: float) -> float | None:
    """(value - baseline) / baseline in percent, as the paper reports degradation (-39% FULL->SHARDED)."""
    if baseline == 0:
        return None
    return (value - baseline) / baseline * 100.0
