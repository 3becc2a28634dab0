"""The paper's Table 1 in miniature, against real people, offline, in one run (issue 18, docs/fidelity.md).

arXiv 2510.06552 trains a User LM by flipping real conversations and shows (Table 1) that it finds held-out
people's turns far likelier than the assistant models prompted to play a user. This bench does the same at CPU
scale with real weights and real people:

1. reads SimulatorArena's human conversations (document creation and math tutoring) and splits them **by person**
   (a person's conversations are all on one side: `train.conversations.grouped_split`);
2. trains SmolLM2-135M-Instruct into a User LM on the training people's conversations (`train_user_lm`, the `cpu`
   profile; the intent each conversation trains with is the one the replay shows the simulator: task + the
   person's background);
3. replays the held-out people's conversations (the `human_fidelity` eval, `evaluate_simulator`) with, in turn:
   `scripted` (the people's own turns: the sanity row, AUROC 0.5), the instruct model prompted as a user
   (`prompted_flat`, the paper's baseline, and `prompted`, role-flipped chat; Inspect's `hf/` provider), the same
   model through `userlm/` untrained, and the trained User LM (with the paper's guardrails, and without them);
4. prints the fidelity table (every metric, discriminator AUROC with its bootstrap interval, end F1, user-token
   perplexity with and without the intent where a `userlm/` model defines it), the perplexity table in the
   paper's layout, and the time of every stage; writes the logs, `fidelity.{md,html,json,png}` (the PNG: length
   distributions of the people and each simulator, and each AUROC) and `human_alignment.json`.

Usage (offline; the SmolLM2 folder comes from `scripts/smollm2_folder.py`, as in `scripts/demo.sh`):

    HF_HUB_OFFLINE=1 .venv/bin/python bench/human_alignment.py \\
        --data ../shared/data/simulatorarena --model .cache/smollm2-135m-instruct --out .cache/bench/human_alignment

`--rows` picks the simulators (default: all six), `--eval-conversations` how many held-out conversations are
replayed, `--steps` the optimizer steps. `--prompted-model` replaces the `hf/` model of the prompted rows (the
test passes `mockllm/model`). Read the figures with their N: this is a real measurement, but a small one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from userlm_plugin.evals.human_fidelity.dataset import read_human_data  # noqa: E402
from userlm_plugin.simulators.background import intent_with_background  # noqa: E402
from userlm_plugin.train.conversations import ChatRecord, grouped_split  # noqa: E402

ROWS = ("scripted", "prompted_flat", "prompted", "userlm_base", "userlm_trained", "userlm_trained_raw")
"""Every row the bench can run, in the order it runs them."""

NO_GUARDRAILS = {
    "first_token_filter": False,
    "length_filter": False,
    "repetition_filter": False,
    "length_budget": False,
}
"""`userlm_trained_raw`: the trained model's own turns, none of the paper's four guardrails rewriting them (the
paper used them only in its extrinsic runs; the replay's `min_turns_before_end: 1` still lets it end)."""

ROW_TITLES = {
    "scripted": "people's own turns (scripted: sanity row)",
    "prompted_flat": "instruct model prompted as user (prompted_flat, the paper's baseline)",
    "prompted": "instruct model prompted as user (prompted, role-flipped chat)",
    "userlm_base": "instruct model through userlm/, untrained",
    "userlm_trained": "trained User LM (userlm/, paper's guardrails)",
    "userlm_trained_raw": "trained User LM (userlm/, no guardrails)",
}


@dataclass
class Split:
    train: list[ChatRecord]
    heldout: list[ChatRecord]
    evaluated: list[ChatRecord]
    people_train: int
    people_heldout: int
    by_subset: dict[str, dict[str, int]] = field(default_factory=dict)


def read_people(paths: list[Path]) -> list[ChatRecord]:
    """Every conversation in `paths`: SimulatorArena annotations .json files, conversation .jsonl files, or folders
    of them (a folder's other .json files, such as SimulatorArena's background file, are passed over, said so).
    Records a file cannot replay are dropped and counted, as the eval itself does."""
    from userlm_plugin.errors import UsageError

    files: list[Path] = []
    for path in paths:
        files += sorted(path.glob("*.json")) + sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    records: list[ChatRecord] = []
    for path in files:
        try:
            human = read_human_data(str(path))
        except UsageError as error:
            if len(paths) == 1 and not paths[0].is_dir():
                raise SystemExit(str(error)) from None
            print(f"  {path.name}: passed over ({str(error).split(': ', 1)[-1][:90]})")
            continue
        subset = human.subset or path.stem
        records += [
            r
            if "subset" in r.extra
            else ChatRecord(r.id, r.turns, r.intent, r.user_id, {**r.extra, "subset": subset})
            for r in human.records
        ]
        left_out = f", {len(human.problems)} left out ({human.problems[0]})" if human.problems else ""
        print(f"  {path.name}: {len(human.records)} conversations{left_out}")
    if not records:
        raise SystemExit(f"--data {' '.join(map(str, paths))}: no conversation to train or replay")
    return records


def split_people(
    records: list[ChatRecord], test_fraction: float, seed: int, subset: str | None, conversations: int
) -> Split:
    """Train on some people, evaluate on others: the split is by person (`user_id`), so no held-out person's
    writing was seen in training. `evaluated`: the first `conversations` held-out ones of `subset`."""
    train, heldout = grouped_split(records, test_fraction, by="user", seed=seed)
    if not train or not heldout:
        raise SystemExit(
            f"--test-fraction {test_fraction}: the split left {len(train)} training and {len(heldout)} held-out "
            "conversations; both need some"
        )
    evaluated = [r for r in heldout if subset is None or r.extra.get("subset") == subset][:conversations]
    if not evaluated:
        raise SystemExit(f"--subset {subset}: no held-out conversation of that subset (try another --seed)")
    by_subset: dict[str, dict[str, int]] = {}
    for name, side in (("train", train), ("heldout", heldout), ("evaluated", evaluated)):
        for kind, n in Counter(str(r.extra.get("subset")) for r in side).items():
            by_subset.setdefault(kind, {})[name] = n
    return Split(
        train=train,
        heldout=heldout,
        evaluated=evaluated,
        people_train=len({r.group for r in train}),
        people_heldout=len({r.group for r in heldout}),
        by_subset=by_subset,
    )


def training_view(record: ChatRecord) -> ChatRecord:
    """The record with the intent the replay will show the simulator (the task and the person's background), so the
    User LM trains on the same conditioning it is evaluated with."""
    return record.with_intent(intent_with_background(record.intent, record.extra, record.id) or "")


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch
    import transformers
    from inspect_ai import __version__ as inspect_version

    return {
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "inspect_ai": inspect_version,
    }


def load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def row_specs(args: argparse.Namespace, trained: str | None) -> dict[str, tuple[Any, dict[str, Any]]]:
    """Row -> (simulator spec, model roles)."""
    if args.prompted_model:
        prompted_user: Any = args.prompted_model
    else:
        from inspect_ai.model import get_model

        prompted_user = get_model(
            "hf/local", model_path=args.model, device="cpu", dtype=args.prompted_dtype, memoize=False
        )
    specs: dict[str, tuple[Any, dict[str, Any]]] = {
        "scripted": ("scripted", {}),
        "prompted_flat": (
            {"simulator": "prompted_flat", "max_tokens": args.max_tokens},
            {"user": prompted_user},
        ),
        "prompted": ({"simulator": "prompted", "max_tokens": args.max_tokens}, {"user": prompted_user}),
        "userlm_base": (
            {"simulator": "userlm", "max_tokens": args.max_tokens},
            {"user": f"userlm/{args.model}"},
        ),
    }
    if trained is not None:
        specs["userlm_trained"] = (
            {"simulator": "userlm", "max_tokens": args.max_tokens},
            {"user": f"userlm/{trained}"},
        )
        specs["userlm_trained_raw"] = (
            {"simulator": "userlm", "max_tokens": args.max_tokens, "guardrails": NO_GUARDRAILS},
            {"user": f"userlm/{trained}"},
        )
    return specs


def train(args: argparse.Namespace, split: Split, out: Path) -> tuple[str, dict[str, Any]]:
    """Train the User LM on the training people; returns its folder and what the run printed."""
    from userlm_plugin.train import get_profile, train_user_lm

    result = train_user_lm(
        args.model,
        [training_view(r) for r in split.train],
        out / "user-lm",
        profile=args.profile,
        max_steps=args.steps,
        eval_before=False,
        progress=not args.quiet,
    )
    losses = [loss for _, loss in result.losses]
    summary = {
        "folder": result.output_dir,
        "profile": args.profile,
        "steps": result.steps,
        "batch": get_profile(args.profile).effective_batch_size,
        "conversations": result.conversations,
        "sequences": result.train_examples,
        "loss_tokens": result.loss_tokens,
        "first_loss": result.losses[0][1] if result.losses else None,
        "final_loss": result.final_loss,
        "first5_loss": sum(losses[:5]) / len(losses[:5]) if losses else None,
        "last5_loss": sum(losses[-5:]) / len(losses[-5:]) if losses else None,
        "train_seconds": round(result.train_seconds, 1),
        "skipped": [str(p) for p in result.skipped],
        "saved_dtype": result.saved_dtype,
    }
    return result.output_dir, summary


def run_rows(
    args: argparse.Namespace, split: Split, trained: str | None, logs: Path
) -> dict[str, dict[str, Any]]:
    from userlm_plugin.evals.human_fidelity.api import evaluate_simulator

    specs = row_specs(args, trained)
    done: dict[str, dict[str, Any]] = {}
    for row in args.rows:
        if row not in specs:
            print(f"  {row}: skipped (needs the trained model: run without --skip-training)")
            continue
        simulator, roles = specs[row]
        started, load_before = time.monotonic(), load()
        log, table = evaluate_simulator(
            split.evaluated,
            simulator,
            model_roles=roles,
            log_dir=str(logs),
            seed=args.seed,
            max_connections=10,
            fail_on_error=False,
        )
        seconds = time.monotonic() - started
        samples = log.samples or []
        failed = [s for s in samples if s.error is not None]
        if failed:
            # One conversation that fails (e.g. longer than the model's context) fails alone: the table is
            # recomputed on the conversations every row replayed, so it drops out of every row.
            print(
                f"  {row}: {len(failed)} of {len(samples)} conversation(s) failed: {failed[0].error.message}"
            )
        done[row] = {
            "failed": [{"id": str(s.id), "error": s.error.message} for s in failed],
            "log": log.location,
            "seconds": round(seconds, 1),
            "load_before": round(load_before, 2),
            "load_after": round(load(), 2),
            "metrics": table,
        }
        auroc = table.get("auroc")
        print(
            f"  {row:<20} {seconds:7.0f} s   words {table.get('words', float('nan')):6.1f}   "
            f"AUROC {'—' if auroc is None else f'{auroc:.3f}'}   end F1 {table.get('end_f1', float('nan')):5.1f}"
        )
    return done


def fidelity_table(runs: dict[str, dict[str, Any]], out: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every row recomputed on the conversations all runs replayed (`compare --view fidelity`'s report), with the
    bench's row names; writes fidelity.md/.html/.json/.png into `out`."""
    from userlm_plugin.report.fidelity import build_fidelity_report, load_fidelity_run, write_fidelity_report

    loaded = [load_fidelity_run(r["log"]) for r in runs.values()]
    report = build_fidelity_report(loaded)
    files = write_fidelity_report(report, out)
    by_log = {r["log"]: name for name, r in runs.items()}
    rows: list[dict[str, Any]] = []
    for table in report.tables:
        for row in table.rows:
            name = "people" if row.human else by_log.get(row.log or "", row.label)
            rows.append({"row": name, "label": row.label, "conversations": row.conversations, **row.metrics})
    order = ["people", *runs]
    rows.sort(key=lambda r: order.index(r["row"]) if r["row"] in order else len(order))
    return rows, {
        "markdown": str(files.markdown),
        "html": str(files.html),
        "json": str(files.json),
        "png": str(files.png) if files.png else files.png_skipped,
        "flags": report.flags,
    }


COLUMNS = [
    ("words", "words", 1),
    ("len_jsd", "lenJSD", 3),
    ("typo_pct", "typo%", 2),
    ("lower_pct", "lower%", 1),
    ("nopunct_pct", "nopunct%", 1),
    ("question_pct", "q%", 1),
    ("polite_pct", "polite%", 1),
    ("me_pct", "I/me%", 1),
    ("leak_pct", "leak%", 1),
    ("lex_f1", "lexF1", 1),
    ("end_f1", "endF1", 1),
    ("auroc", "AUROC", 3),
    ("ppl", "PPL", 2),
    ("ppl_no_intent", "PPL-noint", 2),
]


def _cell(row: dict[str, Any], name: str, digits: int) -> str:
    value = row.get(name)
    if value is None:
        return "—"
    text = f"{value:.{digits}f}"
    if name == "auroc" and row.get("auroc_lo") is not None:
        text += f" [{row['auroc_lo']:.2f}-{row['auroc_hi']:.2f}]"
    return text


def markdown_table(rows: list[dict[str, Any]]) -> str:
    head = ["row", "N", *(h for _, h, _ in COLUMNS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["row"], str(row["conversations"]), *(_cell(row, n, d) for n, _, d in COLUMNS)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def perplexity_table(rows: list[dict[str, Any]]) -> str:
    """The paper's Table 1 layout: per model, the people's user-token perplexity without and with the intent."""
    lines = ["| model | PPL no intent | PPL with intent |", "|---|---|---|"]
    for row in rows:
        if row.get("ppl") is None or row["row"] == "userlm_trained_raw":  # same weights as userlm_trained
            continue
        lines.append(f"| {row['row']} | {row['ppl_no_intent']:.2f} | {row['ppl']:.2f} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        nargs="+",
        default=[REPO.parent / "shared" / "data" / "simulatorarena"],
        help="SimulatorArena annotation files, conversation JSONL files, or folders of them",
    )
    parser.add_argument(
        "--model", default=".cache/smollm2-135m-instruct", help="the instruct model (a folder)"
    )
    parser.add_argument("--out", type=Path, default=Path(".cache/bench/human_alignment"))
    parser.add_argument("--test-fraction", type=float, default=0.25, help="share of people held out")
    parser.add_argument("--seed", type=int, default=1, help="split and sampling seed")
    parser.add_argument("--subset", default="document_creation", help="held-out subset replayed ('' = all)")
    parser.add_argument("--eval-conversations", type=int, default=8)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the profile's)")
    parser.add_argument("--skip-training", action="store_true", help="reuse OUT/user-lm from an earlier run")
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS)
    parser.add_argument("--max-tokens", type=int, default=128, help="cap on one simulated turn (every row)")
    parser.add_argument(
        "--prompted-model", default=None, help="the prompted rows' user model (default hf/ MODEL)"
    )
    parser.add_argument("--prompted-dtype", default="float32")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    args.subset = args.subset or None
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    started = time.monotonic()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, load average {load():.2f}")
    records = read_people(args.data)
    split = split_people(records, args.test_fraction, args.seed, args.subset, args.eval_conversations)
    evaluated_turns = sum(len(r.user_turns) for r in split.evaluated)
    print(
        f"people: {split.people_train} train / {split.people_heldout} held out ({len(split.train)} / "
        f"{len(split.heldout)} conversations; per subset {split.by_subset}); replaying {len(split.evaluated)} "
        f"held-out conversations ({evaluated_turns} human turns)"
    )
    timings: dict[str, float] = {}
    training: dict[str, Any] | None = None
    trained: str | None = None
    needs_model = any(r.startswith("userlm_trained") for r in args.rows)
    if needs_model and args.skip_training:
        trained = str(out / "user-lm")
        if not (Path(trained) / "config.json").is_file():
            raise SystemExit(f"--skip-training: no trained model in {trained} (run once without it)")
    elif needs_model:
        print(f"training {args.model} on {len(split.train)} conversations (profile {args.profile}) ...")
        step = time.monotonic()
        trained, training = train(args, split, out)
        timings["train"] = round(time.monotonic() - step, 1)
        print(
            f"  {training['steps']} steps of {training['batch']} sequences (of {training['sequences']} in the training "
            f"set) in {timings['train']:.0f} s: loss {training['first_loss']:.3f} (step 1) -> "
            f"{training['final_loss']:.3f} (last step), mean of the first / last 5 steps {training['first5_loss']:.3f}"
            f" / {training['last5_loss']:.3f}"
        )
    print("replaying the held-out people's conversations:")
    runs = run_rows(args, split, trained, out / "logs")
    timings.update({f"replay_{name}": r["seconds"] for name, r in runs.items()})
    rows, files = fidelity_table(runs, out)
    timings["total"] = round(time.monotonic() - started, 1)
    table, ppl = markdown_table(rows), perplexity_table(rows)
    print("\nfidelity against the held-out people (every row on the same conversations; docs/fidelity.md):\n")
    print(table)
    print(
        "\nthe paper's Table 1 in miniature (user-token perplexity of the held-out people's turns; lower = closer):\n"
    )
    print(ppl)
    print(f"\ntime: {timings}")
    print(f"files: {files['markdown']}, {files['png']}, {out / 'human_alignment.json'}")
    for flag in files["flags"]:
        print(f"flag: {flag}")
    result = {
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "machine": info,
        "load_end": round(load(), 2),
        "split": {
            "people_train": split.people_train,
            "people_heldout": split.people_heldout,
            "by_subset": split.by_subset,
            "evaluated": [r.id for r in split.evaluated],
            "evaluated_turns": evaluated_turns,
            "test_fraction": args.test_fraction,
            "seed": args.seed,
        },
        "training": training,
        "runs": {name: {k: v for k, v in r.items() if k != "metrics"} for name, r in runs.items()},
        "rows": rows,
        "timings_s": timings,
        "files": files,
    }
    (out / "human_alignment.json").write_text(
        json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8"
    )
    return result


if __name__ == "__main__":
    main()
