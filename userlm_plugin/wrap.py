"""Turn an existing single-turn Inspect task into a conversation with a simulated user.

Why: most people already have evals (their own, or `inspect_evals` such as gsm8k and humaneval) and want to
ask "how does my assistant do when a realistic user gives the task piece by piece?" without rewriting them.
`with_simulated_user(task)` keeps everything the task owns (dataset, scorer, sandbox, limits, metadata,
model roles, setup, epochs) and swaps only the single `generate()` for the `simulated_user` loop, so the
task's own scorer scores the assistant's *final* answer, unchanged.

How the intent is built (the decision, documented in docs/comparisons.md): the task's own pre-generate
message steps (`system_message`, `prompt_template`, `user_message`, `chain_of_thought`, `use_tools`) still
run first, exactly as in the single-turn eval. Then the text of the user message(s) they produced, the
full instruction the single-turn assistant would have seen (e.g. gsm8k's "Solve the following math
problem ... ANSWER: $ANSWER" template around the question), becomes the simulator's intent (sample
metadata `intent`), the paper's "intent = the full instruction" (Lost in Conversation's FULL setting;
docs/lic.md).
System messages (e.g. gsm8k's few-shot block) stay for the assistant; the user messages are dropped by
`simulated_user`, because the simulated user writes turn 1. `state.input` is never touched, so scorers
that read the original input still see it. Pass `intent="input"` to use the raw sample input instead,
or `intent="metadata"` to keep an intent the dataset already carries.

Tasks whose solver does more than "message steps, then one generate" (multiple_choice, self_critique,
agents, custom solvers) cannot be wrapped faithfully: the wrapper refuses them with a message naming
the solver and why, instead of silently changing what the eval measures.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any, Literal

from inspect_ai import Task, task, task_with
from inspect_ai.model import ChatMessageUser
from inspect_ai.solver import Generate, Solver, TaskState, chain, solver
from inspect_ai.util import registry_info

from ._inspect_compat import (
    chain_steps,
    is_registry_object,
    registry_unqualified_name,
    set_task_display_name,
    task_registered_name,
)
from ._paths import resolve_user_path
from .errors import ConfigError, UsageError

WRAP_METADATA_KEY = "userlm_wrap"
"""Key under the task metadata (so `log.eval.metadata`) describing what was wrapped and how."""

WRAPPED_SUFFIX = "+simulated_user"
"""Appended to the wrapped task's name, so logs say what was wrapped (e.g. `gsm8k+simulated_user`)."""

MESSAGE_STEPS: dict[str, str] = {
    "system_message": "adds a system message the assistant keeps",
    "prompt_template": "templates the user prompt, which becomes the intent",
    "user_message": "adds a user message, which becomes part of the intent",
    "chain_of_thought": "templates the user prompt, which becomes the intent",
    "use_tools": "gives the assistant tools it keeps for every turn",
}
"""Solvers that only shape the messages/tools before the single generate; they run unchanged."""

GENERATE_STEP = "generate"

REFUSED_WHY: dict[str, str] = {
    "assistant_message": "it prefills an assistant turn, which a simulated user's conversation cannot keep",
    "multiple_choice": "it renders choices, generates and parses a letter itself; a conversation would "
    "bypass its answer parsing",
    "self_critique": "it generates again after the answer; the conversation's final answer would be rewritten",
    "basic_agent": "it is an agent loop with its own submit tool; pass the agent as simulated_user(assistant=...)",
    "react": "it is an agent loop with its own submit tool; pass the agent as simulated_user(assistant=...), "
    "built with on_continue=simulated_continue() (docs/agents.md)",
}
"""Known solvers we refuse, with the reason given to the user."""

IntentSource = Literal["prompt", "input", "metadata"]
INTENT_SOURCES: tuple[str, ...] = ("prompt", "input", "metadata")


class UnwrappableTaskError(UsageError):
    """The task's solver is not a plain message-steps-then-generate chain."""


def _step_name(step: Any) -> str | None:
    """Unqualified registry name of a solver step (`inspect_ai/generate` -> `generate`), None if unregistered."""
    if not is_registry_object(step):
        return None
    name = registry_info(step).name
    return name.split("/")[-1]


