"""Which simulator is closest to the people? Human-fidelity runs side by side (`userlm-plugin compare LOG_DIR
--view fidelity`; docs/fidelity.md#comparing-simulators).

Reads every `human_fidelity` replay log under a folder, makes one row per simulator (its name, preset, settings
and user model: two user models of one preset are two rows), and puts the people's own values first, as the row
every simulator is measured against. Writes fidelity.md / .html / .json and a chart (fidelity.png: the length
distributions of the people and each simulator, and each simulator's discriminator AUROC with its interval).
Runs on different conversations are never put in one table: each data source gets its own, and runs of one
source that replayed different conversations are flagged.
"""

from __future__ import annotations

import html
import io
import json
import os
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, MissingDependencyError, missing_dependency
from ..evals.human_fidelity.dataset import TASK_NAME
from ..records import conversation_from_store
from .render import _write_whole
from .runs import MODEL_IDENTITY_ARGS, _canonical, model_label

HUMAN = "people (reference)"

COLUMNS: list[tuple[str, str, int]] = [
    ("words", "words", 1),
    ("len_jsd", "len JSD", 3),
    ("typo_pct", "typo %", 2),
    ("lower_pct", "lower %", 1),
    ("nopunct_pct", "no punct %", 1),
    ("question_pct", "question %", 1),
    ("polite_pct", "polite %", 1),
    ("me_pct", "I/me %", 1),
    ("leak_pct", "leak %", 1),
    ("lex_f1", "lex F1", 1),
    ("end_f1", "end F1", 1),
    ("auroc", "AUROC", 3),
    ("ppl", "PPL", 2),
    ("ppl_no_intent", "PPL no intent", 2),
]
"""(metric, header, digits): the table's metric columns, in order."""

HUMAN_METRICS = (
    "words",
    "typo_pct",
    "lower_pct",
    "nopunct_pct",
    "question_pct",
    "polite_pct",
    "me_pct",
    "leak_pct",
)
"""The metrics that have a people's value (`<name>_h` in the logs)."""

LEGEND = (
    "Each simulator rewrote every user turn of the same real conversations from the real prefix. The people's row "
    "holds their own values: the closer a simulator's, the more human it writes. len JSD = Jensen-Shannon "
    "divergence of the turn-length distributions (0 = same); lex F1 = unigram F1 with the person's turn at the same "
    "point; end F1 = ending where the person ended (100 = always); AUROC = a classifier trained on half of the "
    "conversations tells the simulator's turns from the people's on the other half (0.5 = indistinguishable, "
    "1 = always told apart; [low–high] = 95% bootstrap interval over conversations); PPL = the people's turns "
    "under the user model (userlm/ only; lower = closer). Definitions: docs/fidelity.md."
)


@dataclass
class FidelityRun:
    """One replay log, reduced to what the table needs: per conversation, its replayed positions."""

    log: str
    simulator: str
    preset: str | None
    user_model: str
    identity: str
    """What makes two runs different rows: simulator settings and the user model, as canonical JSON."""
    source: str
    created: str
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Sample id -> one entry per epoch: {"group", "positions", "perplexity"} from the scores' metadata."""
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def conversations(self) -> int:
        return len(self.samples)


@dataclass
class FidelityRow:
    label: str
    simulator: str
    user_model: str
    metrics: dict[str, float | None]
    conversations: int
    log: str | None = None
    human: bool = False


@dataclass
class FidelityTable:
    source: str
    rows: list[FidelityRow]
    lengths: dict[str, list[int]]
    """Row label -> the word counts of its turns (the chart's distributions)."""


@dataclass
class FidelityReport:
    tables: list[FidelityTable]
    flags: list[str]
    skipped: list[tuple[str, str]]
    runs: list[FidelityRun]

    def to_json(self) -> str:
        return json.dumps(
            {
                "tables": [{"source": t.source, "rows": [asdict(r) for r in t.rows]} for t in self.tables],
                "flags": self.flags,
                "skipped": self.skipped,
            },
            indent=2,
            default=str,
        )


