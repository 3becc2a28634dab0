"""User-token perplexity of a User LM on held-out real conversations, as an Inspect eval (docs/training.md).

    inspect eval evals/user_perplexity.py -T data=held_out.jsonl --model none/none \\
        --model-role user=userlm/microsoft/UserLM-8b

One sample per conversation (the file format of `userlm-plugin train flip`'s test.jsonl). The solver scores the
conversation's real user turns under the `user` role's model, loaded exactly as `userlm/` loads it (same `-M`
options), with the intent and/or without it (`-T condition=`), and stores the per-conversation sums; the scorer
pools them: perplexity = exp(total NLL / total tokens) over all conversations (not a mean of per-conversation
PPLs). The teacher-forced P(<|endconversation|>) at each user turn is calibrated against where the real
conversation ended (AUROC etc., scoring/quality/calibration.py). The model must be a local `userlm/` model:
perplexity needs the weights, not a server.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any, Literal

from inspect_ai import Task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.log import transcript
from inspect_ai.model import ChatMessageAssistant, ChatMessageUser, get_model
from inspect_ai.scorer import Metric, SampleScore, Score, Scorer, Target, metric, scorer
from inspect_ai.solver import Generate, Solver, TaskState, solver
from inspect_ai.util import StoreModel
from pydantic import Field

from ...errors import ConfigError, UsageError
from ...scoring.quality.calibration import calibration_summary

Condition = Literal["intent", "no_intent", "both"]
CONDITIONS: dict[str, tuple[str, ...]] = {
    "intent": ("intent",),
    "no_intent": ("no_intent",),
    "both": ("intent", "no_intent"),
}


class UserTokenScores(StoreModel):
    """Per-condition sums for one conversation (what the scorer pools)."""

    by_condition: dict[str, dict[str, Any]] = Field(default_factory=dict)


def perplexity_dataset(data: str, limit: int | None = None) -> MemoryDataset:
    """Held-out conversations as samples: input = the real messages, metadata = intent and user id."""
    from ..._paths import resolve_user_path
    from ...train.conversations import read_conversations

    try:
        result = read_conversations(resolve_user_path(data))
    except ConfigError as error:
        raise UsageError(f"-T data={data}: {error}") from error
    if result.problems:
        first = "; ".join(str(p) for p in result.problems[:3])
        raise UsageError(f"-T data={data}: {len(result.problems)} invalid record(s): {first}")
    samples = [
        Sample(
            id=record.id,
            input=[
                ChatMessageUser(content=t["content"])
                if t["role"] == "user"
                else ChatMessageAssistant(content=t["content"])
                for t in record.turns
            ],
            metadata={"intent": record.intent, "user_id": record.user_id},
        )
        for record in result.records[:limit]
    ]
    return MemoryDataset(samples, name="user_perplexity")


def is_local_userlm(model: Any) -> bool:
    """Whether `model` is a local `userlm/` model (perplexity needs its weights, not a server)."""
    from ...runtime.provider import UserLMAPI

    return isinstance(model.api, UserLMAPI) and model.api.remote_args is None


async def conversation_sums(
    model: Any, record: Any, conditions: tuple[str, ...]
) -> dict[str, dict[str, Any]]:
    """Per condition (`intent`, `no_intent`), the summed NLL and token counts of one conversation's real user
    turns under a local `userlm/` model, and its teacher-forced end log-probabilities (what the metric pools)."""
    from ...runtime.local import torch_thread
    from ...train.perplexity import user_perplexity

    loaded = await asyncio.to_thread(lambda: model.api.loaded)
    out: dict[str, dict[str, Any]] = {}
    for name in conditions:
        report = await asyncio.to_thread(
            torch_thread.call,
            user_perplexity,
            loaded.model,
            loaded.tokenizer,
            [record],
            with_intent=name == "intent",
            name=str(model),
        )
        if report.skipped:
            out[name] = {"skipped": str(report.skipped[0])}
        else:
            s = report.scores[0]
            out[name] = {
                "nll_turns": s.nll_turns,
                "tokens_turns": s.tokens_turns,
                "nll_end": s.nll_end,
                "tokens_end": s.tokens_end,
                "end_logprobs": list(s.end_logprobs),
                "has_end_turn": s.has_end_turn,
            }
    return out


@solver
def score_user_turns(condition: Condition = "both", role: str = "user") -> Solver:
    """Score the sample's real user turns under the `role` model (no generation)."""

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        from ...train.conversations import ChatRecord

        model = get_model(role=role)
        if not is_local_userlm(model):
            raise UsageError(
                f"user_perplexity needs a local userlm/ model in the `{role}` role (weights, not a server); got "
                f"{model}: pass --model-role {role}=userlm/<folder or hub id>"
            )
        messages = state.input if isinstance(state.input, list) else []
        turns = tuple(
            {"role": m.role, "content": m.text.strip()} for m in messages if m.role in ("user", "assistant")
        )
        metadata = state.metadata or {}
        record = ChatRecord(id=str(state.sample_id), turns=turns, intent=metadata.get("intent"))
        store = state.store_as(UserTokenScores)
        store.by_condition = await conversation_sums(model, record, CONDITIONS[condition])
        transcript().info(store.by_condition, source="user_perplexity")
        state.completed = True
        return state

    return solve


