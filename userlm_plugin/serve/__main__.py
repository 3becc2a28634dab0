"""`python -m userlm_plugin.serve MODEL ...`: the same as `userlm-plugin serve MODEL ...`."""

from __future__ import annotations

import argparse
import sys

from .cli import add_serve_parser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m userlm_plugin.serve")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_serve_parser(subparsers)
    args = parser.parse_args(["serve", *(sys.argv[1:] if argv is None else argv)])
    return int(args.run(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
