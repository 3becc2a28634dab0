"""The fidelity metrics over a corpus of replayed positions, as plain functions (docs/fidelity.md#metrics).

A `Position` is one point of one replayed conversation: the person's turn there (None where they ended) and the
simulator's (None where it ended), with both turns' style features. The Inspect metrics (scorers.py) rebuild the
positions from the scores and call these; a bench or a notebook can call them on positions of its own.

Which turns count where:
* the person's side is every human turn (a fixed reference, whatever the simulator did);
* the simulator's side is every turn it wrote at a position where the person also wrote one (the same prefix);
  a turn written after the person ended counts only for termination;
* the lexical similarity and the discriminator use the positions where both wrote a turn (pairs);
* termination is scored at every position: the person ended at the last one only.

A value that is undefined (no turn of that kind) is None, which Inspect leaves out of the results.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ...scoring.quality.metrics import precision_recall_f1
from .discriminator import LabelledTurn, discriminate
from .features import TurnFeatures, length_jsd, turn_features, unigram_f1


@dataclass(frozen=True)
class Position:
    group: str
    """The conversation, or the person when the data says who wrote it: the discriminator's split unit."""
    index: int
    human: str | None
    simulated: str | None
    human_features: TurnFeatures | None = None
    simulated_features: TurnFeatures | None = None

    @property
    def paired(self) -> bool:
        return self.human is not None and self.simulated is not None


def position_row(index: int, human: str | None, simulated: str | None, intent: str) -> dict[str, Any]:
    """One position as the scorer stores it in `Score.metadata["positions"]` (texts and their features)."""
    return {
        "index": index,
        "human": human,
        "simulated": simulated,
        "human_features": None if human is None else turn_features(human, intent).to_dict(),
        "simulated_features": None if simulated is None else turn_features(simulated, intent).to_dict(),
    }


def position_from_row(group: str, row: dict[str, Any]) -> Position:
    def features(value: Any) -> TurnFeatures | None:
        return None if value is None else TurnFeatures(**value)

    return Position(
        group=group,
        index=int(row["index"]),
        human=row.get("human"),
        simulated=row.get("simulated"),
        human_features=features(row.get("human_features")),
        simulated_features=features(row.get("simulated_features")),
    )


def positions(rows: Iterable[tuple[str, dict[str, Any]]]) -> list[Position]:
    return [position_from_row(group, row) for group, row in rows]


def _human(ps: Sequence[Position]) -> list[TurnFeatures]:
    return [p.human_features for p in ps if p.human_features is not None]


def _simulated(ps: Sequence[Position]) -> list[TurnFeatures]:
    return [p.simulated_features for p in ps if p.simulated_features is not None and p.human is not None]


def _pct(values: Sequence[bool | None]) -> float | None:
    known = [v for v in values if v is not None]
    return 100.0 * sum(known) / len(known) if known else None


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


STYLE: dict[str, Callable[[Sequence[TurnFeatures]], float | None]] = {
    "typo_pct": lambda fs: (
        100.0 * sum(f.typos for f in fs) / spelled if (spelled := sum(f.spelled for f in fs)) else None
    ),
    "lower_pct": lambda fs: _pct([f.lowercase_start for f in fs]),
    "nopunct_pct": lambda fs: _pct([f.missing_final_punct for f in fs]),
    "question_pct": lambda fs: _pct([f.question for f in fs]),
    "polite_pct": lambda fs: _pct([f.polite for f in fs]),
    "me_pct": lambda fs: _pct([f.first_person for f in fs]),
}
"""Style metrics, each over a side's turns (docs/fidelity.md#style-features); `_h` names are the people's."""


def length_summary(ps: Sequence[Position]) -> dict[str, float | None]:
    """Mean words per turn of each side and the JSD of their length distributions."""
    human, simulated = [f.words for f in _human(ps)], [f.words for f in _simulated(ps)]
    jsd = length_jsd(human, simulated) if human and simulated else None
    return {
        "words": _mean(simulated),
        "words_h": _mean(human),
        "len_jsd": None if jsd is None or math.isnan(jsd) else jsd,
    }


def style_summary(ps: Sequence[Position]) -> dict[str, float | None]:
    human, simulated = _human(ps), _simulated(ps)
    out: dict[str, float | None] = {}
    for name, measure in STYLE.items():
        out[name] = measure(simulated) if simulated else None
        out[f"{name}_h"] = measure(human) if human else None
    return out


def leakage_summary(ps: Sequence[Position]) -> dict[str, float | None]:
    """Intent leakage: mean |I ∩ U| / |U| over each side's turns, in percent (the paper's intent decomposition)."""

    def leak(fs: Sequence[TurnFeatures]) -> float | None:
        values = [f.intent_overlap for f in fs if f.intent_overlap is not None]
        return 100.0 * statistics.fmean(values) if values else None

    return {"leak_pct": leak(_simulated(ps)), "leak_pct_h": leak(_human(ps))}


def similarity_summary(ps: Sequence[Position]) -> dict[str, float | None]:
    """Mean unigram F1 of the simulated turn against the person's, over paired positions, in percent."""
    pairs = [p for p in ps if p.paired]
    values = [unigram_f1(p.human or "", p.simulated or "") for p in pairs]
    return {"lex_f1": 100.0 * statistics.fmean(values) if values else None}


def termination_summary(ps: Sequence[Position]) -> dict[str, float | None]:
    """Precision, recall and F1 (percent) of "the simulator ended here" against "the person ended here"."""
    if not ps:
        return {"end_p": None, "end_r": None, "end_f1": None}
    precision, recall, f1 = precision_recall_f1(
        [p.simulated is None for p in ps], [p.human is None for p in ps]
    )
    return {"end_p": 100.0 * precision, "end_r": 100.0 * recall, "end_f1": 100.0 * f1}


def labelled_turns(ps: Sequence[Position]) -> list[LabelledTurn]:
    """Both turns of every paired position, labelled by who wrote them."""
    out: list[LabelledTurn] = []
    for p in ps:
        if p.paired and p.human_features is not None and p.simulated_features is not None:
            out.append(LabelledTurn(p.group, p.human or "", True, p.human_features))
            out.append(LabelledTurn(p.group, p.simulated or "", False, p.simulated_features))
    return out


def discriminator_summary(ps: Sequence[Position], seed: int = 0) -> dict[str, float | None]:
    """Held-out AUROC of a human-vs-simulated classifier and its bootstrap interval (0.5 = indistinguishable)."""
    result = discriminate(labelled_turns(ps), seed=seed)
    return {"auroc": result.auroc, "auroc_lo": result.low, "auroc_hi": result.high}


def fidelity_summary(ps: Sequence[Position], seed: int = 0) -> dict[str, float | None]:
    """Every corpus metric of the replay, by name (the table `userlm-plugin compare --view fidelity` shows)."""
    return {
        **length_summary(ps),
        **style_summary(ps),
        **leakage_summary(ps),
        **similarity_summary(ps),
        **termination_summary(ps),
        **discriminator_summary(ps, seed),
    }