def pooled_perplexity(rows: list[dict[str, Any]], end: bool) -> float | None:
    """exp(total NLL / total tokens) over conversations' sums (`conversation_sums` rows); `end`: count the final
    `<|endconversation|>` turn too. None without tokens."""
    nll = tokens = 0.0
    for row in rows:
        if "tokens_turns" in row:
            nll += row["nll_turns"] + (row["nll_end"] if end else 0.0)
            tokens += row["tokens_turns"] + (row["tokens_end"] if end else 0)
    return math.exp(nll / tokens) if tokens else None


def _pooled(scores: list[SampleScore], condition: str, end: bool) -> float | None:
    return pooled_perplexity([(s.score.metadata or {}).get(condition) or {} for s in scores], end)


@metric(scores="unreduced")
def user_token_perplexity_metrics() -> Metric:
    """Pooled perplexity per condition: `ppl_intent` / `ppl_no_intent` (all user tokens, the end turn included),
    `ppl_turns_*` (user turns only, comparable with a model without the end token), and the held-out calibration
    of the teacher-forced end probability (with intent): `end_auroc`, `end_brier`, `end_best_threshold`, ..."""

    def compute(scores: list[SampleScore]) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for condition in ("intent", "no_intent"):
            out[f"ppl_{condition}"] = _pooled(scores, condition, end=True)
            out[f"ppl_turns_{condition}"] = _pooled(scores, condition, end=False)
        logprobs: list[float] = []
        labels: list[bool] = []
        for s in scores:
            row = (s.score.metadata or {}).get("intent") or {}
            if row.get("has_end_turn"):
                logprobs += row["end_logprobs"]
                labels += [False] * (len(row["end_logprobs"]) - 1) + [True]
        calibration = calibration_summary(logprobs, labels)
        out.update({k: calibration[k] for k in ("end_auroc", "end_brier", "end_ece", "end_best_threshold")})
        return out

    return compute


@scorer(metrics=[user_token_perplexity_metrics()])
def user_token_perplexity() -> Scorer:
    """Per-conversation user-token NLL (nats per token) under each condition; pooled by the metric."""

    async def score(state: TaskState, target: Target) -> Score:
        rows = state.store_as(UserTokenScores).by_condition
        value: dict[str, float | None] = {}
        for condition, row in rows.items():
            tokens = row.get("tokens_turns", 0) + row.get("tokens_end", 0)
            value[f"nll_per_token_{condition}"] = (
                (row["nll_turns"] + row["nll_end"]) / tokens if tokens else None
            )
        explanation = ", ".join(
            f"{c}: {r['skipped']}"
            if "skipped" in r
            else f"{c}: {r['tokens_turns'] + r['tokens_end']} user tokens"
            for c, r in rows.items()
        )
        return Score(value=value, explanation=explanation, metadata=dict(rows))

    return score


def user_perplexity_task(data: str, condition: Condition = "both", limit: int | None = None) -> Task:
    if condition not in CONDITIONS:
        raise UsageError(f"-T condition={condition!r} must be one of: {', '.join(CONDITIONS)}")
    return Task(
        dataset=perplexity_dataset(data, limit),
        solver=score_user_turns(condition),
        scorer=user_token_perplexity(),
        model="none/none",  # nothing is generated: the `user` role's weights score the real turns
        metadata={"condition": condition},
    )
