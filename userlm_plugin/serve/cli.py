"""The `serve` subcommand: `userlm-plugin serve MODEL [--host 127.0.0.1] [--port 8000] [-M key=value ...]`.

MODEL is what follows `userlm/` in Inspect (a hub id or a local folder); `-M` takes the same model args as
`userlm/` (guardrails, batching, device, or `base_url=` to front a remote vLLM server), values parsed as YAML
like Inspect's `-M`. The model (or, with `base_url`, the served model's tokenizer) is loaded before the port
opens, so a client that sees `/health` answer can send. `--max-body-bytes`, `--max-tokens-limit`,
`--max-retries-limit`, `--max-messages`, `--body-timeout` and `--request-timeout` bound what one request may cost;
`--api-key` / `--api-key-file` / `USERLM_SERVE_API_KEY` make every request present a key (docs/serving.md "serve
under abuse").

SIGTERM (or SIGINT) always stops the server: uvicorn stops accepting, gives requests in flight
`--shutdown-timeout` seconds, and a watchdog armed by the first signal ends the process a few seconds after that
whatever is still running (a worker thread rendering a huge prompt cannot be interrupted, and Python would wait for
it at exit). A second signal ends it at once.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Any

from ..errors import ConfigError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
EXIT_GRACE_S = 5.0
"""Seconds past `--shutdown-timeout` before the watchdog ends the process (module docstring)."""


def parse_model_args(items: list[str] | None) -> dict[str, Any]:
    """`["key=value", ...]` -> dict, values YAML-parsed (`max_words=30` -> 30, `device=cpu` -> "cpu"), aliases
    refused as in preset files (userlm_plugin/_yaml.py)."""
    from .._yaml import load_user_yaml_text

    args: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"-M expects key=value, got {item!r}")
        args[key.strip()] = load_user_yaml_text(value, f"-M {key.strip()}") if value else ""
    return args


def add_serve_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "serve",
        help="serve a guardrailed, batched User LM as an OpenAI-compatible /v1/chat/completions endpoint",
        description=(
            "Serve userlm/MODEL over HTTP. Request messages = the conversation (system = the user's intent, real "
            "roles); the response content = the next user turn. The user ending the conversation is signalled by "
            "content '<|endconversation|>' with finish_reason 'stop' and userlm.end_conversation = true. With an "
            "API key (--api-key, --api-key-file or USERLM_SERVE_API_KEY) every path but /health needs "
            "'Authorization: Bearer <key>'. Fields: docs/serving.md."
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
    parser.add_argument(
        "--max-messages",
        type=int,
        default=1024,
        help="most messages in one request (default 1024)",
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        default=30.0,
        help="seconds a request body may take to arrive; a half-sent body gets a 408 (default 30)",
    )
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=300.0,
        help="seconds a request may take to be answered; its generation is cancelled after (504; default 300)",
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=float,
        default=10.0,
        help=f"seconds requests in flight get after SIGTERM; the process ends {EXIT_GRACE_S:g} s later at most "
        "(default 10)",
    )
    key = parser.add_mutually_exclusive_group()
    key.add_argument(
        "--api-key",
        default=None,
        help="require 'Authorization: Bearer <key>' on every path but /health (visible in `ps`: prefer "
        "--api-key-file or USERLM_SERVE_API_KEY)",
    )
    key.add_argument("--api-key-file", default=None, help="read the API key from this file (its first line)")
    parser.add_argument("--log-level", default="warning", help="uvicorn log level (default warning)")
    parser.set_defaults(run=run_serve)
    return parser


def served_name_for(model: str) -> str:
    return model.rstrip("/").split("/")[-1] or model


def run_serve(args: argparse.Namespace) -> int:
    from .auth import resolve_api_key

    try:
        model_args = parse_model_args(args.model_args)
        api_key = resolve_api_key(args.api_key, args.api_key_file)
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
        ("--max-messages", args.max_messages),
        ("--body-timeout", args.body_timeout),
        ("--request-timeout", args.request_timeout),
        ("--shutdown-timeout", args.shutdown_timeout),
    ):
        if value <= 0:
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
        max_messages=args.max_messages,
        body_timeout_s=args.body_timeout,
        request_timeout_s=args.request_timeout,
    )
    app = create_app(model.api, served_name=name, limits=limits, api_key=api_key)
    print(
        f"userlm-plugin serve: userlm/{args.model} as {name!r} on http://{args.host}:{args.port}/v1"
        + (" (API key required)" if api_key else ""),
        flush=True,
    )
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=max(1, round(args.shutdown_timeout)),
    )
    stoppable_server(config, exit_after_s=args.shutdown_timeout + EXIT_GRACE_S).run()
    return 0


def stoppable_server(config: Any, *, exit_after_s: float) -> Any:
    """uvicorn's server, plus a watchdog armed by the first SIGTERM/SIGINT that ends the process `exit_after_s`
    later whatever still runs; a second signal ends it at once (module docstring). uvicorn is imported here, not
    at module import (the `userlm-plugin` CLI imports this module for its parser)."""
    import uvicorn

    class StoppableServer(uvicorn.Server):
        signals = 0

        def handle_exit(self, sig: int, frame: Any) -> None:
            self.signals += 1
            if self.signals > 1:
                os._exit(128 + int(sig))
            super().handle_exit(sig, frame)
            watchdog = threading.Timer(exit_after_s, _hard_exit, args=(int(sig),))
            watchdog.daemon = True
            watchdog.start()

    return StoppableServer(config)


def _hard_exit(sig: int) -> None:
    name = signal.Signals(sig).name
    print(f"userlm-plugin serve: still running after {name}; exiting now", file=sys.stderr, flush=True)
    os._exit(128 + sig)