def _user_model(header: Any, config: dict[str, Any]) -> tuple[str, Any]:
    """The user model's label and identity: the simulator's role's model and the args that make it another model,
    else the simulator's own default model; none for a simulator without a model (scripted)."""
    if "role" not in config:  # a simulator with no model (scripted, replay): a bound role is not its model
        return "—", None
    roles = header.eval.model_roles or {}
    role = roles.get(str(config["role"]))
    if role is not None:
        configs = role if isinstance(role, list) else [role]
        identity = [
            {
                "model": c.model,
                **{k: c.args[k] for k in MODEL_IDENTITY_ARGS if (c.args or {}).get(k) is not None},
            }
            for c in configs
        ]
        return ", ".join(model_label(i) for i in identity), identity
    if config.get("model"):
        return f"{config['model']} (preset default)", config["model"]
    return "—", None


def load_fidelity_run(path: str) -> FidelityRun:
    """Read one `human_fidelity` replay log (ValueError when it is not one, or did not finish)."""
    from inspect_ai.log import read_eval_log, read_eval_log_samples

    header = read_eval_log(path, header_only=True)
    if header.eval.task.split("/")[-1] != TASK_NAME:
        raise ValueError(f"not a {TASK_NAME} log (task {header.eval.task})")
    if (header.eval.metadata or {}).get("protocol", "replay") != "replay":
        raise ValueError("a correlation-protocol run (its metrics are correlations, not fidelity)")
    if header.status != "success" or header.results is None:
        raise ValueError(f"status '{header.status}' (only finished runs are compared)")
    samples: dict[str, list[dict[str, Any]]] = defaultdict(list)
    config: dict[str, Any] = {}
    simulator = ""
    for sample in read_eval_log_samples(path, all_samples_required=False):
        score = (sample.scores or {}).get(TASK_NAME)
        if sample.error is not None or score is None:
            continue
        conversation = conversation_from_store(dict(sample.store or {}))
        simulator = simulator or conversation.simulator
        config = config or _canonical(conversation.simulator_config)
        perplexity = (sample.scores or {}).get("human_ppl")
        samples[str(sample.id)].append(
            {
                "group": (score.metadata or {}).get("group") or f"conversation:{sample.id}",
                "positions": (score.metadata or {}).get("positions") or [],
                "perplexity": (perplexity.metadata or {}) if perplexity is not None else None,
            }
        )
    if not samples:
        raise ValueError("no scored samples")
    user, user_identity = _user_model(header, config)
    settings = {k: v for k, v in config.items() if k != "preset"}
    source = str((header.eval.metadata or {}).get("human_source") or header.eval.dataset.location or "")
    return FidelityRun(
        log=path,
        simulator=simulator or str((header.eval.metadata or {}).get("simulator") or "?"),
        preset=config.get("preset"),
        user_model=user,
        identity=json.dumps(_canonical({"settings": settings, "user": user_identity}), sort_keys=True),
        source=source,
        created=header.eval.created,
        samples=dict(samples),
        config=config,
    )


def run_metrics(run: FidelityRun, ids: set[str]) -> tuple[dict[str, float | None], list[int], list[int]]:
    """Every metric of `run` on the conversations `ids` (summary.py, the eval's own formulas), and the word counts
    of the people's and the simulator's turns there (for the chart)."""
    from ..evals.human_fidelity import summary
    from ..evals.user_perplexity.task import pooled_perplexity

    positions: list[summary.Position] = []
    perplexity: dict[str, list[dict[str, Any]]] = {"intent": [], "no_intent": []}
    for sample_id in sorted(ids):
        for entry in run.samples.get(sample_id, []):
            positions += summary.positions((entry["group"], row) for row in entry["positions"])
            for condition in perplexity:
                perplexity[condition].append((entry["perplexity"] or {}).get(condition) or {})
    metrics = summary.fidelity_summary(positions)
    metrics["ppl"] = pooled_perplexity(perplexity["intent"], end=True)
    metrics["ppl_no_intent"] = pooled_perplexity(perplexity["no_intent"], end=True)
    human = [p.human_features.words for p in positions if p.human_features is not None]
    simulated = [
        p.simulated_features.words
        for p in positions
        if p.simulated_features is not None and p.human is not None
    ]
    return metrics, human, simulated


