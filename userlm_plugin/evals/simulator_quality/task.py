"""Simulator quality: the paper's robustness probes, run against any simulated user (arXiv 2510.06552 §3; docs/metrics.md).

Measures the SIMULATOR, not an assistant: every probe's assistant side is fixed text in the sample, and the
simulator writes one next user turn which the scorers judge.

    inspect eval evals/simulator_quality.py -T probe=all -T simulator=userlm \\
        --model none/none --model-role user=userlm/microsoft/UserLM-8b --model-role judge=litellm/gpt-4o
    inspect eval evals/simulator_quality.py -T probe=role -T simulator=prompted \\
        --model none/none --model-role user=litellm/gpt-4o --model-role judge=litellm/gpt-4o

Probes (`-T probe=`): `role` (role adherence, judge), `intent` (intent adherence, judge), `first_turn`
(diversity, intent dumping, style; model-free), `termination` (does the user end exactly when the goal
was met; model-free F1), or `all`. `-T source=hf` loads the paper's sources (CommonsenseQA, NaturalQuestions,
PRISM; network + `datasets`) instead of the in-repo probe sets. `-T simulator=` takes a preset name
(userlm, prompted, prompted_flat, scripted, ...) or a YAML preset path. The judge probes need
`--model-role judge=...` (any provider). `--epochs N` repeats every probe N times.

For the termination probe a `userlm` simulator is run with ending allowed from the first turn (guardrail
override `min_turns_before_end: 0`); elsewhere the simulator runs exactly as configured.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

from inspect_ai import Task
from inspect_ai.dataset import MemoryDataset
from inspect_ai.model import ChatMessageUser, model_roles
from inspect_ai.scorer import Scorer
from inspect_ai.solver import Generate, Solver, TaskState, solver

from ...conversation import context_from_state, describe_simulator
from ...errors import ConfigError, UsageError
from ...recorder import ConversationRecorder
from ...scoring.quality.calibration import end_calibration
from ...scoring.quality.judges import intent_adherence, role_adherence
from ...scoring.quality.scorers import (
    first_turn_quality,
    guardrail_activity,
    intent_decomposition,
    termination,
)
from ...simulators.base import Simulator
from ...simulators.presets import load_simulator
from ...simulators.userlm import UserLMUser
from ...turns import StopReason, TurnRecord
from .dataset import PROBES, load_hf_probe, probe_dataset

JUDGED_PROBES = ("role", "intent")
"""Probes scored by an LLM judge (the `judge` model role)."""

END_ALLOWED = {"min_turns_before_end": 0}
"""Guardrail override for the termination probe: let the User LM end from its first turn."""


def end_allowed(sim: Simulator) -> Simulator:
    """The same simulator with ending allowed; only the User LM bans ending by default (docs/userlm.md, guardrails)."""
    if isinstance(sim, UserLMUser):
        guardrails = {**(sim.config.guardrails or {}), **END_ALLOWED}
        allowed = UserLMUser(sim.config.model_copy(update={"guardrails": guardrails}))
        allowed.preset = sim.preset
        return allowed
    return sim


@solver
def probe_next_turn(simulator: str | dict[str, Any] | Simulator = "userlm") -> Solver:
    """Ask the simulator for ONE next user turn after the sample's fixed conversation, and record it.

    The turn is recorded by the same `ConversationRecorder` as `simulated_user`'s turns (store record, summary,
    span, transcript; stop reason `user_ended`, or `max_turns` because a probe allows one turn), so the
    simulation-quality scorers apply unchanged. No assistant model is called.
    """
    sim = load_simulator(simulator)
    sim_end = end_allowed(sim)

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        if (state.metadata or {}).get("probe") in JUDGED_PROBES:
            check_judge_role(state.metadata["probe"], model_roles())  # before the simulator runs
        current = sim_end if (state.metadata or {}).get("probe") == "termination" else sim
        base = context_from_state(state, None, needs_intent=getattr(current, "needs_intent", True))
        # the prefix is fixed text; an empty input (first-turn probe) leaves no messages at all
        state.messages = [m for m in state.messages if m.role == "system" or m.text.strip()]
        index = sum(m.role == "user" for m in state.messages) + 1
        record = ConversationRecorder.start(
            state, current.name, describe_simulator(current, simulator), base.intent
        )
        async with record.turn_span(index):
            turn = await current.next_turn(replace(base, messages=list(state.messages), turn=index))
            record.user_turn(TurnRecord(index=index, simulator=current.name, **dict(turn)))
        if turn.ended:
            record.stop(StopReason.USER_ENDED)
        else:
            state.messages.append(
                ChatMessageUser(content=turn.text or "", metadata={"simulator": current.name, "turn": index})
            )
            record.stop(StopReason.MAX_TURNS)  # a probe asks for one turn
        state.completed = True
        return state

    return solve


def probe_scorers(probe: str) -> list[Scorer]:
    """The scorers of one probe (restricted to its samples, so `probe=all` reports each probe separately)."""
    by_probe: dict[str, list[Scorer]] = {
        "role": [role_adherence(probe="role")],
        "intent": [intent_adherence(probe="intent")],
        "first_turn": [first_turn_quality(probe="first_turn"), intent_decomposition(probe="first_turn")],
        "termination": [termination(probe="termination"), end_calibration(probe="termination")],
    }
    names = PROBES if probe == "all" else (probe,)
    return [s for name in names for s in by_probe[name]] + [guardrail_activity()]


def check_judge_role(probe: str, roles: dict[str, Any]) -> None:
    """A clear `UsageError` when `probe` needs the judge and no `judge` role is bound."""
    needs = [p for p in ((probe,) if probe != "all" else PROBES) if p in JUDGED_PROBES]
    if needs and "judge" not in roles:
        raise UsageError(
            f"simulator_quality -T probe={probe}: the {' and '.join(needs)} probe(s) are scored by a judge model. "
            "Bind one with --model-role judge=<model> (e.g. judge=openai-api/<service>/<model>), or pick a "
            "model-free probe: -T probe=first_turn or -T probe=termination."
        )


def simulator_quality_task(
    probe: Literal["role", "intent", "first_turn", "termination", "all"] = "all",
    simulator: str | dict[str, Any] = "userlm",
    source: Literal["repo", "hf"] = "repo",
    limit: int | None = None,
) -> Task:
    """Build the probe task (arguments documented on the `@task` wrapper in evals/simulator_quality.py)."""
    if probe != "all" and probe not in PROBES:
        raise UsageError(f"-T probe={probe!r} is not one of: {', '.join(PROBES)}, all")
    if source not in ("repo", "hf"):
        raise UsageError(f"-T source={source!r} must be 'repo' or 'hf'")
    roles = model_roles()
    if (
        roles
    ):  # inside `inspect eval` with roles given: check now; a Task built in Python is checked per sample
        check_judge_role(probe, roles)
    try:
        sim = load_simulator(simulator)
    except ConfigError as ex:
        raise UsageError(str(ex)) from ex
    if source == "repo":
        dataset = probe_dataset(probe, limit)
    elif source == "hf":
        names = [p for p in (PROBES if probe == "all" else (probe,)) if p != "first_turn"]
        samples = [s for name in names for s in load_hf_probe(name, limit=limit or 2000)]  # type: ignore[arg-type]
        if probe in ("all", "first_turn"):
            samples += list(
                probe_dataset("first_turn", limit)
            )  # the paper samples WildChat intents; not public
        dataset = MemoryDataset(samples, name=f"userlm_probes_hf_{probe}")
    label = simulator if isinstance(simulator, str) else sim.name
    return Task(
        dataset=dataset,
        solver=probe_next_turn(sim),
        scorer=probe_scorers(probe),
        model="none/none",  # the assistant side is fixed text: no model under test is called
        metadata={"probe": probe, "simulator": label},
        display_name=f"simulator_quality · {sim.name} · probe {probe}",
        tags=["simulator_quality", f"simulator:{sim.name}", f"probe:{probe}"],
    )
