"""`userlm-plugin` console script: subcommands, each in its own small function pair.

Kept import-light (argparse only at import): a subcommand imports what it needs when it runs, so
`userlm-plugin --help` is instant. To add a subcommand (e.g. `serve`), write `_add_<name>(subparsers)`
that registers its parser with `set_defaults(run=<function>)`, and append it to SUBCOMMANDS.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .serve.cli import add_serve_parser
from .train.cli import add_train_parser


def _add_compare(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="compare models and settings from Inspect logs (P, A90, U, turns, cost, drop vs full), or "
        "simulators against people (--view fidelity)",
        description="Read every Inspect log under LOG_DIR and write comparison.md/.html/.json/.png.",
    )
    parser.add_argument("log_dir", metavar="LOG_DIR", help="directory of Inspect logs (searched recursively)")
    parser.add_argument(
        "--out", metavar="DIR", default=None, help="output directory (default: LOG_DIR/comparison)"
    )
    parser.add_argument(
        "--scorer", default=None, help="scorer to compare on (default: each log's first scorer)"
    )
    parser.add_argument(
        "--score-key",
        default=None,
        help="for dict-valued scores, the key to compare on (default: 'correct', else the only numeric key)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 2 when the report flags incomparable runs"
    )
    parser.add_argument(
        "--view",
        choices=("reliability", "fidelity"),
        default="reliability",
        help="reliability (default): assistants' P/A90/U across settings; fidelity: simulators against the "
        "people of evals/human_fidelity.py runs, written as fidelity.md/.html/.json/.png",
    )
    parser.set_defaults(run=_run_compare)


def _run_fidelity(args: argparse.Namespace) -> int:
    from .errors import ConfigError
    from .report.fidelity import compare_fidelity

    try:
        report, files = compare_fidelity(args.log_dir, args.out)
    except ConfigError as ex:
        print(f"userlm-plugin compare --view fidelity: {ex}", file=sys.stderr)
        return 1
    rows = sum(len(t.rows) - 1 for t in report.tables)
    print(f"{rows} simulator rows from {len(report.runs)} runs ({len(report.skipped)} logs skipped)")
    for path in (files.markdown, files.html, files.json, files.png):
        if path is not None:
            print(f"wrote {path}")
    if files.png_skipped:
        print(f"no chart: {files.png_skipped}", file=sys.stderr)
    for flag in report.flags:
        print(f"  - flag: {flag}", file=sys.stderr)
    return 2 if report.flags and args.strict else 0


def _run_compare(args: argparse.Namespace) -> int:
    if args.view == "fidelity":
        return _run_fidelity(args)
    from .report import compare_logs

    try:
        comparison, files = compare_logs(args.log_dir, args.out, scorer=args.scorer, score_key=args.score_key)
    except (ValueError, FileNotFoundError) as ex:
        print(f"userlm-plugin compare: {ex}", file=sys.stderr)
        return 1
    print(
        f"{len(comparison.rows)} rows from {len(comparison.runs)} runs ({len(comparison.skipped)} logs skipped)"
    )
    for path in (files.markdown, files.html, files.json, files.png):
        if path is not None:
            print(f"wrote {path}")
    if files.png_skipped:
        print(f"no chart: {files.png_skipped}", file=sys.stderr)
    if comparison.flags:
        print(f"{len(comparison.flags)} flag(s): see the report's 'Flags' section", file=sys.stderr)
        for flag in comparison.flags:
            print(f"  - {flag.kind}: {flag.message}", file=sys.stderr)
        if args.strict:
            return 2
    return 0


SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], object]] = [
    _add_compare,
    add_serve_parser,
    add_train_parser,
]
"""Each adds one subcommand parser; append yours."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="userlm-plugin", description="Tools for userlm_plugin evals.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