def _steps(solver_: Solver) -> list[Solver]:
    steps = chain_steps(solver_)
    return steps if steps is not None else [solver_]


def plan_message_steps(task_: Task, *, allow: Sequence[str] = ()) -> list[Solver]:
    """Check the task's solver is `[message steps..., generate()]` and return the message steps.

    `allow` names extra registered solvers (unqualified or qualified) that you vouch only shape messages.
    Raises UnwrappableTaskError naming the offending solver and why it cannot be wrapped.
    """
    allowed = set(MESSAGE_STEPS) | {a.split("/")[-1] for a in allow}
    steps = _steps(task_.solver)
    names = [_step_name(s) for s in steps]
    where = f"task '{task_.name}' solver chain {[n or type(s).__name__ for n, s in zip(names, steps, strict=True)]}"
    generates = [i for i, n in enumerate(names) if n == GENERATE_STEP]
    if not generates:
        raise UnwrappableTaskError(
            f"Cannot wrap {where}: it has no generate() step for the conversation to replace. "
            "Only tasks whose solver is message steps followed by one generate() can be wrapped."
        )
    if len(generates) > 1 or generates[0] != len(steps) - 1:
        after = names[generates[0] + 1 :]
        raise UnwrappableTaskError(
            f"Cannot wrap {where}: generate() must be the last and only generation step, but it is followed "
            f"by {after}. Those steps would rewrite or re-score the conversation's final answer."
        )
    for name, step in zip(names[:-1], steps[:-1], strict=True):
        if name is None:
            raise UnwrappableTaskError(
                f"Cannot wrap {where}: step {getattr(step, '__name__', type(step).__name__)!r} is not a "
                "registered @solver, so what it does cannot be checked. Register it with @solver and pass "
                "allow=[name] if it only adds or templates messages."
            )
        if name in REFUSED_WHY:
            raise UnwrappableTaskError(
                f"Cannot wrap {where}: solver '{name}' is not wrappable because {REFUSED_WHY[name]}."
            )
        if name not in allowed:
            raise UnwrappableTaskError(
                f"Cannot wrap {where}: solver '{name}' is not a known message step (known: {sorted(MESSAGE_STEPS)}), "
                "so it may generate or change the answer itself. If it only adds or templates messages, "
                f"pass allow=['{name}'] (CLI: -T allow={name})."
            )
    return steps[:-1]


def _user_text(state: TaskState) -> str:
    texts: list[str] = []
    for message in state.messages:
        if not isinstance(message, ChatMessageUser):
            continue
        if not isinstance(message.content, str) and any(c.type != "text" for c in message.content):
            kinds = sorted({c.type for c in message.content if c.type != "text"})
            raise ConfigError(
                f"Sample {state.sample_id!r}: the user input has {kinds} content; a simulated user writes "
                "text only, so this sample cannot become a simulated conversation. Filter such samples out."
            )
        if message.text.strip():
            texts.append(message.text.strip())
    return "\n\n".join(texts)


@solver
def set_intent(source: IntentSource = "prompt") -> Solver:
    """Write the simulator's intent into sample metadata `intent` (read by `simulated_user`).

    `prompt`: the user message text after the task's own message steps ran (the full instruction the
    single-turn assistant would have seen). `input`: the raw sample input. `metadata`: keep the
    sample's own metadata `intent` (error if missing).
    """
    if source not in INTENT_SOURCES:
        raise UsageError(f"intent={source!r}: use one of {', '.join(INTENT_SOURCES)}.")

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        if source == "metadata":
            intent = state.metadata.get("intent")
            if not isinstance(intent, str) or not intent.strip():
                raise ConfigError(
                    f"Sample {state.sample_id!r} has no metadata 'intent' (intent='metadata'); use "
                    "intent='prompt' to build it from the task's prompt."
                )
        elif source == "input":
            intent = state.input_text
        else:
            intent = _user_text(state)
        if not intent.strip():
            raise ConfigError(f"Sample {state.sample_id!r}: the intent built from {source!r} is empty.")
        state.metadata["intent"] = intent
        state.metadata["intent_source"] = source
        return state

    return solve


