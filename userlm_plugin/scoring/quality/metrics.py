"""Pure, model-free measures of how human-like a simulated user was (docs/metrics.md; arXiv 2510.06552 §3-4).

Everything here works on plain strings and numbers so it can be tested on hand-computed examples and
reused outside Inspect (e.g. on a log's exported turns). The Inspect scorers and metrics that wrap these
live in `userlm_plugin.scoring.quality.scorers`.

Where the paper's exact formula is unknown (docs/metrics.md Q5: "pairwise 1-gram Jaccard or % unique"),
both readings are implemented and documented, and the README says which one to compare with which
reference value.
"""

from __future__ import annotations

import itertools
import re
import statistics
from collections.abc import Iterable, Sequence

# A standard English stopword list (the NLTK `english` list, plus contraction stems that our tokenizer
# splits off). Kept in code so the metrics need no download (tests run offline).
STOPWORDS: frozenset[str] = frozenset(
    """
    a about above after again against ain all am an and any are aren aren't as at be because been before
    being below between both but by can couldn couldn't d did didn didn't do does doesn doesn't doing don
    don't down during each few for from further had hadn hadn't has hasn hasn't have haven haven't having
    he her here hers herself him himself his how i if in into is isn isn't it it's its itself just ll m ma
    me mightn mightn't more most mustn mustn't my myself needn needn't no nor not now o of off on once only
    or other our ours ourselves out over own re s same shan shan't she she's should should've shouldn
    shouldn't so some such t than that that'll the their theirs them themselves then there these they this
    those through to too under until up ve very was wasn wasn't we were weren weren't what when where which
    while who whom why will with won won't wouldn wouldn't y you you'd you'll you're you've your yours
    yourself yourselves i'm i've i'd i'll can't let's
    """.split()
)

INTENT_PREFIXES: tuple[str, ...] = (
    "you are a user chatting with an assistant language model to",
    "you are a user chatting with an assistant to",
    "you are a user who wants to",
    "you are a user who",
    "you are a user",
)
"""Boilerplate openings of UserLM intents (docs/userlm.md, intents). Their words ("user", "assistant", "language",
"model", "chatting") are not stopwords but carry no task content, so they are stripped before comparing
an intent with user turns; otherwise a user who says "model" would count as parroting the intent."""

ASSISTANT_OPENERS: tuple[str, ...] = (
    "i",
    "you",
    "here",
    "sure",
    "certainly",
    "absolutely",
    "of course",
    "great question",
    "as an ai",
)
"""First words that mark assistant-style text. "I", "You" and "Here" are the openers the paper's
first-token guardrail forbids (docs/userlm.md, guardrails); the rest are common assistant phrasings."""

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def tokenize(text: str) -> list[str]:
    """Lowercased word tokens (letters/digits, keeping an inner apostrophe: "don't" is one token)."""
    return _TOKEN.findall(text.lower().replace("\u2019", "'"))


def content_words(text: str) -> set[str]:
    """The set of non-stopword unigrams of `text`."""
    return {t for t in tokenize(text) if t not in STOPWORDS}


def strip_intent_prefix(intent: str) -> str:
    """Drop the "You are a user chatting with an assistant language model to ..." boilerplate (docs/userlm.md#intent-wording)."""
    lowered = intent.strip().lower()
    for prefix in INTENT_PREFIXES:
        if lowered.startswith(prefix):
            return intent.strip()[len(prefix) :].strip()
    return intent.strip()


def intent_overlap(intent: str, turn: str) -> float | None:
    """|I ∩ U| / |U|: the share of the turn's content words that also occur in the intent (0..1).

    Intent decomposition (docs/metrics.md): the average 1-gram overlap, stopwords removed, between
    generated user turns and the intent; lower means the intent is revealed gradually and in the user's own
    words (humans: 1.68). |I ∩ U| / |U| is the community port's formula. None when the turn has no content
    words (it cannot overlap anything; excluded from means rather than counted as 0).
    """
    turn_words = content_words(turn)
    if not turn_words:
        return None
    intent_words = content_words(strip_intent_prefix(intent))
    return len(intent_words & turn_words) / len(turn_words)


def intent_overlap_count(intent: str, turn: str) -> int:
    """|I ∩ U|: how many distinct content words of the intent the turn repeats.

    The other reading of the paper's intent-decomposition number (a count, not a share); reported beside
    the share because docs/metrics.md does not settle which one Table 2 uses.
    """
    return len(content_words(strip_intent_prefix(intent)) & content_words(turn))