def load_fidelity_runs(log_dir: str | Path) -> tuple[list[FidelityRun], list[tuple[str, str]]]:
    from inspect_ai.log import list_eval_logs

    if not Path(log_dir).is_dir():
        raise ConfigError(f"LOG_DIR {log_dir} does not exist (or is not a folder).")
    runs: list[FidelityRun] = []
    skipped: list[tuple[str, str]] = []
    for info in list_eval_logs(str(log_dir), recursive=True, descending=False):
        path = info.name.removeprefix("file://")
        try:
            runs.append(load_fidelity_run(path))
        except ValueError as error:
            skipped.append((path, str(error)))
    return runs, skipped


def _label(run: FidelityRun) -> str:
    preset = run.preset if run.preset and run.preset != run.simulator else None
    return f"{run.simulator}{f' ({preset})' if preset else ''} · {run.user_model}"


def build_fidelity_report(
    runs: list[FidelityRun], skipped: list[tuple[str, str]] | None = None
) -> FidelityReport:
    """One table per data source: the people's row, then one row per simulator identity (its newest run), every
    row computed on the conversations that all of them replayed."""
    flags: list[str] = []
    tables: list[FidelityTable] = []
    by_source: dict[str, list[FidelityRun]] = defaultdict(list)
    for run in runs:
        by_source[run.source].append(run)
    used: list[FidelityRun] = []
    for source in sorted(by_source):
        latest: dict[str, FidelityRun] = {}
        for run in sorted(by_source[source], key=lambda r: r.created):
            if run.identity in latest:
                flags.append(f"{source}: {_label(run)} was run more than once; the newest run is used")
            latest[run.identity] = run
        chosen = sorted(latest.values(), key=lambda r: (r.simulator, r.user_model, r.created))
        used += chosen
        common = set.intersection(*(set(r.samples) for r in chosen))
        if any(len(r.samples) != len(common) for r in chosen):
            sizes = ", ".join(f"{_label(r)}: {r.conversations}" for r in chosen)
            flags.append(
                f"{source}: the runs replayed different conversations ({sizes}); every row is computed on the "
                f"{len(common)} conversation(s) all of them replayed"
            )
        if not common:
            continue
        rows: list[FidelityRow] = []
        lengths: dict[str, list[int]] = {}
        labels: dict[str, int] = defaultdict(int)
        for run in chosen:
            metrics, human_words, simulated_words = run_metrics(run, common)
            if not rows:  # the people's row: the same turns in every run
                rows.append(
                    FidelityRow(
                        label=HUMAN,
                        simulator="—",
                        user_model="—",
                        metrics={name: metrics.get(f"{name}_h") for name in HUMAN_METRICS},
                        conversations=len(common),
                        human=True,
                    )
                )
                lengths[HUMAN] = human_words
            label = _label(run)
            labels[label] += 1
            if labels[label] > 1:
                label = f"{label} #{labels[label]}"
                flags.append(
                    f"{source}: two rows share the label {_label(run)}; they differ in simulator settings"
                )
            rows.append(
                FidelityRow(
                    label=label,
                    simulator=run.simulator,
                    user_model=run.user_model,
                    metrics=metrics,
                    conversations=len(common),
                    log=run.log,
                )
            )
            lengths[label] = simulated_words
        tables.append(FidelityTable(source=source, rows=rows, lengths=lengths))
    return FidelityReport(tables=tables, flags=flags, skipped=list(skipped or []), runs=used)


# ------------------------------------------------------------------------------------------ rendering


