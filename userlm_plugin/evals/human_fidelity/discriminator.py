"""Can a classifier tell the simulator's turns from the people's? (docs/fidelity.md#discriminator)

A logistic regression on character n-grams plus the style features (features.py) is trained on the turns of half
of the conversations and scored on the other half; its AUROC on the held-out half (human = positive) says how
separable the two are: 0.5 = indistinguishable, 1.0 = every human turn ranks above every simulated one. The split
and the bootstrap interval are grouped by conversation (or by person, when the data says who wrote what): turns of
one conversation share a topic and a context, so splitting them would let the classifier learn the conversation,
and resampling single turns would make the interval too narrow.

scikit-learn (the classifier, the n-gram vectoriser) and scipy (ranks) are imported when a result is computed.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ...errors import missing_dependency
from .features import TurnFeatures

BOOTSTRAP_RESAMPLES = 1000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class LabelledTurn:
    """One turn for the discriminator: who wrote it, the conversation it belongs to, its text and style."""

    group: str
    text: str
    human: bool
    features: TurnFeatures


@dataclass(frozen=True)
class DiscriminatorResult:
    auroc: float | None
    """Held-out AUROC (None when it is undefined; `why` says why)."""
    low: float | None
    high: float | None
    """The bootstrap interval (percentile, `CONFIDENCE`), resampling held-out conversations."""
    train_groups: int
    test_groups: int
    test_turns: int
    why: str | None = None


def dense_features(f: TurnFeatures) -> list[float]:
    """The style features as numbers (a feature that does not apply counts as its neutral value)."""
    return [
        float(f.words),
        math.log1p(f.words),
        f.typos / f.spelled if f.spelled else 0.0,
        0.5 if f.lowercase_start is None else float(f.lowercase_start),
        float(f.missing_final_punct),
        float(f.question),
        float(f.polite),
        float(f.first_person),
        f.intent_overlap or 0.0,
    ]


def split_groups(groups: Sequence[str], seed: int = 0) -> tuple[set[str], set[str]]:
    """(train, test): the distinct groups ordered by a hash of (seed, group) and cut in half (test gets the odd
    one), so the split depends on neither file order nor run, and both halves are as large as they can be."""
    distinct = sorted(set(groups), key=lambda g: hashlib.sha256(f"{seed}:{g}".encode()).hexdigest())
    half = len(distinct) // 2
    return set(distinct[:half]), set(distinct[half:])


def rank_auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """AUROC by the rank-sum (Mann-Whitney) formula, ties counted half; None without both classes."""
    import numpy as np
    from scipy.stats import rankdata

    mask = np.asarray(labels, dtype=bool)
    positives = int(mask.sum())
    negatives = len(mask) - positives
    if not positives or not negatives:
        return None
    rank_sum = float(rankdata(np.asarray(scores, dtype=float))[mask].sum())
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def bootstrap_interval(
    scores: Sequence[float],
    labels: Sequence[bool],
    groups: Sequence[str],
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile interval of the AUROC over `resamples` draws of whole groups with replacement (None when fewer
    than 2 groups or no draw has both classes)."""
    import numpy as np

    by_group: dict[str, list[int]] = {}
    for i, group in enumerate(groups):
        by_group.setdefault(group, []).append(i)
    members = [np.array(v) for v in by_group.values()]
    if len(members) < 2:
        return None
    rng = np.random.default_rng(seed)
    score_array, label_array = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    values = []
    for _ in range(resamples):
        picked = np.concatenate([members[i] for i in rng.integers(0, len(members), len(members))])
        value = rank_auroc(score_array[picked], label_array[picked])
        if value is not None:
            values.append(value)
    if not values:
        return None
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def _fit_predict(train: Sequence[LabelledTurn], test: Sequence[LabelledTurn]) -> list[float]:
    try:
        from scipy.sparse import csr_matrix, hstack
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler
    except ImportError as error:  # pragma: no cover - both ship with the `fidelity` extra
        raise missing_dependency(error.name or "scikit-learn", "fidelity", "The discriminator") from error

    # case and punctuation are kept: they are part of how people write (lowercase starts, "?", "...")
    ngrams = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), lowercase=False, sublinear_tf=True)
    scaler = StandardScaler()

    def matrix(turns: Sequence[LabelledTurn], fit: bool) -> Any:
        texts = [t.text for t in turns]
        dense = [dense_features(t.features) for t in turns]
        text_part = ngrams.fit_transform(texts) if fit else ngrams.transform(texts)
        dense_part = scaler.fit_transform(dense) if fit else scaler.transform(dense)
        return hstack([text_part, csr_matrix(dense_part)]).tocsr()

    classifier = LogisticRegression(max_iter=2000, class_weight="balanced", solver="liblinear")
    classifier.fit(matrix(train, fit=True), [t.human for t in train])
    human_column = list(classifier.classes_).index(True)
    return classifier.predict_proba(matrix(test, fit=False))[:, human_column].tolist()


def discriminate(
    turns: Sequence[LabelledTurn], seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES
) -> DiscriminatorResult:
    """Train on half of the groups, score the other half: AUROC (human = positive) and its bootstrap interval."""
    train_groups, test_groups = split_groups([t.group for t in turns], seed)
    train = [t for t in turns if t.group in train_groups]
    test = [t for t in turns if t.group in test_groups]

    def undefined(why: str) -> DiscriminatorResult:
        return DiscriminatorResult(None, None, None, len(train_groups), len(test_groups), len(test), why)

    if not train_groups or not test_groups:
        return undefined(f"needs at least 2 conversations, got {len(train_groups) + len(test_groups)}")
    for name, part in (("training", train), ("held-out", test)):
        if len({t.human for t in part}) < 2:
            return undefined(f"the {name} half lacks human or simulated turns (the simulator always ended?)")
    scores = _fit_predict(train, test)
    labels = [t.human for t in test]
    interval = bootstrap_interval(scores, labels, [t.group for t in test], resamples, seed=seed)
    low, high = interval if interval is not None else (None, None)
    return DiscriminatorResult(
        rank_auroc(scores, labels), low, high, len(train_groups), len(test_groups), len(test)
    )
