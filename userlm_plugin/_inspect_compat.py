"""Every private Inspect API the plugin still needs, in one place.

Inspect's public API (`inspect_ai`, `inspect_ai.model`, `.solver`, `.scorer`, `.util`, `.log`, `.agent`) is used
everywhere else. What is reached here has no public equivalent in the Inspect version we support (pyproject.toml
pins the range; constraints.txt the tested version). `tests/test_inspect_compat.py` touches every name, so an
Inspect upgrade that moves one fails that test loudly instead of breaking a run.

Light at import: the eval loader is imported only by the functions that need it.
"""

from __future__ import annotations

from typing import Any

from inspect_ai._util.error import PrerequisiteError
from inspect_ai._util.registry import is_registry_object, registry_unqualified_name
from inspect_ai.agent._agent import agent_display_name
from inspect_ai.model._generate_config import active_generate_config
from inspect_ai.solver._chain import Chain
from inspect_ai.solver._task_state import sample_state
from inspect_ai.util._sandbox.events import SandboxEnvironmentProxy
from inspect_ai.util._sandbox.local import LocalSandboxEnvironment


def chain_steps(solver: Any) -> list[Any] | None:
    """The solvers inside a `chain(...)` (None when `solver` is not a chain). Inspect keeps them private."""
    return list(solver._solvers) if isinstance(solver, Chain) else None


def task_registered_name(task: Any) -> str | None:
    """The name a `Task` was given explicitly (`Task(name=...)`), else None. Inspect keeps it private."""
    return getattr(task, "_name", None)


def resolve_task_args(task: Any) -> dict[str, Any]:
    """The arguments a registered task was created with (Inspect's own resolution, defaults included)."""
    from inspect_ai._eval.loader import resolve_task_args as _resolve

    return _resolve(task)


def task_all_params_attr() -> str:
    """The attribute under which Inspect records every parameter a task function accepts."""
    from inspect_ai._eval.task.constants import TASK_ALL_PARAMS_ATTR

    return TASK_ALL_PARAMS_ATTR


def load_tasks(specs: list[str], task_args: dict[str, Any]) -> list[Any]:
    """Inspect's own task loader (`inspect eval <spec>` resolution: registry names, files, `file@task`)."""
    from inspect_ai._eval.loader import load_tasks as _load

    return _load(specs, task_args=task_args)


def set_task_display_name(task: Any, display_name: str) -> None:
    """Give an existing `Task` a display name (`task_with` has no parameter for it; Task keeps it private)."""
    task._display_name = display_name


def task_function(name: str) -> Any | None:
    """The registered `@task` function called `name` (plugins' entry points loaded first), else None."""
    from inspect_ai._util.registry import registry_lookup

    return registry_lookup("task", name)


def _get_model_frame() -> Any | None:
    """The frame of the Inspect `get_model` call that is creating a model right now (None outside one)."""
    import sys

    from inspect_ai.model._model import get_model

    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code is get_model.__code__:
            return frame
        frame = frame.f_back
    return None


def model_args_being_created() -> dict[str, Any] | None:
    """The `model_args` dict Inspect's `get_model` keeps on the `Model` it is creating, which Inspect logs as
    `eval.model_args` (and a role's args); call it from a ModelAPI constructor to take credentials out of the
    log. None when not called under `get_model` (the API was constructed directly)."""
    frame = _get_model_frame()
    args = frame.f_locals.get("model_args") if frame is not None else None
    return args if isinstance(args, dict) else None


_MAIN_MODEL_CREATORS = {
    ("inspect_ai.model._model", "resolve_models.<locals>.resolve_model"),  # --model, eval(model="...")
    ("inspect_ai._cli.util", "parse_model_spec_cli_args"),  # --model-spec
    ("inspect_ai._eval.eval", "eval_retry_async"),  # eval-retry's model
}


