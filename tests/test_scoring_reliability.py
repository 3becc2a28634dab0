"""P / A90 / U90_10 per instruction over epochs, then averaged (LiC §4.2), on hand-computed examples."""

import numpy as np
import pytest
from inspect_ai._util.registry import registry_info
from inspect_ai.scorer import SampleScore, Score

from userlm_plugin.scoring.answers.reliability import (
    aptitude,
    corpus_stats,
    ended_correct,
    instruction_stats,
    percentile,
    performance,
    turns_used,
    unreliability,
)


def test_percentile_linear_interpolation() -> None:
    # 10 values 0..90: rank = 9 * 0.9 = 8.1 -> 80 + 0.1 * 10 = 81
    assert percentile([float(v) for v in range(0, 100, 10)], 90) == pytest.approx(81.0)
    assert percentile([0.0, 100.0], 10) == pytest.approx(10.0)
    assert percentile([42.0], 90) == 42.0
    with pytest.raises(ValueError):
        percentile([], 50)
    # numpy's default method, on uneven data
    assert percentile([3.0, 1.0, 4.0, 1.0, 5.0], 10) == pytest.approx(np.percentile([3, 1, 4, 1, 5], 10))


def test_instruction_stats_hand_computed() -> None:
    # 10 runs, 7 correct (100) and 3 wrong (0): sorted [0,0,0,100 x7]
    # P = 70; p90: rank 8.1 -> 100; p10: rank 0.9 -> between s[0]=0 and s[1]=0 -> 0; U = 100
    stats = instruction_stats([100.0] * 7 + [0.0] * 3)
    assert stats == {"P": pytest.approx(70.0), "A90": pytest.approx(100.0), "U90_10": pytest.approx(100.0)}
    # 10 runs, 1 correct: sorted [0 x9, 100]; p90: rank 8.1 -> s[8]=0 + 0.1*(100-0) = 10; p10 = 0
    assert instruction_stats([0.0] * 9 + [100.0]) == {
        "P": 10.0,
        "A90": pytest.approx(10.0),
        "U90_10": pytest.approx(10.0),
    }
    # all correct: reliable
    assert instruction_stats([100.0] * 10) == {"P": 100.0, "A90": 100.0, "U90_10": 0.0}


def test_corpus_stats_average_per_instruction() -> None:
    stats = corpus_stats({"a": [100.0] * 7 + [0.0] * 3, "b": [100.0] * 10})
    assert stats == {"P": pytest.approx(85.0), "A90": pytest.approx(100.0), "U90_10": pytest.approx(50.0)}


def _scores() -> list[SampleScore]:
    # instruction a: 2 epochs (1, 0); instruction b: 2 epochs (1, 1)
    rows = [("a", 1.0, 3, 1.0), ("a", 0.0, 5, 0.0), ("b", 1.0, 1, 1.0), ("b", 1.0, 2, 1.0)]
    return [
        SampleScore(score=Score(value={"correct": c, "turns": t, "ended_correct": e}), sample_id=sid)
        for sid, c, t, e in rows
    ]


def test_metrics_over_unreduced_epoch_scores() -> None:
    scores = _scores()
    # a: [0, 100] -> P 50, p90 = 90, p10 = 10 -> U 80; b: [100, 100] -> P 100, A90 100, U 0
    assert performance()(scores) == pytest.approx(75.0)
    assert aptitude()(scores) == pytest.approx(95.0)
    assert unreliability()(scores) == pytest.approx(40.0)
    assert turns_used()(scores) == pytest.approx(2.75)
    assert ended_correct()(scores) == pytest.approx(0.75)


def test_metric_names_are_the_papers_short_symbols() -> None:
    names = [registry_info(m).name.split("/")[-1] for m in (performance(), aptitude(), unreliability())]
    assert names == ["P", "A90", "U90_10"]
