"""Simulation-quality scorers: how human-like were the simulated users of a run? (docs/metrics.md)

Add them to any task that used `simulated_user` (`scorer=[*simulation_quality_scorers(), ...]`) or run them
on an existing log (`inspect score LOG --scorer userlm_plugin/termination`). Each scorer reads only the
sample's store (`Conversation`, userlm_plugin/records.py) and metadata, never live simulator objects.

Where they live: `first_turn.py` (first_turn_quality, intent_decomposition), `pace.py` (conversation_variety,
termination), `guardrails.py` (guardrail_activity), the shared reading and aggregation rules in `reading.py`,
the pure formulas in `metrics.py`, the judge scorers in `judges.py`. Metric names are short, because they are
the column headers of `inspect view` and the results table; each scorer's docstring and docs/metrics.md say
what they measure (`_pct` = percent 0..100).
"""

from __future__ import annotations

from inspect_ai.scorer import Scorer

from .first_turn import (
    first_turn_assistant_opener_pct,
    first_turn_intent_share_pct,
    first_turn_mean_words,
    first_turn_pairwise_difference_pct,
    first_turn_quality,
    first_turn_unique_unigram_pct,
    intent_decomposition,
    intent_overlap_pct,
    intent_overlap_words_per_turn,
)
from .guardrails import (
    guardrail_activity,
    guardrail_intervention_pct,
    guardrails_exhausted_pct,
    rejected_drafts_per_turn,
    role_break_pct,
)
from .pace import (
    conversation_variety,
    end_decision_f1,
    ended_by_user_pct,
    hit_turn_cap_pct,
    mean_user_turns,
    termination,
    turn_range_within_intent,
    turn_variance_within_intent,
    unigram_difference_within_intent,
)
from .reading import (
    NOT_APPLICABLE,
    conversation_intent,
    conversation_to_score,
    group_key,
    mean_metric,
    ratio_metric,
    read_conversation,
    sent_turns,
    skip_sample,
)

_mean_metric = mean_metric  # the name judges.py and coverage.py import


def simulation_quality_scorers() -> list[Scorer]:
    """The model-free simulation-quality scorers, to append to any simulated-user task's `scorer=[...]`.

    The judge scorers (`role_adherence`, `intent_adherence`, and `intent_coverage` without shards) need a
    `judge` model role and are added explicitly.
    """
    return [
        first_turn_quality(),
        intent_decomposition(),
        conversation_variety(),
        termination(),
        guardrail_activity(),
    ]


__all__ = [
    "NOT_APPLICABLE",
    "conversation_intent",
    "conversation_to_score",
    "conversation_variety",
    "end_decision_f1",
    "ended_by_user_pct",
    "first_turn_assistant_opener_pct",
    "first_turn_intent_share_pct",
    "first_turn_mean_words",
    "first_turn_pairwise_difference_pct",
    "first_turn_quality",
    "first_turn_unique_unigram_pct",
    "group_key",
    "guardrail_activity",
    "guardrail_intervention_pct",
    "guardrails_exhausted_pct",
    "hit_turn_cap_pct",
    "intent_decomposition",
    "intent_overlap_pct",
    "intent_overlap_words_per_turn",
    "mean_metric",
    "mean_user_turns",
    "ratio_metric",
    "read_conversation",
    "rejected_drafts_per_turn",
    "role_break_pct",
    "sent_turns",
    "simulation_quality_scorers",
    "skip_sample",
    "termination",
    "turn_range_within_intent",
    "turn_variance_within_intent",
    "unigram_difference_within_intent",
]