def base_url_logged_as_given() -> bool:
    """Whether Inspect is creating an eval's main model from a name, whose explicit base URL (`--model-base-url`)
    it then writes to the log itself as `eval.model_base_url`, after the ModelAPI exists (a role's base URL is
    read from the ModelAPI instead, which a provider can clean). Call it from a ModelAPI constructor."""
    frame = _get_model_frame()
    caller = frame.f_back if frame is not None else None
    if caller is None:
        return False
    return (caller.f_globals.get("__name__"), caller.f_code.co_qualname) in _MAIN_MODEL_CREATORS


def eval_being_set_up() -> bool:
    """Whether an eval is running or resolving its tasks (Inspect has set the active model), so `model_roles()`
    holds the eval's roles; False for a task built outside `eval()` (roles are then not known yet)."""
    from inspect_ai.model._model import active_model_context_var

    return active_model_context_var.get(None) is not None


def set_active_model_event_call(*args: Any, **kwargs: Any) -> Any:
    """Attach a `ModelCall` to the model event being recorded (for providers that report calls themselves)."""
    from inspect_ai.log._samples import set_active_model_event_call as _set

    return _set(*args, **kwargs)


def sample_active() -> Any | None:
    """Inspect's record of the sample running in this context (`ActiveSample`), else None: one object per running
    sample, dropped when it ends, so what hangs off it weakly lives exactly as long as the sample."""
    from inspect_ai.log._samples import sample_active as _active

    return _active()


def normalize_schema_types(schema: Any) -> Any:
    """`ask_user`'s own schema clean-up (JSON Schema `type` values lowercased, for providers that send "OBJECT"),
    so our `ask_user` accepts exactly the schemas Inspect's does (docs/agents.md#the-ask_user-tool)."""
    from inspect_ai.tool._tools._ask_user import _normalize_schema_types

    return _normalize_schema_types(schema)


def to_json_str_safe(value: Any) -> str:
    """The JSON text Inspect's `ask_user` returns for an accepted answer (its own serializer: indent 2, UTF-8 kept)."""
    from inspect_ai._util.json import to_json_str_safe as _to_json

    return _to_json(value)


def record_input_event(message: str, schema: Any, outcome: str, content: dict[str, Any] | None) -> None:
    """Write the `InputEvent` Inspect's `request_input` writes once a person answers, so a simulated answer shows in
    the viewer exactly as a human one (Inspect builds it in a private helper)."""
    from inspect_ai.util import InputRequest, InputResult
    from inspect_ai.util._input.request import _record_input_event

    _record_input_event(
        InputRequest(message=message, schema=schema),
        InputResult(outcome=outcome, content=content),  # type: ignore[arg-type]
    )


def unwrapped_sandbox(env: Any) -> Any:
    """The sandbox behind Inspect's event-recording proxy (what `sandbox()` returns inside a sample)."""
    while isinstance(env, SandboxEnvironmentProxy):
        env = env._sandbox
    return env


def sandbox_events_off(env: Any) -> Any:
    """A context manager under which `env.exec` records no `SandboxEvent`: Inspect logs an exec's input (its
    first 10,000 characters), and the code runner's input holds the tests (docs/grading.md)."""
    import contextlib

    return env.no_events() if isinstance(env, SandboxEnvironmentProxy) else contextlib.nullcontext()


__all__ = [
    "Chain",
    "LocalSandboxEnvironment",
    "SandboxEnvironmentProxy",
    "PrerequisiteError",
    "active_generate_config",
    "agent_display_name",
    "base_url_logged_as_given",
    "chain_steps",
    "eval_being_set_up",
    "is_registry_object",
    "load_tasks",
    "model_args_being_created",
    "normalize_schema_types",
    "record_input_event",
    "sandbox_events_off",
    "unwrapped_sandbox",
    "registry_unqualified_name",
    "resolve_task_args",
    "sample_active",
    "sample_state",
    "set_active_model_event_call",
    "set_task_display_name",
    "task_all_params_attr",
    "task_function",
    "task_registered_name",
    "to_json_str_safe",
]
