"""The human-fidelity eval from Python: one call from conversations and a simulator to the metric table
(docs/fidelity.md#from-python). For benches and notebooks that compare simulators in one process.

    from userlm_plugin.evals.human_fidelity.api import evaluate_simulator
    log, table = evaluate_simulator("conversations.jsonl", "prompted_flat", model_roles={"user": "hf/local"})
    table["auroc"], table["len_jsd"], table["end_f1"]

`table` holds every metric of the run by its short name (`words`, `words_h`, `auroc`, `ppl`, `g_long_pct`, ...).
For several runs at once, on the conversations all of them replayed: `userlm_plugin.report.fidelity`
(`load_fidelity_runs`, `build_fidelity_report`), which `userlm-plugin compare --view fidelity` prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inspect_ai.log import EvalLog

from ...simulators.base import Simulator
from ...train.conversations import ChatRecord


def log_metrics(log: EvalLog) -> dict[str, float]:
    """Every metric of a finished run by name (the first scorer that reports a name wins)."""
    out: dict[str, float] = {}
    for score in log.results.scores if log.results else []:
        for name, value in score.metrics.items():
            out.setdefault(name, value.value)
    return out


def evaluate_simulator(
    conversations: str | Path | Sequence[ChatRecord],
    simulator: str | dict[str, Any] | Simulator,
    model_roles: dict[str, Any] | None = None,
    limit: int | None = None,
    **eval_args: Any,
) -> tuple[EvalLog, dict[str, float]]:
    """Replay `conversations` (a conversation JSONL / SimulatorArena JSON file, or records) with `simulator`
    and return the log and its metric table. `eval_args` go to `inspect_ai.eval` (log_dir, display, ...)."""
    from inspect_ai import eval as inspect_eval

    from .task import human_fidelity_task

    data = str(conversations) if isinstance(conversations, str | Path) else conversations
    task = human_fidelity_task(data=data, simulator=simulator, limit=limit)
    [log] = inspect_eval(task, model_roles=model_roles, **{"display": "none", **eval_args})
    if log.status != "success":
        raise RuntimeError(f"human_fidelity run failed: {log.error.message if log.error else log.status}")
    return log, log_metrics(log)
