"""Write a `Comparison` as Markdown, an HTML table, JSON and a PNG chart.

The chart is the paper's headline as a picture (Lost in Conversation Fig. 1 idea): per model, one bar per
setting at P, with a line from the mean p10 to A90 (the spread whose width is U), so "the simulated
setting is lower and wider" is visible at a glance. It needs matplotlib (the `report` extra); without it the
other files are still written and the page says nothing about a chart.
"""

from __future__ import annotations

import html
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import MissingDependencyError, missing_dependency
from .compare import Comparison, Row, setting_sort_key

COLUMNS = [
    "model",
    "setting",
    "simulator",
    "N",
    "P",
    "A90",
    "U",
    "turns",
    "cost $",
    "user cost $",
    "ΔP pts",
    "ΔP %",
    "ΔA90 %",
    "ΔU %",
    "flags",
]


@dataclass
class ReportFiles:
    markdown: Path
    html: Path
    json: Path
    png: Path | None
    png_skipped: str | None = None
    """Why no chart was drawn (e.g. matplotlib is not installed), else None."""


def _num(value: float | None, digits: int = 1, signed: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _cost(value: float | None) -> str:
    if value is None:
        return "—"
    if value == 0:
        return "0"
    return f"{value:.6f}".rstrip("0").rstrip(".") if value < 1 else f"{value:.2f}"


def row_cells(row: Row) -> list[str]:
    """The table cells of one row, in COLUMNS order (shared by Markdown and HTML, and by the tests)."""
    m = row.metrics
    return [
        row.model,
        row.setting,
        row.simulator or "—",
        f"{m.instructions}×{row.epochs}",
        _num(m.P),
        _num(m.A90),
        _num(m.U),
        _num(row.turns, 2),
        _cost(row.cost),
        _cost(row.user_cost),
        _num(row.delta_P, signed=True),
        _num(row.drop_P, signed=True),
        _num(row.drop_A90, signed=True),
        _num(row.drop_U, signed=True),
        " ".join(f"⚠{i + 1}" for i in row.flags),
    ]


def _tasks(comparison: Comparison) -> list[str]:
    return sorted({r.base_task for r in comparison.rows})


LEGEND = (
    "P = mean score, A90 = 90th percentile (aptitude), U = p90 − p10 (unreliability), each over an "
    "instruction's runs (epochs), then averaged over instructions; scores 0–100. N = instructions × runs. "
    "With one run per instruction A90 = P and U = 0. turns = simulated user turns per conversation."
    " Δ = change from the model's baseline setting (`full`, else `single-turn`): ΔP % = −39 means P fell 39% "
    "(the paper's FULL→SHARDED figure); ΔU % > 0 means less reliable. ⚠n = see flag n below."
)


def to_markdown(comparison: Comparison) -> str:
    out = ["# Assistant comparison: single-turn vs. simulated users", "", LEGEND, ""]
    for base in _tasks(comparison):
        out += [f"## {base}", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        for row in (r for r in comparison.rows if r.base_task == base):
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in row_cells(row)) + " |")
        out.append("")
    if comparison.flags:
        out += ["## Flags: do not compare these silently", ""]
        for i, flag in enumerate(comparison.flags):
            where = f"{flag.base_task}" + (f" [{flag.setting}]" if flag.setting else "")
            out.append(f"{i + 1}. **{flag.kind}** ({where}): {flag.message}")
        out.append("")
    out += [
        "## Runs",
        "",
        "| eval | model | setting | scorer | simulator | log |",
        "|---|---|---|---|---|---|",
    ]
    for run in sorted(comparison.runs, key=lambda r: (r.base_task, r.model, setting_sort_key(r.setting))):
        sim = run.simulator_name or "—"
        out.append(
            f"| {run.base_task} | {run.model} | {run.setting} | {run.scorer} | {sim} | {Path(run.log).name} |"
        )
    if comparison.skipped:
        out += ["", "## Skipped logs", ""]
        out += [f"- {log}: {why}" for log, why in comparison.skipped]
    return "\n".join(out) + "\n"