def _num(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def row_cells(row: FidelityRow) -> list[str]:
    """The cells of one row (shared by Markdown and HTML): label, N, then `COLUMNS`."""
    cells = [row.label, str(row.conversations)]
    for name, _, digits in COLUMNS:
        cell = _num(row.metrics.get(name), digits)
        if name == "auroc" and row.metrics.get("auroc_lo") is not None:
            cell += f" [{row.metrics['auroc_lo']:.2f}–{row.metrics['auroc_hi']:.2f}]"
        cells.append(cell)
    return cells


def headers() -> list[str]:
    return ["simulator · user model", "N", *(h for _, h, _ in COLUMNS)]


def to_markdown(report: FidelityReport) -> str:
    out = ["# Human fidelity: simulators against the people", "", LEGEND, ""]
    for table in report.tables:
        out += [f"## {table.source}", "", "| " + " | ".join(headers()) + " |", "|" + "---|" * len(headers())]
        for row in table.rows:
            cells = [c.replace("|", "\\|") for c in row_cells(row)]
            if row.human:
                cells[0] = f"**{cells[0]}**"
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    if report.flags:
        out += ["## Flags", ""] + [f"{i + 1}. {flag}" for i, flag in enumerate(report.flags)] + [""]
    out += ["## Runs", ""] + [f"- {_label(r)}: {Path(r.log).name}" for r in report.runs]
    if report.skipped:
        out += ["", "## Skipped logs", ""] + [f"- {Path(log).name}: {why}" for log, why in report.skipped]
    return "\n".join(out) + "\n"


def to_html(report: FidelityReport, out_dir: Path | None = None, chart: bool = True) -> str:
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>userlm-plugin fidelity</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}"
        "td,th{border:1px solid #bbb;padding:4px 8px;text-align:right}td:first-child,th:first-child"
        "{text-align:left}tr.human{background:#eef6ee;font-weight:bold}</style></head><body>",
        "<h1>Human fidelity: simulators against the people</h1>",
        f"<p>{esc(LEGEND)}</p>",
    ]
    if chart:
        parts.append("<img src='fidelity.png' alt='length distributions and AUROC' style='max-width:100%'>")
    for table in report.tables:
        parts.append(f"<h2>{esc(table.source)}</h2><table><tr>")
        parts += [f"<th>{esc(h)}</th>" for h in headers()]
        parts.append("</tr>")
        for row in table.rows:
            parts.append("<tr class='human'>" if row.human else "<tr>")
            parts += [f"<td>{esc(c)}</td>" for c in row_cells(row)]
            parts.append("</tr>")
        parts.append("</table>")
    if report.flags:
        parts.append("<h2>Flags</h2><ol>" + "".join(f"<li>{esc(f)}</li>" for f in report.flags) + "</ol>")
    parts.append("<h2>Runs</h2><ul>")
    for run in report.runs:
        link = os.path.relpath(Path(run.log).resolve(), out_dir.resolve()) if out_dir else run.log
        parts.append(f"<li>{esc(_label(run))}: <a href='{esc(link)}'>{esc(Path(run.log).name)}</a></li>")
    parts.append("</ul></body></html>")
    return "".join(parts)


