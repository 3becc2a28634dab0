"""Compare assistants across providers and settings from Inspect logs (`userlm-plugin compare LOG_DIR`).

`compare_logs(log_dir, out_dir)` reads every log (Inspect's log API), builds one row per eval, model and
setting with P, A90, U, turns and cost, the drop from `full` (or `single-turn`) to each simulated setting,
flags runs that must not be compared silently, and writes Markdown, HTML, JSON and a PNG chart (matplotlib).
`frames.py` gives the same data as pandas DataFrames on Inspect's `evals_df` / `samples_df`.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from .compare import Comparison, Flag, Row, build_comparison
from .metrics import Reliability, reliability
from .render import ReportFiles, write_report
from .runs import RunSummary, load_run, load_runs


def compare_logs(
    log_dir: str | Path,
    out_dir: str | Path | None = None,
    scorer: str | None = None,
    score_key: str | None = None,
) -> tuple[Comparison, ReportFiles]:
    """Read the logs under `log_dir`, build the comparison and write it to `out_dir` (default: log_dir/comparison)."""
    runs, skipped = load_runs(str(log_dir), scorer=scorer, score_key=score_key)
    if not runs:
        why = "; ".join(f"{log}: {reason}" for log, reason in skipped[:5]) or "no .eval/.json logs found"
        raise ConfigError(f"No comparable runs under {log_dir} ({why}).")
    comparison = build_comparison(runs, skipped)
    files = write_report(comparison, Path(out_dir) if out_dir else Path(log_dir) / "comparison")
    return comparison, files


__all__ = [
    "Comparison",
    "Flag",
    "Reliability",
    "ReportFiles",
    "Row",
    "RunSummary",
    "build_comparison",
    "compare_logs",
    "load_run",
    "load_runs",
    "reliability",
    "write_report",
]
