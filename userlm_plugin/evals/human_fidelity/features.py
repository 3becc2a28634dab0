"""What a user turn looks like, as numbers: the style features the fidelity metrics compare between people and a
simulator (docs/fidelity.md#style-features), and the corpus measures built on them (length Jensen-Shannon
divergence, lexical similarity to the human turn).

Everything here takes plain strings, so the metrics can be pinned on hand-made turns and reused outside Inspect
(a bench, a notebook). The spelling lists (pyspellchecker, wordfreq) are loaded on first use, never at import.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cache

from ...errors import missing_dependency
from ...scoring.quality import metrics as qm

LENGTH_BINS: tuple[int, ...] = (0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144)
"""Left edges of the word-count bins of the length distributions (the last bin is open: 144 words and more).
Roughly logarithmic, so "3 vs 4 words" and "60 vs 80 words" weigh alike (docs/fidelity.md#length)."""

TYPO_MAX_ZIPF = 2.0
"""A word pyspellchecker does not know is a typo only when wordfreq also finds it this rare (Zipf < 2: under 0.1
per million words). Either list alone misfires on real turns: pyspellchecker flags "cafe", "keto", "tiktok";
wordfreq knows common misspellings; together they keep "appoly", "thnks", "proffesional" (docs/fidelity.md#style-features)."""

POLITENESS = re.compile(
    r"\b(please|pls|plz|thanks?|thank you|thx|ty|sorry|appreciate[ds]?|kindly|would you mind|"
    r"could you|would you|if you could|if you don't mind|cheers)\b",
    re.IGNORECASE,
)
"""Politeness markers (docs/fidelity.md#style-features): thanks, please, apologies and softened requests."""

FIRST_PERSON = frozenset({"i", "me", "my", "mine", "myself", "i'm", "i've", "i'd", "i'll", "im", "ive"})
"""First-person singular forms (with the apostrophe-less spellings people type)."""

_WORD = re.compile(r"[A-Za-z]+(?:['\u2019][A-Za-z]+)*")
_SENTENCE_END = ".!?\u2026"
_TRAILING_CLOSERS = "\"')]}\u201d\u2019*_"


@dataclass(frozen=True)
class TurnFeatures:
    """The style of one user turn (None: the feature does not apply, e.g. a turn with no letters)."""

    words: int
    typos: int
    """Misspelled words (see `TYPO_MAX_ZIPF`)."""
    spelled: int
    """Words the typo check looked at (the typo rate's denominator)."""
    lowercase_start: bool | None
    missing_final_punct: bool
    question: bool
    polite: bool
    first_person: bool
    intent_overlap: float | None
    """|I ∩ U| / |U| of content words (the paper's intent decomposition; None without content words or intent)."""

    def to_dict(self) -> dict[str, float | int | bool | None]:
        return asdict(self)


def word_count(text: str) -> int:
    """Whitespace-separated words: the unit of the paper's 3-25 word guardrail and of SimulatorArena's lengths."""
    return len(text.split())


@cache
def _spelling() -> tuple[object, object]:
    try:
        from spellchecker import SpellChecker
        from wordfreq import zipf_frequency
    except ImportError as error:  # pragma: no cover - both ship with the `fidelity` extra
        raise missing_dependency(error.name or "pyspellchecker", "fidelity", "The typo rate") from error
    return SpellChecker(), zipf_frequency


def _checked_words(text: str) -> list[str]:
    """The words the typo check looks at: letters only, 2+ letters, possessive 's dropped, and no capitalised word
    inside a sentence (a proper noun such as "Matanzas" is not a typo)."""
    out: list[str] = []
    for match in _WORD.finditer(text):
        word = match.group(0).replace("\u2019", "'")
        before = text[: match.start()].rstrip()
        sentence_start = not before or before[-1] in _SENTENCE_END + "\n:"
        if any(c.isupper() for c in word) and not sentence_start:
            continue
        word = word.lower()
        if word.endswith("'s"):
            word = word[:-2]
        if len(word) >= 2:
            out.append(word)
    return out


def typos(text: str) -> tuple[int, int]:
    """(misspelled words, words checked) of a turn: unknown to pyspellchecker AND rarer than `TYPO_MAX_ZIPF`."""
    words = _checked_words(text)
    if not words:
        return 0, 0
    checker, zipf = _spelling()
    unknown = checker.unknown(words)  # type: ignore[attr-defined]
    return sum(1 for w in words if w in unknown and zipf(w, "en") < TYPO_MAX_ZIPF), len(words)  # type: ignore[operator]


def lowercase_start(text: str) -> bool | None:
    """Whether the turn's first character is a lowercase letter (None when it is not a letter: "1", "```")."""
    stripped = text.lstrip()
    if not stripped or not stripped[0].isalpha():
        return None
    return stripped[0].islower()


def missing_final_punctuation(text: str) -> bool:
    """Whether the turn ends without . ! ? or … (closing quotes, brackets and markdown marks are looked through)."""
    stripped = text.rstrip().rstrip(_TRAILING_CLOSERS).rstrip()
    return not stripped or stripped[-1] not in _SENTENCE_END


def turn_features(text: str, intent: str = "") -> TurnFeatures:
    """Every style feature of one turn; `intent` is needed for the overlap (intent leakage) only."""
    misspelled, checked = typos(text)
    tokens = qm.tokenize(text)
    return TurnFeatures(
        words=word_count(text),
        typos=misspelled,
        spelled=checked,
        lowercase_start=lowercase_start(text),
        missing_final_punct=missing_final_punctuation(text),
        question="?" in text,
        polite=POLITENESS.search(text) is not None,
        first_person=any(t in FIRST_PERSON for t in tokens),
        intent_overlap=qm.intent_overlap(intent, text) if intent.strip() else None,
    )


def length_histogram(lengths: Sequence[int], bins: Sequence[int] = LENGTH_BINS) -> list[float]:
    """The share of turns in each word-count bin (`LENGTH_BINS`); all zeros for no turns."""
    counts = [0] * len(bins)
    for n in lengths:
        counts[max(bisect_right(bins, n) - 1, 0)] += 1
    total = sum(counts)
    return [c / total for c in counts] if total else [0.0] * len(bins)


def jensen_shannon(p: Sequence[float], q: Sequence[float]) -> float:
    """Jensen-Shannon divergence in bits (0 = same distribution, 1 = disjoint), via scipy.

    scipy's `jensenshannon` returns the JS *distance*, the square root of the divergence: squared here."""
    from scipy.spatial.distance import jensenshannon

    if not any(p) or not any(q):
        return math.nan
    return float(jensenshannon(p, q, base=2)) ** 2


def length_jsd(human: Sequence[int], simulated: Sequence[int]) -> float:
    """JSD between the binned word-count distributions of human and simulated turns (NaN when one side is empty)."""
    return jensen_shannon(length_histogram(human), length_histogram(simulated))


def unigram_f1(reference: str, candidate: str) -> float:
    """Lexical similarity of a simulated turn to the human's: unigram F1 over lowercased tokens, stopwords kept
    (ROUGE-1 F); 1 = the same words as often, 0 = no word in common (docs/fidelity.md#lexical-similarity)."""
    ref, cand = Counter(qm.tokenize(reference)), Counter(qm.tokenize(candidate))
    overlap = sum((ref & cand).values())
    if not overlap:
        return 0.0
    precision, recall = overlap / sum(cand.values()), overlap / sum(ref.values())
    return 2 * precision * recall / (precision + recall)