def intent_share(intent: str, turn: str) -> float | None:
    """|I ∩ U| / |I|: the share of the intent's content words the turn already states (0..1).

    Applied to the first user turn it measures "goal dumping": a user who pastes the whole goal into turn
    one scores near 1, a human who opens with a fragment scores low (docs/metrics.md).
    None when the intent has no content words.
    """
    intent_words = content_words(strip_intent_prefix(intent))
    if not intent_words:
        return None
    return len(intent_words & content_words(turn)) / len(intent_words)


def distinct_unigram_ratio(texts: Iterable[str]) -> float | None:
    """Distinct-1 over a corpus: distinct unigrams / all unigrams, pooled over `texts` (0..1).

    First-turn diversity as "% unique 1-grams over the first turns" (docs/metrics.md). Pooled
    distinct-1 falls as the corpus grows, so only compare runs with the same number of first turns.
    None for an empty corpus.
    """
    tokens = [t for text in texts for t in tokenize(text)]
    if not tokens:
        return None
    return len(set(tokens)) / len(tokens)


def jaccard_distance(a: set[str], b: set[str]) -> float:
    """1 - |A ∩ B| / |A ∪ B| (0 when both are empty: two empty texts are not different)."""
    union = a | b
    if not union:
        return 0.0
    return 1.0 - len(a & b) / len(union)


def mean_pairwise_jaccard_distance(texts: Sequence[str], max_pairs: int = 200_000) -> float | None:
    """Mean over all pairs of texts of the Jaccard distance between their unigram sets (0..1).

    The "pairwise 1-gram Jaccard" reading of first-turn diversity (docs/metrics.md): how different
    two first turns are, on average. Unlike pooled distinct-1 it does not shrink as the corpus grows, which
    makes it the one to compare with the paper's ~94 for humans. Pairs beyond `max_pairs` are skipped in a
    fixed, deterministic stride (2,000 turns have ~2M pairs). None with fewer than two texts.
    """
    if len(texts) < 2:
        return None
    sets = [set(tokenize(t)) for t in texts]
    n_pairs = len(sets) * (len(sets) - 1) // 2
    stride = max(1, n_pairs // max_pairs)
    total, count = 0.0, 0
    for k, (i, j) in enumerate(itertools.combinations(range(len(sets)), 2)):
        if k % stride:
            continue
        total += jaccard_distance(sets[i], sets[j])
        count += 1
    return total / count


def unigram_difference(conversations: Sequence[Sequence[str]]) -> float | None:
    """Lexical diversity across repeated simulations of ONE intent (docs/metrics.md, Table 3 "unigram difference").

    Definition used here (the paper's exact formula is not public): each conversation is reduced to the set
    of lowercased unigrams over all its user turns (stopwords kept: phrasing is what differs); the value is
    the mean Jaccard distance over all pairs of conversations. 0 = every simulation used exactly the same
    words; 1 = no word in common. Paper reference: GPT-4o-mini 0.43, GPT-4o 0.40, UserLM-8b 0.71.
    None with fewer than two conversations.
    """
    if len(conversations) < 2:
        return None
    sets = [set(tokenize(" ".join(turns))) for turns in conversations]
    pairs = list(itertools.combinations(sets, 2))
    return sum(jaccard_distance(a, b) for a, b in pairs) / len(pairs)


def starts_like_assistant(text: str) -> bool:
    """True when the turn opens with an assistant-style phrase ("I", "You", "Here", "Sure", ...)."""
    words = tokenize(text)
    if not words:
        return False
    head = " ".join(words[:3])
    return any(head == o or head.startswith(o + " ") for o in ASSISTANT_OPENERS)


def length_spread(turn_counts: Sequence[int]) -> tuple[float, int, int] | None:
    """(population variance, min, max) of the conversation lengths of one intent across its repeats.

    Conversation length / pace diversity (docs/metrics.md, Table 3 "turn variance" and "turn range").
    Population variance (ddof=0): the spread of these runs, not an estimate for unseen ones.
    None for an empty list.
    """
    if not turn_counts:
        return None
    return statistics.pvariance(turn_counts), min(turn_counts), max(turn_counts)


def precision_recall_f1(predicted: Sequence[bool], actual: Sequence[bool]) -> tuple[float, float, float]:
    """Precision, recall and F1 of the positive class ("the user ended here").

    Dialogue termination (docs/metrics.md): ending is a binary decision scored with F1 against
    where the conversation should end. Undefined ratios (no predicted / no actual positives) are 0.
    """
    if len(predicted) != len(actual):
        raise ValueError(f"predicted has {len(predicted)} items but actual has {len(actual)}")
    tp = sum(p and a for p, a in zip(predicted, actual, strict=True))
    fp = sum(p and not a for p, a in zip(predicted, actual, strict=True))
    fn = sum(a and not p for p, a in zip(predicted, actual, strict=True))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1
