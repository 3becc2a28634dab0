"""How often the simulator's drafts were rejected and resampled, and how often it slipped out of role
(`guardrail_activity`; the guardrails: docs/userlm.md, the metrics: docs/metrics.md)."""

from __future__ import annotations

from collections import defaultdict

from inspect_ai.scorer import Metric, Score, Scorer, Target, metric, scorer
from inspect_ai.solver import TaskState

from .reading import conversation_to_score, ratio_metric


@metric(name="intervened_pct", scores="unreduced")
def guardrail_intervention_pct() -> Metric:
    """Percent of simulated turns (including a final 'ended' decision) for which a guardrail or role/JSON
    check rejected at least one draft (docs/userlm.md, guardrails). Pooled over all turns of the run."""
    return ratio_metric("turns_with_rejections", "turn_records")


@metric(name="rejects_per_turn", scores="unreduced")
def rejected_drafts_per_turn() -> Metric:
    """Mean number of rejected drafts (resamples) per simulated turn: the guardrails' cost in extra calls."""
    return ratio_metric("rejected_drafts", "turn_records", scale=1.0)


@metric(name="exhausted_pct", scores="unreduced")
def guardrails_exhausted_pct() -> Metric:
    """Percent of simulated turns where every retry was rejected and the best draft was sent anyway."""
    return ratio_metric("guardrails_exhausted", "turn_records")


@metric(name="role_break_pct", scores="unreduced")
def role_break_pct() -> Metric:
    """Percent of sent user turns that still read as an assistant reply (`TurnRecord.role_break`): the
    simulator's own flag, the model-free counterpart of the role-adherence judge (docs/metrics.md)."""
    return ratio_metric("role_breaks", "sent_turns")


@scorer(
    name="guardrails",  # short: Inspect's terminal table cuts longer names (tests/test_metric_names.py)
    metrics=[
        guardrail_intervention_pct(),
        rejected_drafts_per_turn(),
        guardrails_exhausted_pct(),
        role_break_pct(),
    ],
)
def guardrail_activity(probe: str | None = None) -> Scorer:
    """How often the simulator's drafts were rejected and resampled, and how often it slipped out of role."""

    async def score(state: TaskState, target: Target) -> Score | None:
        if (found := conversation_to_score(state, probe)) is None:
            return None
        conversation, _ = found
        records = conversation.turns
        reasons: dict[str, int] = defaultdict(int)
        for record in records:
            for rejection in record.rejected:
                reasons[str(rejection.reason)] += 1
        value = {
            "turn_records": len(records),
            "sent_turns": sum(r.text is not None for r in records),
            "turns_with_rejections": sum(bool(r.rejected) for r in records),
            "rejected_drafts": sum(len(r.rejected) for r in records),
            "guardrails_exhausted": sum(r.guardrails_exhausted for r in records),
            "role_breaks": sum(r.role_break and r.text is not None for r in records),
        }
        explanation = (
            f"{value['rejected_drafts']} rejected drafts over {len(records)} turns"
            + (f" ({dict(reasons)})" if reasons else "")
            + f"; {value['role_breaks']} role breaks"
        )
        return Score(value=value, explanation=explanation, metadata={"rejections_by_reason": dict(reasons)})

    return score
