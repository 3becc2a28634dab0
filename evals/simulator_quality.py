"""Simulator quality: the robustness probes of arXiv 2510.06552 §3 against any simulated user (docs/metrics.md).

    inspect eval evals/simulator_quality.py -T probe=all -T simulator=userlm \\
        --model-role user=userlm/microsoft/UserLM-8b --model-role judge=openai-api/<service>/<model>

What each probe measures, the sources and the scoring: `userlm_plugin/evals/simulator_quality/task.py`.
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
