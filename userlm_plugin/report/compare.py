"""Turn run summaries into a comparison: one row per (eval, model, setting, simulator) with P, A90, U, turns,
cost, the drop from the baseline setting, and flags for runs that must not be silently compared.

A model is its name plus what makes it another model (weights folder, server, served model); a setting's default
label is the simulator's name. Baseline: the setting `full` when a model has it (the sharded evals' FULL,
docs/lic.md), else `single-turn` (an unwrapped run of a task that `simulate` wrapped: the same fully specified
instruction, sent in one turn). Every other setting of that model is compared against it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .metrics import Reliability, relative_drop, reliability
from .runs import SINGLE_TURN, RunSummary

BASELINE_SETTINGS = ("full", SINGLE_TURN)
SETTING_ORDER = ("full", SINGLE_TURN, "concat")


@dataclass
class Flag:
    """Something a reader must know before trusting a comparison."""

    kind: str
    """simulator_mismatch | dataset_mismatch | eval_args_mismatch | sample_mismatch | epochs_mismatch |
    duplicate_runs | run_note"""
    base_task: str
    message: str
    setting: str | None = None
    logs: list[str] = field(default_factory=list)


@dataclass
class Row:
    base_task: str
    model: str
    setting: str
    log: str
    simulator: str
    """The simulator's name ("" for single-turn runs): two rows of one model and setting differ here."""
    metrics: Reliability
    epochs: int
    turns: float
    """Mean simulated user turns per conversation (1 for single-turn)."""
    cost: float | None
    user_cost: float | None
    baseline: str | None = None
    drop_P: float | None = None
    """Relative change of P vs the baseline setting, in % (negative = worse)."""
    drop_A90: float | None = None
    drop_U: float | None = None
    """Relative change of U vs baseline in % (positive = less reliable)."""
    delta_P: float | None = None
    """Absolute change of P vs baseline, in points."""
    flags: list[int] = field(default_factory=list)
    """Indexes into Comparison.flags that concern this row."""


@dataclass
class Comparison:
    rows: list[Row]
    flags: list[Flag]
    skipped: list[tuple[str, str]]
    runs: list[RunSummary]

    def to_json(self) -> str:
        return json.dumps(
            {
                "rows": [asdict(r) for r in self.rows],
                "flags": [asdict(f) for f in self.flags],
                "skipped": self.skipped,
            },
            indent=2,
            default=str,
        )


def setting_sort_key(setting: str) -> tuple[int, str]:
    return (SETTING_ORDER.index(setting) if setting in SETTING_ORDER else len(SETTING_ORDER), setting)


