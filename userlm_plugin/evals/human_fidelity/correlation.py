"""SimulatorArena's validity protocol: do ratings of simulated conversations track the people's own ratings?
(arXiv 2510.05444; docs/fidelity.md#the-correlation-protocol)

For every document-creation conversation of SimulatorArena, the simulator under test plays that person (their
intent and background) against the assistant model that person talked to (`-T assistants=` maps SimulatorArena's
model names to Inspect models, with the study's assistant system prompt), for up to `max_turns` user turns. The
`judge` role then rates the simulated conversation on the two 1-10 scales the person rated theirs on (our prompt,
prompts/rating.yaml). The metric correlates the judge's ratings with the people's ratings, z-normalised per worker
as SimulatorArena does (simulatorarena.py), with Spearman, Pearson and Kendall, at instance level (one point per
conversation) and at system level (one point per assistant model: the means), as SimulatorArena's
`show_simulator_performance.py` does. A good simulator ranks the assistants the way the people did.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml
from inspect_ai import Task
from inspect_ai.agent import AgentState
from inspect_ai.model import GenerateConfig, Model, get_model, model_roles
from inspect_ai.scorer import Metric, SampleScore, Score, Scorer, Target, metric, scorer
from inspect_ai.solver import Generate, Solver, TaskState, solver

from ..._inspect_compat import eval_being_set_up
from ...conversation import simulated_user
from ...errors import UsageError
from ...scoring.quality.judges import format_transcript, resolve_judge
from ...simulators._common import render
from ...simulators.base import Simulator
from . import simulatorarena as arena
from .dataset import TASK_NAME, HumanData, human_dataset
from .replay import check_user_model, ending_allowed

ASPECTS = ("interaction", "document")
ANY_ASSISTANT = "*"
"""The `-T assistants=` key for every SimulatorArena model not named."""


# ------------------------------------------------------------------------------------ the assistants


def check_assistants(
    assistants: dict[str, str | Model] | None, needed: Sequence[str]
) -> dict[str, str | Model]:
    """Every assistant model the conversations used must have an Inspect model (or `*` covers it)."""
    if not assistants:
        names = ", ".join(sorted(set(needed)))
        raise UsageError(
            "-T protocol=correlation needs -T assistants= mapping each SimulatorArena assistant to an Inspect "
            f"model, e.g. -T assistants='{{gpt-4o: openai/gpt-4o, \"*\": openai/gpt-4o-mini}}'; these "
            f"conversations used: {names}"
        )
    if not isinstance(assistants, dict):
        raise UsageError(
            f"-T assistants= must be a mapping of model names to models, got {assistants!r:.100}"
        )
    missing = sorted({n for n in needed if n not in assistants} if ANY_ASSISTANT not in assistants else set())
    if missing:
        raise UsageError(
            f'-T assistants= has no model for {", ".join(missing)}: add them, or a "*" entry for every other one'
        )
    return assistants


class AssignedAssistant:
    """Answers each user turn with one model (the assistant this conversation's person talked to)."""

    def __init__(self, model: Model, label: str) -> None:
        self.model = model
        self.__name__ = f"assistant {label}"

    async def __call__(self, state: AgentState) -> AgentState:
        output = await self.model.generate(state.messages)
        state.output = output
        state.messages.append(output.message)
        return state


@solver
def converse_with_assigned_assistant(
    simulator: Simulator, assistants: dict[str, str | Model], max_turns: int = 15
) -> Solver:
    """The simulator talks to the sample's `assistant_model` (through `assistants`) for up to `max_turns` turns,
    recorded as any `simulated_user` conversation."""

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        check_user_model(simulator)
        name = str((state.metadata or {}).get("assistant_model"))
        spec = assistants.get(name, assistants.get(ANY_ASSISTANT))
        if spec is None:  # checked when the task was built; a sample changed since then
            raise UsageError(f"-T assistants= has no model for {name!r}")
        model = spec if isinstance(spec, Model) else get_model(spec)
        converse = simulated_user(simulator, max_turns=max_turns, assistant=AssignedAssistant(model, name))
        return await converse(state, generate)

    return solve


# ---------------------------------------------------------------------------------------- the judge


@cache
def rating_prompt() -> str:
    text = resources.files(__package__).joinpath("prompts/rating.yaml").read_text("utf-8")
    return str(yaml.safe_load(text)["prompt"])


def parse_ratings(reply: str) -> dict[str, float | None]:
    """The judge's last `INTERACTION: n` and `DOCUMENT: n` (clamped to 1..10, as SimulatorArena caps at 10);
    None for a scale it did not give."""
    out: dict[str, float | None] = {}
    for aspect in ASPECTS:
        found = re.findall(rf"{aspect}\s*[:=]\s*\**\s*(\d+(?:\.\d+)?)", reply, flags=re.IGNORECASE)
        out[aspect] = min(10.0, max(1.0, float(found[-1]))) if found else None
    return out


@metric(name="fid_correlation", scores="unreduced")
def rating_correlation() -> Metric:
    """Spearman (`_rho`), Pearson (`_r`) and Kendall (`_tau`) between the judge's ratings and the people's
    z-normalised ones, per scale (`int_`, `doc_`) at instance and system (`_sys_`) level; `rated_pct`: samples
    whose reply gave both ratings."""

    def compute(scores: list[SampleScore]) -> dict[str, float | None]:
        rows = [RatedConversation.from_score(s.score) for s in scores]
        out = correlation_table(rows)
        out["rated_pct"] = (
            100.0
            * sum(r.judge["interaction"] is not None and r.judge["document"] is not None for r in rows)
            / len(rows)
            if rows
            else None
        )
        return out

    return compute


@scorer(metrics=[rating_correlation()])
def simulated_conversation_rating(judge: str | Model | None = None) -> Scorer:
    """The `judge` role rates the simulated conversation on the people's two scales; the score keeps the
    people's own ratings beside the judge's."""

    async def score(state: TaskState, target: Target) -> Score:
        model = resolve_judge(judge)
        meta = state.metadata or {}
        prompt = render(
            rating_prompt(),
            task=str(meta.get("task") or ""),
            document_type=str(meta.get("document_type") or "document"),
            conversation=format_transcript(state.messages),
        )
        output = await model.generate(prompt, config=GenerateConfig(temperature=0.0))
        ratings = parse_ratings(output.completion)
        return Score(
            value={f"judge_{k}": v for k, v in ratings.items()},
            answer=output.completion,
            explanation=" · ".join(
                f"{aspect}: judge {ratings[aspect]}, person {meta.get(f'overall_{aspect}_rating')} "
                f"(z {meta.get(f'human_z_{aspect}', float('nan')):.2f})"
                for aspect in ASPECTS
            ),
            metadata={
                "assistant_model": meta.get("assistant_model"),
                **{f"human_z_{a}": meta.get(f"human_z_{a}") for a in ASPECTS},
                **{f"human_{a}": meta.get(f"overall_{a}_rating") for a in ASPECTS},
            },
        )

    return score


# ------------------------------------------------------------------------------------- correlations


@dataclass(frozen=True)
class RatedConversation:
    """One simulated conversation: which assistant, the judge's ratings, the person's z-normalised ones."""

    assistant: str
    judge: dict[str, float | None]
    human_z: dict[str, float | None]

    @classmethod
    def from_score(cls, score: Score) -> RatedConversation:
        value = score.value if isinstance(score.value, dict) else {}
        meta = score.metadata or {}
        return cls(
            assistant=str(meta.get("assistant_model")),
            judge={a: _number(value.get(f"judge_{a}")) for a in ASPECTS},
            human_z={a: _number(meta.get(f"human_z_{a}")) for a in ASPECTS},
        )


def _number(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def correlations(x: Sequence[float], y: Sequence[float]) -> dict[str, float | None]:
    """Spearman, Pearson and Kendall of two equal-length series (scipy); None when undefined (fewer than 2
    points, or a constant series)."""
    from scipy import stats

    if len(x) < 2 or len(set(x)) < 2 or len(set(y)) < 2:
        return {"rho": None, "r": None, "tau": None}
    values = {
        "rho": stats.spearmanr(x, y).statistic,
        "r": stats.pearsonr(x, y).statistic,
        "tau": stats.kendalltau(x, y).statistic,
    }
    return {k: None if math.isnan(float(v)) else float(v) for k, v in values.items()}


def correlation_table(rows: Sequence[RatedConversation]) -> dict[str, float | None]:
    """Instance- and system-level correlations per scale (`int_rho`, `int_sys_tau`, `doc_r`, ...), and how many
    points each level had (`n_inst`, `n_sys`)."""
    out: dict[str, float | None] = {}
    for aspect, short in zip(ASPECTS, ("int", "doc"), strict=True):
        pairs = [
            (r.assistant, r.judge[aspect], r.human_z[aspect])
            for r in rows
            if r.judge[aspect] is not None and r.human_z[aspect] is not None
        ]
        instance = correlations([p[1] for p in pairs], [p[2] for p in pairs])  # type: ignore[misc]
        by_system: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for assistant, judged, human in pairs:
            by_system[assistant].append((judged, human))  # type: ignore[arg-type]
        means = [
            (statistics.fmean(j for j, _ in v), statistics.fmean(h for _, h in v)) for v in by_system.values()
        ]
        system = correlations([m[0] for m in means], [m[1] for m in means])
        out.update({f"{short}_{k}": v for k, v in instance.items()})
        out.update({f"{short}_sys_{k}": v for k, v in system.items()})
        if aspect == ASPECTS[0]:
            out["n_inst"], out["n_sys"] = float(len(pairs)), float(len(means))
    return out


# ------------------------------------------------------------------------------------------ the task


def check_judge() -> None:
    """Inside `inspect eval`, the judge must be bound before any conversation runs."""
    roles = model_roles()
    if roles and "judge" not in roles:
        raise UsageError(
            "-T protocol=correlation rates each simulated conversation with a judge model: bind one with "
            "--model-role judge=<model>"
        )


def correlation_task(
    human: HumanData,
    simulator: Simulator,
    assistants: dict[str, str | Model] | None,
    max_turns: int,
    limit: int | None,
    metadata: dict[str, Any],
) -> Task:
    """The correlation protocol's task over SimulatorArena's document-creation conversations."""
    if human.subset != "document_creation":
        raise UsageError(
            "-T protocol=correlation needs SimulatorArena's document-creation conversations (their people rated "
            f"them); -T data={human.origin} holds {human.subset or 'conversations without ratings'}"
        )
    if not isinstance(max_turns, int) or max_turns < 1:
        raise UsageError(f"-T max_turns must be at least 1, got {max_turns!r}")
    records = human.records[:limit]
    mapping = check_assistants(assistants, [str(r.extra.get("assistant_model")) for r in records])
    check_judge()
    if eval_being_set_up():  # the eval's roles are known now
        check_user_model(simulator)
    return Task(
        name=TASK_NAME,
        dataset=human_dataset(human, limit, system_prompt=arena.DOCUMENT_ASSISTANT_PROMPT),
        solver=converse_with_assigned_assistant(ending_allowed(simulator), mapping, max_turns),
        scorer=simulated_conversation_rating(),
        model="none/none",  # each conversation's assistant comes from -T assistants=
        metadata={**metadata, "max_turns": max_turns, "assistants": {k: str(v) for k, v in mapping.items()}},
        display_name=f"human_fidelity · {simulator.name} · correlation",
        tags=["human_fidelity", f"simulator:{simulator.name}", "protocol:correlation"],
    )
