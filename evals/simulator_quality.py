"""Simulator quality: the paper's robustness probes, run against any simulated user (paper.md §2.6).

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

from typing import Any, Literal

from inspect_ai import Task, task

from userlm_plugin.evals.simulator_quality.task import simulator_quality_task


@task
def simulator_quality(
    probe: Literal["role", "intent", "first_turn", "termination", "all"] = "all",
    simulator: str | dict[str, Any] = "userlm",
    source: Literal["repo", "hf"] = "repo",
    limit: int | None = None,
) -> Task:
    """The paper's simulator-robustness probes against one simulator.

    Args:
        probe: role | intent | first_turn | termination | all.
        simulator: Preset name or YAML preset path (its model comes from `--model-role user=...`).
        source: `repo` (in-repo probe sets, offline) or `hf` (the paper's Hugging Face sources, pinned).
        limit: Items per probe (default: all; `hf` defaults to 2,000 like the paper).
    """
    return simulator_quality_task(probe=probe, simulator=simulator, source=source, limit=limit)