def to_png(report: FidelityReport) -> bytes:
    """Per data source: the length distributions (share of turns per word-count bin; the people in black) and
    each simulator's AUROC with its interval (0.5 = indistinguishable)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise missing_dependency("matplotlib", "report", "The fidelity chart") from error
    from ..evals.human_fidelity.features import LENGTH_BINS, length_histogram

    bin_labels = [
        f"{lo}" if hi - lo == 1 else f"{lo}–{hi - 1}"
        for lo, hi in zip(LENGTH_BINS, [*LENGTH_BINS[1:], 0], strict=True)
    ]
    bin_labels[-1] = f"{LENGTH_BINS[-1]}+"
    fig, axes = plt.subplots(len(report.tables), 2, figsize=(13, 4.2 * len(report.tables)), squeeze=False)
    for (length_ax, auroc_ax), table in zip(axes, report.tables, strict=True):
        for label, lengths in table.lengths.items():
            if not lengths:
                continue
            human = label == HUMAN
            length_ax.plot(
                range(len(LENGTH_BINS)),
                length_histogram(lengths),
                marker="o",
                linewidth=2.5 if human else 1.5,
                linestyle="--" if human else "-",
                color="black" if human else None,
                zorder=10 if human else 2,  # on top: a simulator that matches the people must not hide them
                label=f"{label} (n={len(lengths)})",
            )
        length_ax.set_xticks(range(len(LENGTH_BINS)))
        length_ax.set_xticklabels(bin_labels, rotation=45, fontsize=7)
        length_ax.set_xlabel("words per turn")
        length_ax.set_ylabel("share of turns")
        length_ax.set_title(f"{Path(table.source).name}: turn lengths", fontsize=10)
        length_ax.legend(fontsize=7)
        sims = [r for r in table.rows if not r.human and r.metrics.get("auroc") is not None]
        values = [float(r.metrics["auroc"]) for r in sims]  # type: ignore[arg-type]
        lows = [
            v - (r.metrics.get("auroc_lo") if r.metrics.get("auroc_lo") is not None else v)
            for v, r in zip(values, sims, strict=True)
        ]
        highs = [
            (r.metrics.get("auroc_hi") if r.metrics.get("auroc_hi") is not None else v) - v
            for v, r in zip(values, sims, strict=True)
        ]
        auroc_ax.barh(range(len(sims)), values, xerr=[lows, highs], capsize=3, color="tab:blue")
        auroc_ax.axvline(0.5, color="black", linestyle="--", linewidth=1)
        auroc_ax.set_yticks(range(len(sims)))
        auroc_ax.set_yticklabels([r.label for r in sims], fontsize=7)
        auroc_ax.set_xlim(0, 1)
        auroc_ax.set_xlabel("discriminator AUROC (0.5 = indistinguishable from the people)")
        auroc_ax.set_title("how easily told apart", fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


@dataclass
class FidelityFiles:
    markdown: Path
    html: Path
    json: Path
    png: Path | None
    png_skipped: str | None = None


def write_fidelity_report(report: FidelityReport, out_dir: str | Path, png: bool = True) -> FidelityFiles:
    """Write fidelity.md, .html, .json and (with matplotlib) .png, each file whole."""
    out = Path(out_dir)
    chart: bytes | None = None
    skipped: str | None = None
    if png and report.tables:
        try:
            chart = to_png(report)
        except MissingDependencyError as error:
            skipped = str(error)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "fidelity.md": to_markdown(report).encode("utf-8"),
        "fidelity.html": to_html(report, out, chart=chart is not None).encode("utf-8"),
        "fidelity.json": report.to_json().encode("utf-8"),
    }
    if chart is not None:
        files["fidelity.png"] = chart
    for name, data in files.items():
        _write_whole(out / name, data)
    if chart is None and (out / "fidelity.png").exists():
        (out / "fidelity.png").unlink()
    return FidelityFiles(
        out / "fidelity.md",
        out / "fidelity.html",
        out / "fidelity.json",
        out / "fidelity.png" if chart is not None else None,
        skipped,
    )


def compare_fidelity(
    log_dir: str | Path, out_dir: str | Path | None = None
) -> tuple[FidelityReport, FidelityFiles]:
    """Read the human-fidelity logs under `log_dir` and write the report to `out_dir` (default LOG_DIR/fidelity)."""
    runs, skipped = load_fidelity_runs(log_dir)
    if not runs:
        why = "; ".join(f"{Path(log).name}: {reason}" for log, reason in skipped[:5]) or "no logs found"
        raise ConfigError(f"No human_fidelity replay runs under {log_dir} ({why}).")
    report = build_fidelity_report(runs, skipped)
    return report, write_fidelity_report(report, Path(out_dir) if out_dir else Path(log_dir) / "fidelity")
