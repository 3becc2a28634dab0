"""The comparison as pandas DataFrames, on Inspect's own log readers (`inspect_ai.analysis.evals_df`,
`samples_df`): for notebooks and for analyses the report does not make.

    from userlm_plugin.report.frames import runs_frame, conversations_frame, comparison_frame
    runs = runs_frame("logs/")                 # one row per run: Inspect's columns + model label, setting, simulator
    convs = conversations_frame("logs/")       # one row per sample and epoch: scores + the conversation's record
    convs.groupby(["model_label", "setting"])["user_turns"].mean()
    comparison_frame(compare_logs("logs/")[0])  # the report's table: P, A90, U, turns, cost, drops, flags

Needs pandas (the `report` extra).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import missing_dependency
from ..records import conversation_from_store
from .compare import Comparison
from .runs import load_runs

if TYPE_CHECKING:
    import pandas as pd

CONVERSATION_FIELDS = ("stop_reason", "end_reason", "user_turns", "assistant_turns", "simulator")


def _pandas() -> Any:
    try:
        import pandas
    except ImportError as ex:
        raise missing_dependency("pandas", "report", "The report's DataFrame API") from ex
    return pandas


def _path(log: str) -> str:
    return str(Path(str(log).removeprefix("file://")).resolve())


def runs_frame(log_dir: str | Path, scorer: str | None = None, score_key: str | None = None) -> pd.DataFrame:
    """One row per comparable run: `evals_df`'s columns plus `model_label`, `setting`, `simulator`, `base_task`
    (what the report groups by; logs the report skips are left out)."""
    from inspect_ai.analysis import evals_df

    pd = _pandas()
    runs, _ = load_runs(str(log_dir), scorer=scorer, score_key=score_key)
    ours = pd.DataFrame(
        [
            {
                "log_path": _path(r.log),
                "model_label": r.model,
                "setting": r.setting,
                "simulator": r.simulator_name,
                "base_task": r.base_task,
            }
            for r in runs
        ],
        columns=["log_path", "model_label", "setting", "simulator", "base_task"],
    )
    evals = evals_df(str(log_dir), quiet=True)
    evals["log_path"] = evals["log"].map(_path)
    return evals.merge(ours, on="log_path", how="inner")


def _fact(field: str) -> Callable[[Any], Any]:
    def read(sample: Any) -> Any:
        value = getattr(conversation_from_store(dict(sample.store or {})), field)
        return str(value) if field in ("stop_reason", "end_reason") and value is not None else value

    return read


def conversations_frame(log_dir: str | Path) -> pd.DataFrame:
    """One row per sample and epoch: `samples_df`'s summary columns (id, epoch, score_*, tokens, ...) plus the
    simulated conversation's record (`stop_reason`, `end_reason`, `user_turns`, `assistant_turns`, `simulator`,
    `rejected_drafts`, `guardrails_exhausted`) and the run's `model_label` and `setting`."""
    from inspect_ai.analysis import SampleColumn, SampleSummary, samples_df

    _pandas()
    columns = [*SampleSummary, *(SampleColumn(f, path=_fact(f), full=True) for f in CONVERSATION_FIELDS)]
    columns.append(
        SampleColumn("rejected_drafts", path=lambda s: sum(len(t.rejected) for t in _turns(s)), full=True)
    )
    columns.append(
        SampleColumn(
            "guardrails_exhausted", path=lambda s: sum(t.guardrails_exhausted for t in _turns(s)), full=True
        )
    )
    samples = samples_df(str(log_dir), columns=columns, quiet=True)
    runs = runs_frame(log_dir)[["eval_id", "model_label", "setting", "base_task"]]
    return samples.merge(runs, on="eval_id", how="left")


def _turns(sample: Any) -> list[Any]:
    return conversation_from_store(dict(sample.store or {})).turns


def comparison_frame(comparison: Comparison) -> pd.DataFrame:
    """The report's rows: eval, model, setting, simulator, N, P, A90, U, turns, costs, baseline, drops, and the
    flag kinds that concern each row."""
    pd = _pandas()
    records = []
    for row in comparison.rows:
        m = row.metrics
        records.append(
            {
                "eval": row.base_task,
                "model": row.model,
                "setting": row.setting,
                "simulator": row.simulator,
                "instructions": m.instructions,
                "epochs": row.epochs,
                "P": m.P,
                "A90": m.A90,
                "U": m.U,
                "turns": row.turns,
                "cost": row.cost,
                "user_cost": row.user_cost,
                "baseline": row.baseline,
                "delta_P": row.delta_P,
                "drop_P_pct": row.drop_P,
                "drop_A90_pct": row.drop_A90,
                "drop_U_pct": row.drop_U,
                "flags": [comparison.flags[i].kind for i in row.flags],
                "log": row.log,
            }
        )
    return pd.DataFrame.from_records(records)
