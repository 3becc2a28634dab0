"""Intent coverage from shards: which of a sample's shards (information units) the simulated user revealed.

The UserLM paper reports intent coverage for its extrinsic runs (arXiv 2510.06552 §4, Table 3: the share of the
intent's information units the user revealed). Lost in Conversation's shards are those units. A simulator that
tracks shards (LiC's sharded user, the scripted user) records the shard id of every turn, so coverage is
revealed ids / all ids. A simulator that does not (`userlm`, prompted users, the FULL/CONCAT scripts) writes
free text, so we match each shard against the user's turns (ours; docs/scoring.md, "intent coverage"):

    a shard counts as revealed when the user's turns, together, contain every number of the shard and at least
    `threshold` (default 0.5) of its distinct content words.

Content words are lowercase alphanumeric tokens minus a short English stop-word list; words match when one's
stem is a prefix of the other's (stem: one of -ies/-ing/-ed/-es/-s removed) and the shorter stem has at least 4
letters, or when they are equal. Numbers lose `$` and thousands commas and must match exactly. A shard with no
content words is left out of the count. The matcher is lexical: it misses paraphrases that share no words and can
credit a turn that names a shard's words without conveying it; the judge (`intent_coverage` without shards) is
the semantic alternative.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from inspect_ai.scorer import Metric, Score, Scorer, Target, metric, scorer
from inspect_ai.solver import TaskState

from ...errors import ConfigError
from ...records import Conversation
from .scorers import _mean_metric, read_conversation, sent_turns, skip_sample

DEFAULT_THRESHOLD = 0.5
"""Share of a shard's content words the user's turns must contain (ours)."""

STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between
    both but by can could did do does doing down during each few for from further had has have having he her here
    hers him his how i if in into is it its itself just me more most my no nor not of off on once only or other
    our ours out over own same she should so some such than that the their theirs them then there these they this
    those through to too under until up very was we were what when where which while who whom why will with would
    you your yours also want need like get got let please ok okay yeah yes sure thing things stuff""".split()
)
"""Words that carry no task information (ours: a short general English list plus chat filler)."""