def _describe_simulator(simulator: Any) -> Any:
    if isinstance(simulator, str | dict):
        return simulator
    return getattr(simulator, "name", type(simulator).__name__)


def with_simulated_user(
    task: Task,
    simulator: Any = "userlm",
    max_turns: int = 8,
    *,
    intent: IntentSource = "prompt",
    user_model: str | None = None,
    allow: Sequence[str] = (),
    setting: str | None = None,
    **solver_args: Any,
) -> Task:
    """Return `task` made multi-turn: a simulated user (intent = the task's instruction) replaces generate().

    Args:
        task: The task to wrap. It is modified in place (Inspect's `task_with` idiom) and returned.
        simulator: Passed to `simulated_user` (preset name, YAML path, dict or Simulator object).
        max_turns: Cap on simulated user turns.
        intent: Where the intent comes from: "prompt" (default; the templated user prompt), "input"
            (the raw sample input) or "metadata" (the sample's own metadata `intent`).
        user_model: Optional model for role `user` (e.g. "litellm/openai/gpt-4o-mini"), merged into the
            task's model_roles; `--model-role user=...` on the CLI still overrides it.
        allow: Extra registered solver names you vouch only shape messages (see `plan_message_steps`).
        setting: Label `userlm-plugin compare` groups runs by (recorded in the task metadata). Default: the
            simulator's name (`userlm`, `prompted`, ...), so runs with different simulators never share a row.
        **solver_args: Further `simulated_user` arguments (e.g. `stop_when`, `assistant`).
    """
    from .conversation import simulated_user  # lazy: the solver module may import heavier simulator code
    from .simulators._common import roles_bound_by_task
    from .simulators.presets import load_simulator

    if not isinstance(task, Task):
        raise TypeError(f"task: expected an inspect_ai Task, got {type(task).__name__}.")
    if not isinstance(max_turns, int) or max_turns < 1:
        raise UsageError(f"max_turns={max_turns!r}: must be a positive integer.")
    if intent not in INTENT_SOURCES:
        raise UsageError(f"intent={intent!r}: use one of {', '.join(INTENT_SOURCES)}.")
    pre_steps = plan_message_steps(task, allow=allow)
    try:
        sim = load_simulator(simulator)
    except ConfigError as ex:
        raise UsageError(str(ex)) from ex
    label = setting or sim.name
    original = task.name
    short = (
        registry_unqualified_name(task)
        if is_registry_object(task) and task_registered_name(task) is None
        else original
    )
    roles = dict(task.model_roles or {})
    if user_model is not None:
        roles["user"] = user_model
    wrap_info = {
        "wrapped_task": original,
        "task_args": _task_args(task),
        "simulator": _describe_simulator(simulator),
        "max_turns": max_turns,
        "intent_source": intent,
        "message_steps": [_step_name(s) for s in pre_steps],
        "setting": label,
    }
    with roles_bound_by_task(roles):  # the wrapped task binds these when it runs, not now
        conversation = simulated_user(simulator=sim, max_turns=max_turns, **solver_args)
    wrapped = task_with(
        task,
        solver=chain(*pre_steps, set_intent(intent), conversation),
        model_roles=roles or None,
        name=f"{short}{WRAPPED_SUFFIX}",
        tags=[*(task.tags or []), "simulated_user", f"simulator:{sim.name}", f"setting:{label}"],
        metadata={**(task.metadata or {}), WRAP_METADATA_KEY: wrap_info},
    )
    # the viewer's task column: the setting beside the task, not a cut-off task_args column
    set_task_display_name(wrapped, f"{short} · {label}" + (f" ({sim.name})" if label != sim.name else ""))
    return wrapped


def _task_args(task_: Task) -> dict[str, Any]:
    """The wrapped task's own arguments, defaults included (what its unwrapped log shows as task_args), so a
    report can check the single-turn and simulated runs used the same eval settings."""
    import json

    from ._inspect_compat import resolve_task_args, task_all_params_attr

    args = getattr(task_, task_all_params_attr(), None) or resolve_task_args(task_)
    return json.loads(json.dumps(args, default=str))


