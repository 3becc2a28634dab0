"""The User LM's guardrails held against people: how often would each one reject a REAL human turn?
(docs/fidelity.md#guardrails-against-people)

The paper's guardrails (Appendix D.1; runtime/guardrails.py) resample turns under 3 or over 25 words, turns that
open with "I", "You" or "Here", verbatim repetitions, and never let the user end the conversation. A guardrail that
rejects many human turns pushes the simulator away from people. Each human turn is checked in its real context
(the intent and the conversation before it) with the runtime's own `check_draft`; the end ban against each
conversation's real end. From the human word counts the eval also recommends data-driven length bounds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ...runtime.guardrails import DraftContext, GuardrailConfig, check_draft, word_count
from ...turns import RejectReason

KEEP_SHARE = 0.95
"""The recommended length bounds keep this share of the human turns (2.5% cut at each end)."""


@dataclass(frozen=True)
class HumanTurnCheck:
    """What each guardrail would decide about one human turn."""

    words: int
    first_word: bool
    """Opens with a banned first word (word-level: "I'm" counts, as Llama-3 tokenises it "I" + "'m")."""
    too_short: bool
    too_long: bool
    repetition: RejectReason | None


def opens_with_banned_word(text: str, config: GuardrailConfig) -> bool:
    """Whether the first word is one the first-token filter bans (followed by a non-letter: "Iceland" is not "I")."""
    if not config.first_token_filter or not config.banned_first_words:
        return False
    words = "|".join(re.escape(w) for w in config.banned_first_words)
    return re.match(rf"^\W*(?:{words})(?![A-Za-z])", text.strip()) is not None


def check_human_turns(
    intent: str, turns: Sequence[dict[str, str]], config: GuardrailConfig | None = None
) -> list[HumanTurnCheck]:
    """Each user turn of a real conversation against the guardrails, in its context."""
    config = config or GuardrailConfig()
    no_length = config.model_copy(update={"length_filter": False})
    out: list[HumanTurnCheck] = []
    for i, turn in enumerate(turns):
        if turn["role"] != "user":
            continue
        before = turns[:i]
        context = DraftContext(
            intent=intent,
            user_turns=[t["content"] for t in before if t["role"] == "user"],
            assistant_turns=[t["content"] for t in before if t["role"] == "assistant"],
        )
        text = turn["content"].strip()
        n = word_count(text)
        repetition = check_draft(text, context, no_length)
        out.append(
            HumanTurnCheck(
                words=n,
                first_word=opens_with_banned_word(text, config),
                too_short=config.length_filter and n < config.min_words,
                too_long=config.length_filter and n > config.max_words,
                repetition=None if repetition is None else repetition.reason,
            )
        )
    return out


def end_rejected(user_turns: int, config: GuardrailConfig | None = None) -> bool:
    """Whether the end-of-conversation control would have refused the person's real end after `user_turns`."""
    return not (config or GuardrailConfig()).end_allowed(user_turns)


def recommend_bounds(word_counts: Sequence[int], keep: float = KEEP_SHARE) -> tuple[int, int] | None:
    """(min_words, max_words) that keep the central `keep` share of the human turns: the floor of the lower
    percentile and the ceiling of the upper one (None without turns)."""
    if not word_counts:
        return None
    import numpy as np

    tail = (1 - keep) / 2 * 100
    low, high = np.percentile(np.asarray(word_counts, dtype=float), [tail, 100 - tail])
    return max(int(math.floor(low)), 0), max(int(math.ceil(high)), 1)


def guardrail_summary(checks: Sequence[HumanTurnCheck], ends: Sequence[bool]) -> dict[str, float | None]:
    """Percent of human turns each guardrail would reject (`g_*_pct`), of real ends refused (`g_end_pct`), and the
    recommended length bounds (`rec_min_words`, `rec_max_words`)."""

    def pct(flags: Sequence[bool]) -> float | None:
        return 100.0 * sum(flags) / len(flags) if flags else None

    bounds = recommend_bounds([c.words for c in checks])
    return {
        "g_short_pct": pct([c.too_short for c in checks]),
        "g_long_pct": pct([c.too_long for c in checks]),
        "g_first_pct": pct([c.first_word for c in checks]),
        "g_repeat_pct": pct([c.repetition is not None for c in checks]),
        "g_any_pct": pct(
            [c.too_short or c.too_long or c.first_word or c.repetition is not None for c in checks]
        ),
        "g_end_pct": pct(ends),
        "rec_min_words": None if bounds is None else float(bounds[0]),
        "rec_max_words": None if bounds is None else float(bounds[1]),
    }
