"""How human is this simulated user? Replay real human conversations and measure the simulator against the people
(docs/fidelity.md).

    inspect eval evals/human_fidelity.py -T data=my_conversations.jsonl -T simulator=userlm \\
        --model-role user=userlm/microsoft/UserLM-8b
    inspect eval evals/human_fidelity.py -T source=simulatorarena -T simulator=prompted_flat \\
        --model-role user=openai-api/<service>/<model>

Two protocols:
* `replay` (default): every user turn of every human conversation is written again by the simulator from the real
  prefix (replay.py), and the fidelity metrics compare its turns with the people's (scorers.py). No assistant model.
* `correlation`: SimulatorArena's validity protocol on its document-creation conversations (correlation.py): the
  simulator talks to the assistant each person talked to, a `judge` rates the simulated conversation on the
  people's two 1-10 scales, and the metrics correlate those ratings with the people's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from inspect_ai import Task
from inspect_ai.model import Model
from inspect_ai.scorer import Scorer

from ...errors import ConfigError, UsageError
from ...runtime.guardrails import GuardrailConfig
from ...simulators.base import Simulator
from ...simulators.presets import load_simulator
from ...simulators.userlm import UserLMUser
from ...train.conversations import ChatRecord
from . import simulatorarena as arena
from .dataset import TASK_NAME, HumanData, check_invalid, human_dataset, read_human_data
from .replay import replay_human_turns
from .scorers import guardrail_fit, human_fidelity, human_perplexity

Protocol = Literal["replay", "correlation"]


def _simulator(spec: str | dict[str, Any] | Simulator) -> Simulator:
    try:
        return load_simulator(spec)
    except ConfigError as error:
        raise UsageError(str(error)) from error


def _guardrail_overrides(sim: Simulator) -> dict[str, Any] | None:
    """The guardrail settings a `userlm` preset overrides (checked now: a typo fails before any model loads)."""
    overrides = sim.config.guardrails if isinstance(sim, UserLMUser) else None
    try:
        GuardrailConfig().merged(overrides)
    except ConfigError as error:
        raise UsageError(f"-T simulator: {error}") from error
    return overrides


def _check_intents(data: HumanData, sim: Simulator) -> None:
    if not getattr(sim, "needs_intent", True):
        return
    missing = [r.id for r in data.records if not r.intent]
    if missing:
        raise UsageError(
            f"-T data={data.origin}: {len(missing)} conversation(s) have no `intent` (e.g. {missing[0]}), which "
            f"the {sim.name} simulator needs: add one per line (userlm-plugin train intents writes them), or "
            "replay with -T simulator=scripted"
        )


def replay_scorers(sim: Simulator) -> list[Scorer]:
    """The replay's scorers: fidelity and guardrails always; perplexity for the User LM preset."""
    scorers = [human_fidelity(), guardrail_fit(_guardrail_overrides(sim))]
    if isinstance(sim, UserLMUser):
        scorers.append(human_perplexity(role=sim.config.role))
    return scorers


def human_fidelity_task(
    data: str | Sequence[ChatRecord] | None = None,
    source: Literal["simulatorarena"] | None = None,
    subset: arena.Subset = "document_creation",
    simulator: str | dict[str, Any] | Simulator = "userlm",
    protocol: Protocol = "replay",
    assistants: dict[str, str | Model] | None = None,
    max_turns: int = 15,
    background: bool = True,
    limit: int | None = None,
    on_invalid: Literal["skip", "fail"] = "skip",
) -> Task:
    """Build the task (arguments documented on the `@task` wrapper in evals/human_fidelity.py)."""
    if protocol not in ("replay", "correlation"):
        raise UsageError(f"-T protocol={protocol!r} must be replay or correlation")
    if assistants is not None and protocol != "correlation":
        raise UsageError("-T assistants= applies to -T protocol=correlation only")
    sim = _simulator(simulator)
    human = read_human_data(data, source, subset, background)
    check_invalid(human, on_invalid)
    _check_intents(human, sim)
    label = simulator if isinstance(simulator, str) else sim.name
    where = human.subset or "conversations"
    metadata: dict[str, Any] = {
        "protocol": protocol,
        "simulator": label,
        "human_source": human.origin,
        "human_subset": human.subset,
        "skipped_records": [str(p) for p in human.problems],
        "background": background,
    }
    if human.subset == "math_tutoring":
        metadata["intent_note"] = arena.MATH_INTENT_NOTE
    if protocol == "correlation":
        from .correlation import correlation_task

        return correlation_task(human, sim, assistants, max_turns, limit, metadata)
    return Task(
        name=TASK_NAME,  # also when built from Python (api.py), so `compare --view fidelity` finds the log
        dataset=human_dataset(human, limit),
        solver=replay_human_turns(sim),
        scorer=replay_scorers(sim),
        model="none/none",  # nothing answers: the assistant's turns are the real ones
        metadata=metadata,
        display_name=f"human_fidelity · {sim.name} · {where}",
        tags=["human_fidelity", f"simulator:{sim.name}", f"protocol:{protocol}"],
    )