def _load_task(spec: str, task_args: dict[str, Any]) -> Task:
    """Create the task named by `spec`: a registry name (`inspect_evals/gsm8k`) or `file.py[@name]`."""
    from ._inspect_compat import load_tasks

    tasks = load_tasks([spec], task_args)
    if len(tasks) != 1:
        raise UsageError(
            f"-T task={spec!r} resolved to {len(tasks)} tasks; name exactly one (e.g. 'file.py@task_name')."
        )
    return tasks[0]


SIMULATE_ARGS = ("task", "simulator", "max_turns", "setting", "intent", "user_model", "allow")
"""`simulate`'s own -T arguments; every other one goes to the wrapped task."""


def _task_params(name: str) -> tuple[list[str], bool] | None:
    """(parameter names, whether it takes **kwargs) of the registered task `name`; None when not registered."""
    import inspect

    from ._inspect_compat import task_function

    function = task_function(name)
    if function is None:
        return None
    params = inspect.signature(function).parameters.values()
    names = [p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    return names, any(p.kind == p.VAR_KEYWORD for p in params)


def check_task_args(spec: str, name: str, task_args: dict[str, Any]) -> None:
    """A `UsageError` naming every -T argument that neither `simulate` nor the wrapped task `name` takes (Inspect
    itself only logs "param not used" and runs on, so `-T simulatr=prompted` would silently use the default)."""
    found = _task_params(name)
    if found is None or found[1]:
        return  # unknown to the registry (checked after loading) or takes **kwargs
    params = found[0]
    unknown = [key for key in task_args if key not in params]
    if not unknown:
        return
    problems = []
    for key in unknown:
        close = difflib.get_close_matches(key, [*SIMULATE_ARGS, *params], n=1)
        problems.append(f"-T {key}" + (f" (did you mean -T {close[0]}?)" if close else ""))
    raise UsageError(
        f"{', '.join(problems)}: not an argument of simulate or of {spec}. simulate takes "
        f"{', '.join(SIMULATE_ARGS)}; {spec} takes {', '.join(params) or 'no arguments'}."
    )


def _looks_like_file(spec: str) -> bool:
    path = spec.split("@", 1)[0]
    return (
        path.endswith((".py", ".ipynb", ".yaml", ".yml")) or "/" in path and resolve_user_path(path).exists()
    )


@task
def simulate(
    task: str,
    simulator: str = "userlm",
    max_turns: int = 8,
    setting: str | None = None,
    intent: str = "prompt",
    user_model: str | None = None,
    allow: str | list[str] | None = None,
    **task_args: Any,
) -> Task:
    """Any existing task, with a simulated user in place of its single generate step.

    `inspect eval userlm_plugin/simulate -T task=inspect_evals/gsm8k -T simulator=userlm -T fewshot=0`:
    `task` names the task (registry name or `file.py@name`); every other -T argument must be one the wrapped
    task takes (e.g. gsm8k's `fewshot`, humaneval's `sandbox=local`): anything else is an error that names it,
    before any model loads. `setting` is the label `userlm-plugin compare` groups runs by (default: the
    simulator's name).
    """
    if not isinstance(task, str) or not task.strip():
        raise UsageError("-T task: name the task to wrap, e.g. -T task=inspect_evals/gsm8k")
    if intent not in INTENT_SOURCES:
        raise UsageError(f"-T intent={intent!r}: use one of {', '.join(INTENT_SOURCES)}.")
    if not _looks_like_file(task):
        check_task_args(task, task, task_args)  # before the wrapped task builds its dataset
    inner = _load_task(task, task_args)
    check_task_args(task, registry_info(inner).name if is_registry_object(inner) else task, task_args)
    allow_list = [allow] if isinstance(allow, str) else list(allow or [])
    return with_simulated_user(
        inner,
        simulator=simulator,
        max_turns=max_turns,
        intent=intent,  # type: ignore[arg-type]
        user_model=user_model,
        allow=allow_list,
        setting=setting,
    )