def _fmt(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _distinct(runs: list[RunSummary], attr: str) -> dict[str, list[RunSummary]]:
    groups: dict[str, list[RunSummary]] = defaultdict(list)
    for run in runs:
        groups[_fmt(getattr(run, attr))].append(run)
    return groups


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        return _flatten(value[0], prefix)
    return {prefix or "value": value}


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe_groups(groups: dict[str, list[RunSummary]], limit: int = 4) -> str:
    """Only what differs, e.g. `simulator = ["userlm"] in m1 [sim], m2 [sim] | ["scripted"] in m3 [sim]`.

    When the simulator's name differs, that alone is shown (its settings differ as a consequence)."""
    flats = {value: _flatten(json.loads(value)) for value in groups}
    keys = sorted({k for flat in flats.values() for k in flat})
    differing = [k for k in keys if len({_fmt(flat.get(k)) for flat in flats.values()}) > 1]
    if "simulator" in differing:
        differing = ["simulator"]
    parts = []
    for key in differing[:limit]:
        sides = []
        for value, runs in groups.items():
            who = ", ".join(sorted({f"{r.model} [{r.setting}]" for r in runs}))
            sides.append(f"{_short(flats[value].get(key, '(unset)'))} in {who}")
        parts.append(f"{key} = " + " | ".join(sides))
    if len(differing) > limit:
        parts.append(f"and {len(differing) - limit} more setting(s): {', '.join(differing[limit:])}")
    return "; ".join(parts)


def _check(base: str, runs: list[RunSummary], flags: list[Flag]) -> None:
    """Add flags for runs of one eval that differ where they must agree."""

    def flag(kind: str, message: str, group: list[RunSummary], setting: str | None = None) -> None:
        flags.append(Flag(kind, base, message, setting, sorted(r.log for r in group)))

    for attr, kind, what in (
        ("dataset", "dataset_mismatch", "dataset (name, location, task version or revision)"),
        ("eval_args", "eval_args_mismatch", "task arguments"),
        ("epochs", "epochs_mismatch", "epochs (runs per instruction, which A90 and U depend on)"),
    ):
        groups = _distinct(runs, attr)
        if len(groups) > 1:
            flag(kind, f"Runs differ in {what}: {_describe_groups(groups)}", runs)
    id_groups: dict[str, list[RunSummary]] = defaultdict(list)
    for r in runs:
        id_groups[_fmt(sorted(r.sample_ids))].append(r)
    if len(id_groups) > 1:
        sizes = ", ".join(
            f"{len(json.loads(k))} samples ({', '.join(sorted({f'{r.model} [{r.setting}]' for r in v}))})"
            for k, v in id_groups.items()
        )
        flag("sample_mismatch", f"Runs were scored on different samples: {sizes}", runs)
    by_setting: dict[str, list[RunSummary]] = defaultdict(list)
    for run in runs:
        if run.simulated:
            by_setting[run.setting].append(run)
    for setting, group in by_setting.items():
        sims = _distinct(group, "simulator")
        if len(sims) > 1:
            same_eval = all(len(_distinct(group, attr)) == 1 for attr in ("dataset", "eval_args", "epochs"))
            only = " (the runs differ only in the simulator)" if same_eval else ""
            flag(
                "simulator_mismatch",
                f"Setting '{setting}' mixes simulators or simulator settings{only}, so its rows measure the "
                f"simulator as much as the model: {_describe_groups(sims)}. Give each simulator its own setting "
                "label (-T setting=..., or leave it unset: the default label is the simulator's name).",
                group,
                setting,
            )
    for run in runs:
        for note in run.notes:
            flag("run_note", note, [run], run.setting)
        if run.errors:
            flag(
                "run_note",
                f"{run.errors} sample(s) errored or had no score and were left out",
                [run],
                run.setting,
            )


def build_comparison(runs: list[RunSummary], skipped: list[tuple[str, str]] | None = None) -> Comparison:
    """Group runs by eval, model and setting; compute metrics, drops vs baseline, and flags."""
    flags: list[Flag] = []
    by_base: dict[str, list[RunSummary]] = defaultdict(list)
    for run in runs:
        by_base[run.base_task].append(run)
    rows: list[Row] = []
    used: list[RunSummary] = []
    for base in sorted(by_base):
        first_flag = len(flags)
        # a row is one model, setting and simulator: runs equal in all three are duplicates (the newest counts)
        latest: dict[tuple[str, str, str], RunSummary] = {}
        dupes: dict[tuple[str, str, str], list[RunSummary]] = defaultdict(list)
        for run in sorted(by_base[base], key=lambda r: r.created):
            key = (run.model, run.setting, _fmt(run.simulator))
            dupes[key].append(run)
            latest[key] = run
        for (model, setting, _), group in dupes.items():
            if len(group) > 1:
                flags.append(
                    Flag(
                        "duplicate_runs",
                        base,
                        f"{len(group)} runs of {model} [{setting}] with the same simulator; the newest is used",
                        setting,
                        [r.log for r in group],
                    )
                )
        chosen = list(latest.values())
        used.extend(chosen)
        _check(base, chosen, flags)
        base_rows = [
            Row(
                base_task=base,
                model=run.model,
                setting=run.setting,
                log=run.log,
                simulator=run.simulator_name,
                metrics=reliability(run.scores),
                epochs=run.epochs,
                turns=float(np.mean(run.user_turns)) if run.user_turns else 0.0,
                cost=run.cost,
                user_cost=run.user_cost,
            )
            for run in chosen
        ]
        for row in base_rows:
            ref_row = next(
                (r for b in BASELINE_SETTINGS for r in base_rows if r.model == row.model and r.setting == b),
                None,
            )
            if ref_row is None or ref_row.setting == row.setting:
                continue
            ref = ref_row.metrics
            row.baseline = ref_row.setting
            row.delta_P = row.metrics.P - ref.P
            row.drop_P = relative_drop(ref.P, row.metrics.P)
            row.drop_A90 = relative_drop(ref.A90, row.metrics.A90)
            row.drop_U = relative_drop(ref.U, row.metrics.U)
        for index in range(first_flag, len(flags)):
            concerned = set(flags[index].logs)
            for row in base_rows:
                if row.log in concerned and (flags[index].setting in (None, row.setting)):
                    row.flags.append(index)
        rows.extend(sorted(base_rows, key=lambda r: (r.model, setting_sort_key(r.setting), r.simulator)))
    return Comparison(rows=rows, flags=flags, skipped=list(skipped or []), runs=used)
