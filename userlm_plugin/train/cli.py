"""`userlm-plugin train ...`: download, intents, flip, sft, perplexity (docs/training.md).

Import-light like the top-level cli.py: argparse only; each subcommand imports its module when it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

TEMPLATE_HELP = (
    "a chat template file, or `userlm` for UserLM-8b's (default: the model's own, else UserLM-8b's)"
)


def add_train_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train your own User LM: download, intents, flip, sft, perplexity",
        description="Train a User LM on your conversations (docs/training.md).",
    )
    steps = parser.add_subparsers(dest="step", metavar="STEP", required=True)

    p = steps.add_parser(
        "download", help="WildChat / LMSYS conversations from the hub (pinned revision) as JSONL"
    )
    p.add_argument("source", choices=["wildchat", "lmsys"])
    p.add_argument("--out", required=True, metavar="FILE")
    p.add_argument("--limit", type=int, default=None, help="stop after this many valid conversations")
    p.add_argument("--revision", default=None, help="dataset commit (default: the pinned one)")
    p.add_argument(
        "--language", default=None, help="keep this `language` value (default English; '' keeps all)"
    )
    p.set_defaults(run=_run_download)

    p = steps.add_parser("intents", help="write a high-level intent for every conversation (resumable)")
    p.add_argument("data", metavar="DATA", help="conversation JSONL (OpenAI messages format)")
    p.add_argument("--model", required=True, help="any Inspect model, e.g. litellm/gpt-4o or openai-api/...")
    p.add_argument(
        "--out", required=True, metavar="FILE", help="output JSONL; also the cache a rerun resumes from"
    )
    p.add_argument(
        "--prompt", default=None, metavar="YAML", help="your own intent prompt (same shape as ours)"
    )
    p.add_argument("--max-connections", type=int, default=8)
    p.add_argument("--temperature", type=float, default=0.0)
    _add_fields(p)
    p.set_defaults(run=_run_intents)

    p = steps.add_parser("flip", help="validate, deduplicate and split conversations (grouped, leak-free)")
    p.add_argument("data", metavar="DATA", help="conversation JSONL with intents")
    p.add_argument(
        "--out", required=True, metavar="DIR", help="writes train.jsonl, test.jsonl, flip_report.json"
    )
    p.add_argument("--test-fraction", type=float, default=0.05)
    p.add_argument("--split-by", choices=["user", "conversation"], default="user")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--model",
        default=None,
        help="check every conversation against what userlm/ renders for this base model; preview.txt",
    )
    p.add_argument("--chat-template", default=None, metavar="FILE", help=TEMPLATE_HELP)
    p.add_argument("--revision", default=None, help="base model revision on the hub")
    _add_fields(p)
    p.set_defaults(run=_run_flip)

    p = steps.add_parser("sft", help="fine-tune a base model into a User LM (full or LoRA)")
    p.add_argument("--model", help="base model: hub id or local folder (required unless --show-profile)")
    p.add_argument("--data", metavar="FILE", help="training conversations (flip's train.jsonl)")
    p.add_argument(
        "--eval-data", default=None, metavar="FILE", help="held-out conversations for the held-out loss"
    )
    p.add_argument("--out", metavar="DIR", help="output model folder (loads as userlm/DIR)")
    p.add_argument("--profile", default="paper", help="paper (default), reproduction, cpu or tiny")
    p.add_argument("--method", choices=["full", "lora"], default=None)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--epochs", type=float, default=None, dest="num_epochs")
    p.add_argument("--learning-rate", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=None, dest="effective_batch_size")
    p.add_argument("--per-device-batch-size", type=int, default=None)
    p.add_argument("--max-length", type=int, default=None)
    p.add_argument(
        "--overflow",
        choices=["window", "cut"],
        default=None,
        help="a conversation over --max-length: split into windows (default) or cut",
    )
    p.add_argument("--save-steps", type=int, default=None)
    p.add_argument(
        "--keep-checkpoints", type=int, default=None, help="checkpoints left once training finished"
    )
    p.add_argument("--eval-steps", type=int, default=None, help="held-out loss every N steps (default: ends)")
    p.add_argument(
        "--dtype", choices=["auto", "bfloat16", "float32"], default=None, help="training precision"
    )
    p.add_argument(
        "--save-dtype",
        choices=["auto", "bfloat16", "float16", "float32"],
        default=None,
        help="saved weights (default auto: the base model's own)",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue from the last checkpoint in DIR/checkpoints"
    )
    p.add_argument("--chat-template", default=None, metavar="FILE", help=TEMPLATE_HELP)
    p.add_argument("--revision", default=None, help="base model revision on the hub")
    p.add_argument("--show-profile", action="store_true", help="print the profile and its sources, then exit")
    p.set_defaults(run=_run_sft)

    p = steps.add_parser(
        "perplexity", help="held-out user-token perplexity of userlm/ models, with/without intent"
    )
    p.add_argument(
        "--model", required=True, action="append", help="a userlm/ model (folder or hub id); repeat"
    )
    p.add_argument("--data", required=True, metavar="FILE", help="held-out conversations (flip's test.jsonl)")
    p.add_argument("--condition", choices=["intent", "no_intent", "both"], default="both")
    p.add_argument(
        "--chat-template",
        default=None,
        metavar="FILE",
        help="a chat template file, or `userlm` for UserLM-8b's (default: the model's own)",
    )
    p.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="score longer conversations in windows (default: the model's context)",
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto", help="auto (fp32 on CPU, bf16 on CUDA), bfloat16, float32")
    p.add_argument("--out", default=None, metavar="FILE", help="also write the reports as JSON")
    p.set_defaults(run=_run_perplexity)


def _add_fields(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--id-field", default=None, help="record id field (default: id / conversation_id / ...)"
    )
    parser.add_argument(
        "--user-field", default="user_id", help="user id field, for grouping (default user_id)"
    )


def _fail(step: str, error: Exception) -> int:
    print(f"userlm-plugin train {step}: {error}", file=sys.stderr)
    return 1


def _report_problems(problems: list[Any], what: str, shown: int = 5) -> None:
    if problems:
        print(f"{len(problems)} {what} skipped:", file=sys.stderr)
        for problem in problems[:shown]:
            print(f"  - {problem}", file=sys.stderr)
        if len(problems) > shown:
            print(f"  ... and {len(problems) - shown} more (see the report file)", file=sys.stderr)


def _read(args: argparse.Namespace, path: str) -> Any:
    from .conversations import read_conversations

    result = read_conversations(path, id_field=args.id_field, user_field=args.user_field)
    _report_problems(result.problems, "record(s)")
    return result


def _run_download(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from .loaders import download

    try:
        counts = download(
            args.source, args.out, limit=args.limit, revision=args.revision, language=args.language
        )
    except ConfigError as error:
        return _fail("download", error)
    print(
        f"wrote {counts['written']} conversations to {args.out} ({counts['invalid']} invalid rows left out)"
    )
    return 0


def _run_intents(args: argparse.Namespace) -> int:
    import asyncio

    from ..errors import ConfigError
    from .intents import load_intent_prompt, write_intents

    try:
        records = _read(args, args.data).records
        prompt = load_intent_prompt(args.prompt)
        run = asyncio.run(
            write_intents(
                records,
                args.model,
                args.out,
                prompt=prompt,
                max_connections=args.max_connections,
                temperature=args.temperature,
                progress=sys.stderr.isatty(),
            )
        )
    except ConfigError as error:
        return _fail("intents", error)
    _report_problems(run.problems, "conversation(s) without an intent (rerun to retry them)")
    print(f"intents: {json.dumps(run.summary())} -> {args.out}")
    return 1 if run.problems else 0


def _run_flip(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from .prepare import flip_conversations

    try:
        run = flip_conversations(
            args.data,
            args.out,
            model=args.model,
            chat_template=args.chat_template,
            test_fraction=args.test_fraction,
            split_by=args.split_by,
            seed=args.seed,
            id_field=args.id_field,
            user_field=args.user_field,
            revision=args.revision,
        )
    except (ConfigError, OSError) as error:
        return _fail("flip", error)
    _report_problems(run.read_problems, "record(s)")
    _report_problems(run.unflippable, "conversation(s) that cannot be flipped, left out of the split")
    if run.without_intent:
        print(
            f"{run.without_intent} conversation(s) have no intent: run `train intents` first", file=sys.stderr
        )
    print(run.line())
    return 0


SFT_OVERRIDES = (
    "method",
    "max_steps",
    "num_epochs",
    "learning_rate",
    "effective_batch_size",
    "per_device_batch_size",
    "max_length",
    "overflow",
    "save_steps",
    "keep_checkpoints",
    "eval_steps",
    "dtype",
    "save_dtype",
)


def _run_sft(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from .profiles import get_profile
    from .sft import train_user_lm

    overrides = {k: getattr(args, k) for k in SFT_OVERRIDES}
    try:
        profile = get_profile(args.profile, **overrides)
        if args.show_profile:
            print(json.dumps(profile.model_dump(mode="json"), indent=2))
            return 0
        missing = [f"--{name}" for name in ("model", "data", "out") if not getattr(args, name)]
        if missing:
            raise ConfigError(f"{', '.join(missing)} required (only --show-profile runs without them)")
        train = _read(args_with_fields(args), args.data).records
        evals = _read(args_with_fields(args), args.eval_data).records if args.eval_data else None
        result = train_user_lm(
            args.model,
            train,
            args.out,
            profile=profile,
            eval_records=evals,
            resume=args.resume,
            chat_template=args.chat_template,
            revision=args.revision,
        )
    except ConfigError as error:
        return _fail("sft", error)
    _report_problems(result.skipped, "conversation(s) that cannot be flipped")
    for name, report in (("train", result.length), ("held-out", result.eval_length)):
        if report is not None:
            print(f"{name}: {report.line()}")
    print(sft_summary(result))
    return 0


def sft_summary(result: Any) -> str:
    """The final lines of `train sft`: steps, the first and FINAL step's loss, held-out perplexity before and
    after, and where the model is (with the `userlm/` name that loads it, relative to here)."""
    first, final = result.losses[0][1], result.final_loss
    before, after = result.base_eval_perplexity, result.eval_perplexity
    heldout = ""
    if after is not None:
        heldout = f"; held-out user-token perplexity {before:.2f} -> {after:.2f}" if before else ""
        heldout = heldout or f"; held-out user-token perplexity {after:.2f}"
    minutes, seconds = divmod(round(result.train_seconds), 60)
    checkpoints = (
        f"{result.checkpoints_kept} checkpoint(s) kept for --resume"
        if result.checkpoints_kept
        else "no checkpoints kept"
    )
    plot = f"; plot: {result.plot}" if result.plot else "; no plot (pip install matplotlib)"
    return (
        f"{result.steps} steps in {minutes}m{seconds:02d}s on {result.conversations} conversations "
        f"({result.train_examples} sequences, {result.loss_tokens:,} user tokens): loss {first:.3f} (step "
        f"{result.losses[0][0]}) -> {final:.3f} (step {result.losses[-1][0]}){heldout}\n"
        f"saved to {result.output_dir} ({result.saved_dtype}, {result.output_bytes / 1e6:,.0f} MB, "
        f"{checkpoints}){plot}\n"
        f"use it: --model-role user={result.model_name()}"
    )


def args_with_fields(args: argparse.Namespace) -> argparse.Namespace:
    """`sft` reads the files `flip` wrote, whose fields are ours (id, user_id)."""
    return argparse.Namespace(**{**vars(args), "id_field": None, "user_field": "user_id"})


def _run_perplexity(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from .perplexity import evaluate_model

    conditions = {"intent": (True,), "no_intent": (False,), "both": (True, False)}[args.condition]
    rows = []
    try:
        records = _read(args_with_fields(args), args.data).records
        for model in args.model:
            reports = evaluate_model(
                model,
                records,
                conditions=conditions,
                device=args.device,
                dtype=args.dtype,
                chat_template=args.chat_template,
                max_length=args.max_length,
            )
            rows += [r.summary() for r in reports]
            for report in reports:
                _report_problems(report.skipped, f"conversation(s) for {model}")
    except ConfigError as error:
        return _fail("perplexity", error)
    print(f"{'model':40} {'condition':10} {'PPL':>9} {'PPL turns':>9} {'tokens':>7} {'AUROC end':>9}")
    for row in rows:
        print(
            f"{row['model'][-40:]:40} {row['condition']:10} {_num(row['perplexity']):>9} "
            f"{_num(row['perplexity_turns']):>9} {row['user_tokens']:>7} {_num(row['end_auroc']):>9}"
        )
    windowed = {row["model"]: row["windowed"] for row in rows if row["windowed"]}
    for model, count in windowed.items():
        print(
            f"{model}: {count} conversation(s) longer than --max-length scored in windows (docs/training.md)"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