def _inline(text: str) -> str:
    """Escaped HTML with `code` spans rendered as <code> (never as literal backticks)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def to_html(comparison: Comparison, out_dir: Path | None = None, chart: bool = True) -> str:
    """The report page: the legend, the chart (when drawn), a table per eval, the flags, and every run with a
    link to its log (relative to `out_dir`, where the page is written)."""
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>userlm-plugin comparison</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}"
        "td,th{border:1px solid #bbb;padding:4px 8px;text-align:right}td:nth-child(-n+3),th{text-align:left}"
        "tr.flagged{background:#fff4e0}code{background:#f3f3f3;padding:0 3px}table.runs td{text-align:left}"
        "</style></head><body>",
        "<h1>Assistant comparison: single-turn vs. simulated users</h1>",
        f"<p>{_inline(LEGEND)}</p>",
    ]
    if chart:
        parts.append(
            "<img src='comparison.png' alt='P with p10–A90 range per model and setting' style='max-width:100%'>"
        )
    for base in _tasks(comparison):
        parts.append(f"<h2>{esc(base)}</h2><table><thead><tr>")
        parts += [f"<th>{esc(c)}</th>" for c in COLUMNS]
        parts.append("</tr></thead><tbody>")
        for row in (r for r in comparison.rows if r.base_task == base):
            cls = " class='flagged'" if row.flags else ""
            parts.append(f"<tr{cls}>" + "".join(f"<td>{esc(c)}</td>" for c in row_cells(row)) + "</tr>")
        parts.append("</tbody></table>")
    if comparison.flags:
        parts.append("<h2>Flags: do not compare these silently</h2><ol>")
        for flag in comparison.flags:
            where = esc(flag.base_task + (f" [{flag.setting}]" if flag.setting else ""))
            parts.append(f"<li><b>{esc(flag.kind)}</b> ({where}): {_inline(flag.message)}</li>")
        parts.append("</ol>")
    parts.append("<h2>Runs</h2><table class='runs'><thead><tr>")
    parts += [f"<th>{c}</th>" for c in ("eval", "model", "setting", "simulator", "scorer", "log")]
    parts.append("</tr></thead><tbody>")
    for run in sorted(comparison.runs, key=lambda r: (r.base_task, r.model, setting_sort_key(r.setting))):
        href = os.path.relpath(run.log, out_dir) if out_dir is not None else run.log
        cells = [esc(run.base_task), esc(run.model), esc(run.setting), esc(run.simulator_name or "—")]
        cells += [esc(run.scorer), f"<a href='{esc(href)}'>{esc(Path(run.log).name)}</a>"]
        parts.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    parts.append("</tbody></table>")
    parts.append(
        f"<p>Open a run's transcripts with <code>inspect view --log-dir {esc(_log_dir(comparison))}</code>.</p>"
    )
    if comparison.skipped:
        parts.append("<h2>Skipped logs</h2><ul>")
        parts += [f"<li>{esc(log)}: {esc(why)}</li>" for log, why in comparison.skipped]
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _log_dir(comparison: Comparison) -> str:
    logs = [r.log for r in comparison.runs]
    return os.path.commonpath([str(Path(log).parent) for log in logs]) if logs else "."


def to_png(comparison: Comparison) -> bytes:
    """Grouped bars of P per model and setting, with a p10–A90 range line on each bar (PNG bytes).

    Raises MissingDependencyError when matplotlib (the `report` extra) is not installed."""
    try:
        import matplotlib
    except ImportError as ex:
        raise missing_dependency("matplotlib", "report", "The comparison chart (comparison.png)") from ex

    matplotlib.use("Agg")  # no display on CI or servers
    import matplotlib.pyplot as plt

    tasks = _tasks(comparison)
    fig, axes = plt.subplots(
        len(tasks), 1, figsize=(max(6.0, 1.8 * _max_models(comparison) + 3), 3.6 * len(tasks)), squeeze=False
    )
    for ax, base in zip(axes[:, 0], tasks, strict=True):
        rows = [r for r in comparison.rows if r.base_task == base]
        models = sorted({r.model for r in rows})
        settings = sorted({r.setting for r in rows}, key=setting_sort_key)
        width = 0.8 / max(1, len(settings))
        for j, setting in enumerate(settings):
            xs, ps, lows, highs, flags = [], [], [], [], []
            for i, model in enumerate(models):
                row = next((r for r in rows if r.model == model and r.setting == setting), None)
                if row is None:
                    continue
                xs.append(i + (j - (len(settings) - 1) / 2) * width)
                ps.append(row.metrics.P)
                # p10 can exceed the mean for skewed scores: clamp so the line still spans p10..A90
                lows.append(max(0.0, row.metrics.P - row.metrics.p10))
                highs.append(max(0.0, row.metrics.A90 - row.metrics.P))
                flags.append(bool(row.flags))
            bars = ax.bar(xs, ps, width * 0.95, label=setting, yerr=[lows, highs], capsize=3)
            for bar, flagged in zip(bars, flags, strict=True):
                if flagged:
                    bar.set_hatch("//")
            ax.bar_label(bars, labels=[f"{p:.0f}" for p in ps], fontsize=7, padding=2)
        ax.set_xticks(range(len(models)))
        ax.set_xticklabels(models, rotation=15, ha="right", fontsize=8)
        ax.set_ylim(0, 105)
        ax.set_xlabel("model (assistant under test)")
        ax.set_ylabel("P, score 0–100")
        hatched = any(r.flags for r in rows)
        note = "; hatched = flagged, see report" if hatched else ""
        ax.set_title(f"{base}: P (bar), p10–A90 range (line){note}", fontsize=10)
        ax.legend(fontsize=8, title="setting", title_fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    return buffer.getvalue()


def _max_models(comparison: Comparison) -> int:
    counts: dict[str, set[str]] = {}
    for r in comparison.rows:
        counts.setdefault(r.base_task, set()).add(r.model)
    return max((len(v) for v in counts.values()), default=1)


def write_report(comparison: Comparison, out_dir: str | Path, png: bool = True) -> ReportFiles:
    """Write comparison.md, comparison.html, comparison.json and (unless png=False) comparison.png.

    Everything is rendered in memory first and each file is written whole (temp file + rename), so a failure
    leaves no half-written report. Without matplotlib the chart is skipped and `png_skipped` says why."""
    out = Path(out_dir)
    chart: bytes | None = None
    skipped: str | None = None
    if png and comparison.rows:
        try:
            chart = to_png(comparison)
        except MissingDependencyError as ex:
            skipped = str(ex)
    out.mkdir(parents=True, exist_ok=True)
    texts = {
        "comparison.md": to_markdown(comparison),
        "comparison.html": to_html(comparison, out, chart=chart is not None),
        "comparison.json": comparison.to_json(),
    }
    rendered: dict[str, bytes] = {name: text.encode("utf-8") for name, text in texts.items()}
    if chart is not None:
        rendered["comparison.png"] = chart
    for name, data in rendered.items():
        _write_whole(out / name, data)
    stale_chart = out / "comparison.png"
    if chart is None and stale_chart.exists():
        stale_chart.unlink()  # an old chart would not match the new tables
    return ReportFiles(
        markdown=out / "comparison.md",
        html=out / "comparison.html",
        json=out / "comparison.json",
        png=out / "comparison.png" if chart is not None else None,
        png_skipped=skipped,
    )


def _write_whole(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