_TOKEN = re.compile(r"\$?\d[\d,]*(?:\.\d+)?|[a-z]+")
_SUFFIXES = (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", ""))
MIN_PREFIX = 4


def _stem(word: str) -> str:
    for suffix, replacement in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + replacement
    return word


def terms(text: str) -> tuple[set[str], set[str]]:
    """(content-word stems, numbers) of `text`."""
    words: set[str] = set()
    numbers: set[str] = set()
    for token in _TOKEN.findall(text.lower()):
        if token[0].isdigit() or token[0] == "$":
            number = token.lstrip("$").replace(",", "")
            numbers.add(number[:-2] if number.endswith(".0") else number)
        elif token not in STOPWORDS and len(token) > 1:
            words.add(_stem(token))
    return words, numbers


def _word_found(word: str, vocabulary: set[str]) -> bool:
    if word in vocabulary:
        return True
    if len(word) < MIN_PREFIX:
        return False
    return any(
        len(other) >= MIN_PREFIX and (other.startswith(word) or word.startswith(other))
        for other in vocabulary
    )


@dataclass(frozen=True)
class ShardMatch:
    """How well the user's turns cover one shard."""

    shard_id: int
    word_share: float
    """Share of the shard's content words found in the user's turns."""
    missing_numbers: tuple[str, ...]
    counted: bool
    """False when the shard has no content words (left out of coverage)."""
    covered: bool


def match_shards(
    shards: Sequence[dict[str, Any]], turns: Iterable[str], threshold: float
) -> list[ShardMatch]:
    """Match every shard against the user's turns (see the module docstring for the rule)."""
    said_words, said_numbers = terms("\n".join(turns))
    matches = []
    for shard in shards:
        words, numbers = terms(str(shard["shard"]))
        found = sum(_word_found(w, said_words) for w in words)
        share = found / len(words) if words else 0.0
        missing = tuple(sorted(numbers - said_numbers))
        counted = bool(words or numbers)
        covered = counted and not missing and (share >= threshold if words else True)
        matches.append(ShardMatch(int(shard["shard_id"]), share, missing, counted, covered))
    return matches


def sample_shards(metadata: dict[str, Any]) -> list[dict[str, Any]]:
    """The sample's shards ({shard_id, shard} dicts), validated; [] when it has none."""
    shards = metadata.get("shards") or []
    for i, shard in enumerate(shards):
        if not isinstance(shard, dict) or "shard_id" not in shard:
            raise ConfigError(
                f"sample metadata shards[{i}] = {shard!r} is not a {{'shard_id': int, 'shard': str}} dict; "
                "fix the dataset's `shards` field (Lost in Conversation schema)"
            )
    return shards


def user_texts(state: TaskState, conversation: Conversation) -> list[str]:
    """The simulated user's sent turns; the transcript's user messages when no simulator ran."""
    if conversation.turns:
        return [t.text or "" for t in sent_turns(conversation)]
    return [m.text for m in state.messages if m.role == "user"]


def shard_coverage_score(
    state: TaskState,
    conversation: Conversation,
    shards: list[dict[str, Any]],
    threshold: float,
    meta: dict[str, Any],
) -> Score:
    """Coverage of a sample with shards: tracked shard ids when the simulator recorded any, else the matcher."""
    ids = sorted({int(s["shard_id"]) for s in shards})
    if conversation.revealed_shards:
        revealed = sorted(set(conversation.revealed_shards) & set(ids))
        return Score(
            value={"coverage": len(revealed) / len(ids), "verdict": "shards"},
            explanation=f"revealed shards {revealed} of {ids} (shard ids the simulator recorded)",
            metadata=meta,
        )
    matches = match_shards(shards, user_texts(state, conversation), threshold)
    counted = [m for m in matches if m.counted]
    covered = [m.shard_id for m in counted if m.covered]
    coverage = len(covered) / len(counted) if counted else None
    explanation = (
        f"matched shards {covered} of {[m.shard_id for m in counted]} in the user's turns "
        f"(every number and >= {threshold:g} of the content words)"
    )
    per_shard = {
        str(m.shard_id): {"word_share": round(m.word_share, 3), "missing_numbers": list(m.missing_numbers)}
        for m in matches
    }
    return Score(
        value={"coverage": coverage, "verdict": "matched"},
        explanation=explanation,
        metadata={**meta, "shard_matches": per_shard, "threshold": threshold},
    )


@metric(scores="unreduced")
def intent_coverage_pct() -> Metric:
    """Intent coverage (arXiv 2510.06552 §4, Table 3: GPT-4o-mini 86.6, GPT-4o 84.7, UserLM-8b 76.7), in percent:
    mean share of the intent's information units the user revealed. With shards: tracked shard ids, else the shard
    matcher; without shards: the judge's covered/total units estimate (`intent_coverage`)."""
    return _mean_metric("coverage", 100.0)


@scorer(metrics=[intent_coverage_pct()])
def shard_coverage(threshold: float = DEFAULT_THRESHOLD, probe: str | None = None) -> Scorer:
    """Intent coverage over the sample's shards, with no model: tracked shard ids, else the shard matcher.

    Samples without shards are left unscored.

    Args:
        threshold: Share of a shard's content words the user's turns must contain (numbers must all appear).
        probe: Score only samples whose metadata `probe` is this (others stay unscored).
    """
    if not 0 < threshold <= 1:
        raise ConfigError(f"shard_coverage: threshold must be in (0, 1], got {threshold}")

    async def score(state: TaskState, target: Target) -> Score | None:  # noqa: ARG001
        if skip_sample(state, probe):
            return None
        shards = sample_shards(state.metadata or {})
        if not shards:
            return None
        return shard_coverage_score(state, read_conversation(state), shards, threshold, {})

    return score
