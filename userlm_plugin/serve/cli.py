"""The `serve` subcommand: `userlm-plugin serve MODEL [--host 127.0.0.1] [--port 8000] [-M key=value ...]`.

MODEL is what follows `userlm/` in Inspect (a hub id or a local folder); `-M` takes the same model args as
`userlm/` (guardrails, batching, device, or `base_url=` to front a remote vLLM server), values parsed as YAML
like Inspect's `-M`. The model (or, with `base_url`, the served model's tokenizer) is loaded before the port
opens, so a client that sees `/health` answer can send. `--max-body-bytes`, `--max-tokens-limit` and
`--max-retries-limit` bound what one request may cost (docs/serving.md "serve under abuse").
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import ConfigError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def parse_model_args(items: list[str] | None) -> dict[str, Any]:
    """`["key=value", ...]` -> dict, values YAML-parsed (`max_words=30` -> 30, `device=cpu` -> "cpu")."""
    import yaml

    args: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"-M expects key=value, got {item!r}")
        try:
            args[key.strip()] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError as error:
            raise ConfigError(f"-M {key.strip()}: the value is not valid YAML ({error})") from error
    return args


def add_serve_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "serve",
        help="serve a guardrailed, batched User LM as an OpenAI-compatible /v1/chat/completions endpoint",
        description=(
            "Serve userlm/MODEL over HTTP. Request messages = the conversation (system = the user's intent, real "
            "roles); the response content = the next user turn. The user ending the conversation is signalled by "
            "finish_reason 'end_conversation' with content '<|endconversation|>'."
        ),
    )
    parser.add_argument("model", metavar="MODEL", help="hub id or local folder, as in userlm/MODEL")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"interface to bind (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument(
        "-M", dest="model_args", action="append", metavar="KEY=VALUE", help="userlm/ model arg (repeatable)"
    )
    parser.add_argument(
        "--served-model-name",
        default=None,
        help="name clients send as 'model' (default: MODEL's last path part)",
    )
    parser.add_argument(
        "--max-tokens-limit",
        type=int,
        default=512,
        help="largest max_tokens a request may ask for (default 512)",
    )
    parser.add_argument(
        "--max-retries-limit",
        type=int,
        default=10,
        help="largest guardrail max_retries a request may ask for (default 10)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=8 * 1024 * 1024,
        help="request body cap in bytes, chunked uploads included (default 8 MiB)",
    )
    parser.add_argument("--log-level", default="warning", help="uvicorn log level (default warning)")
    parser.set_defaults(run=run_serve)
    return parser


def served_name_for(model: str) -> str:
    return model.rstrip("/").split("/")[-1] or model


def run_serve(args: argparse.Namespace) -> int:
    try:
        model_args = parse_model_args(args.model_args)
    except ConfigError as error:
        print(f"userlm-plugin serve: {error}", file=sys.stderr)
        return 2
    if not 1 <= args.port <= 65535:
        print(f"userlm-plugin serve: --port must be in 1..65535, got {args.port}", file=sys.stderr)
        return 2
    for flag, value in (
        ("--max-tokens-limit", args.max_tokens_limit),
        ("--max-body-bytes", args.max_body_bytes),
        ("--max-retries-limit", args.max_retries_limit + 1),
    ):
        if value < 1:
            print(f"userlm-plugin serve: {flag} must be positive", file=sys.stderr)
            return 2
    import uvicorn
    from inspect_ai.model import get_model

    from .app import create_app
    from .protocol import ServeLimits

    try:
        model = get_model(f"userlm/{args.model}", memoize=False, **model_args)
        model.api.backend  # noqa: B018 - load now (weights, or the served model's tokenizer), not on request 1
    except Exception as error:  # noqa: BLE001 - a clear message instead of a traceback
        print(f"userlm-plugin serve: could not load userlm/{args.model}: {error}", file=sys.stderr)
        return 1
    name = args.served_model_name or served_name_for(args.model)
    limits = ServeLimits(
        max_body_bytes=args.max_body_bytes,
        max_tokens=args.max_tokens_limit,
        max_retries=args.max_retries_limit,
    )
    app = create_app(model.api, served_name=name, limits=limits)
    print(
        f"userlm-plugin serve: userlm/{args.model} as {name!r} on http://{args.host}:{args.port}/v1",
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0
