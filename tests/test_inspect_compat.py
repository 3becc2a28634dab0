"""Every private Inspect API the plugin uses is reached through `userlm_plugin._inspect_compat`; this test touches
each one, so an Inspect upgrade that moves or changes one fails here, loudly, instead of in a user's run."""

from __future__ import annotations

import ast
from pathlib import Path

from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.solver import chain, generate, system_message

from userlm_plugin import _inspect_compat as compat

PACKAGE = Path(__file__).parents[1] / "userlm_plugin"


def test_every_private_name_resolves() -> None:
    for name in compat.__all__:
        assert getattr(compat, name) is not None, name
    assert issubclass(compat.PrerequisiteError, Exception)
    assert compat.task_all_params_attr()


def test_chain_steps_and_task_name() -> None:
    steps = [system_message("hi"), generate()]
    assert compat.chain_steps(chain(*steps)) == steps
    assert compat.chain_steps(generate()) is None
    assert compat.task_registered_name(Task(dataset=[Sample(input="x")], name="named")) == "named"


def test_resolve_and_load_tasks(tmp_path: Path) -> None:
    @task
    def compat_probe_task(n: int = 3) -> Task:
        return Task(dataset=[Sample(input="x")] * n)

    created = compat_probe_task(n=2)
    assert compat.resolve_task_args(created)["n"] == 2
    file = tmp_path / "probe_task.py"
    file.write_text(
        "from inspect_ai import Task, task\nfrom inspect_ai.dataset import Sample\n\n"
        "@task\ndef probe(n: int = 1):\n    return Task(dataset=[Sample(input='x')] * n)\n"
    )
    [loaded] = compat.load_tasks([f"{file}@probe"], {"n": 4})
    assert len(loaded.dataset) == 4


def test_no_private_inspect_imports_outside_the_shim() -> None:
    """The rule the shim exists for: `inspect_ai._*` and `inspect_ai.<pkg>._*` only in _inspect_compat.py."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "_inspect_compat.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("inspect_ai"):
                if any(part.startswith("_") for part in node.module.split(".")[1:]):
                    offenders.append(f"{path.relative_to(PACKAGE)}: from {node.module}")
    assert not offenders, offenders


def test_ask_user_helpers() -> None:
    """What our `ask_user` borrows from Inspect's: its schema clean-up, its answer serializer, its InputEvent."""
    from inspect_ai.log import transcript

    assert compat.normalize_schema_types({"type": "OBJECT", "properties": {"a": {"type": "STRING"}}}) == {
        "type": "object",
        "properties": {"a": {"type": "string"}},
    }
    assert compat.to_json_str_safe({"a": 1, "b": "é"}) == '{\n  "a": 1,\n  "b": "é"\n}'
    from acp.schema import ElicitationSchema

    schema = ElicitationSchema.model_validate({"type": "object", "properties": {"a": {"type": "string"}}})
    before = len(transcript().events)
    compat.record_input_event("Which?", schema, "accepted", {"a": "x"})
    [event] = transcript().events[before:]
    assert event.event == "input" and event.outcome == "accepted" and event.content == {"a": "x"}
    assert event.input == "Which?\n  a: x" and [f.name for f in event.fields] == ["a"]


def test_base_url_logged_as_given_tells_the_main_model_from_a_role() -> None:
    """Inspect logs the main model's explicit base URL itself (eval.model_base_url), a role's from the ModelAPI:
    the providers refuse credentials only in the first (docs/grading.md#secrets-in-logs)."""
    from inspect_ai._cli.util import parse_model_role_cli_args, parse_model_spec_cli_args
    from inspect_ai.model import GenerateConfig, ModelAPI, get_model, modelapi
    from inspect_ai.model._model import resolve_models

    seen: list[bool] = []

    @modelapi(name="compat_probe")
    def probe() -> type[ModelAPI]:
        class Probe(ModelAPI):
            def __init__(self, model_name: str, base_url: str | None = None, **kwargs: object) -> None:
                seen.append(compat.base_url_logged_as_given())
                super().__init__(model_name, base_url=base_url, config=GenerateConfig())

            async def generate(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
                raise NotImplementedError

        return Probe

    resolve_models("compat_probe/x", model_base_url="http://h/v1")  # --model, eval(model=...)
    parse_model_spec_cli_args(("{model: compat_probe/x, base_url: 'http://h/v1'}",))  # --model-spec
    assert seen == [True, True]
    parse_model_role_cli_args(("user={model: compat_probe/x, model_args: {base_url: 'http://h/v1'}}",))
    get_model("compat_probe/x", base_url="http://h/v1", memoize=False)  # a Model built in Python
    assert seen == [True, True, False, False]


def test_the_sandbox_proxy_can_be_unwrapped_and_silenced() -> None:
    local = compat.LocalSandboxEnvironment()
    proxy = compat.SandboxEnvironmentProxy(local)
    assert compat.unwrapped_sandbox(proxy) is local and compat.unwrapped_sandbox(local) is local
    with compat.sandbox_events_off(proxy):
        assert proxy._events is False
    assert proxy._events is True
    with compat.sandbox_events_off(local):
        pass
