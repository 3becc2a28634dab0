"""Write a `Comparison` as Markdown, an HTML table, JSON and a PNG chart.

The chart is the paper's headline as a picture (Lost in Conversation Fig. 1 idea): per model, one bar per
setting at P, with a line from the mean p10 to A90 (the spread whose width is U), so "the simulated
setting is lower and wider" is visible at a glance.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

from .compare import Comparison, Row, setting_sort_key

COLUMNS = [
    "model",
    "setting",
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
        sim = ", ".join(run.simulator.get("simulator", [])) or "—"
        out.append(
            f"| {run.base_task} | {run.model} | {run.setting} | {run.scorer} | {sim} | {Path(run.log).name} |"
        )
    if comparison.skipped:
        out += ["", "## Skipped logs", ""]
        out += [f"- {log}: {why}" for log, why in comparison.skipped]
    return "\n".join(out) + "\n"


def to_html(comparison: Comparison) -> str:
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>userlm-plugin comparison</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}"
        "td,th{border:1px solid #bbb;padding:4px 8px;text-align:right}td:nth-child(-n+2),th{text-align:left}"
        "tr.flagged{background:#fff4e0}</style></head><body>",
        "<h1>Assistant comparison: single-turn vs. simulated users</h1>",
        f"<p>{esc(LEGEND)}</p>",
        "<img src='comparison.png' alt='P with p10–A90 range per model and setting' style='max-width:100%'>",
    ]
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
            parts.append(f"<li><b>{esc(flag.kind)}</b> ({where}): {esc(flag.message)}</li>")
        parts.append("</ol>")
    parts.append("</body></html>")
    return "\n".join(parts)


def to_png(comparison: Comparison, path: Path) -> Path:
    """Grouped bars of P per model and setting, with a p10–A90 range line on each bar."""
    import matplotlib

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
        ax.set_ylabel("score (0–100)")
        hatched = any(r.flags for r in rows)
        note = "; hatched = flagged, see report" if hatched else ""
        ax.set_title(f"{base}: P (bar), p10–A90 range (line){note}", fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _max_models(comparison: Comparison) -> int:
    counts: dict[str, set[str]] = {}
    for r in comparison.rows:
        counts.setdefault(r.base_task, set()).add(r.model)
    return max((len(v) for v in counts.values()), default=1)


def write_report(comparison: Comparison, out_dir: str | Path, png: bool = True) -> ReportFiles:
    """Write comparison.md, comparison.html, comparison.json and (unless png=False) comparison.png."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = out / "comparison.md"
    md.write_text(to_markdown(comparison), encoding="utf-8")
    page = out / "comparison.html"
    page.write_text(to_html(comparison), encoding="utf-8")
    data = out / "comparison.json"
    data.write_text(comparison.to_json(), encoding="utf-8")
    chart = to_png(comparison, out / "comparison.png") if png and comparison.rows else None
    return ReportFiles(markdown=md, html=page, json=data, png=chart)
