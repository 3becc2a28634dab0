"""Plumbing shared by the LLM-backed simulators: prompt files, seeds, and the simulator's own model call.

Kept apart from the simulators so each of them stays one readable policy (who says what next), and so every
model-backed simulator calls its model the same way: through a model *role* (`user` by default, so
`--model-role user=...` picks the model), with its own sampling settings (Inspect's `--temperature` etc. only reach
the model under test; docs/inspect.md), and with a per-sample/epoch/turn seed when one is set.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from importlib import resources
from typing import Any, Generic, TypeVar
from weakref import WeakSet

import yaml
from inspect_ai.log import transcript
from inspect_ai.model import ChatMessage, GenerateConfig, Model, ModelOutput, get_model, model_roles
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .base import SimulationContext

ConfigT = TypeVar("ConfigT", bound=BaseModel)

USERLM_INTENT_PREFIX = "You are a user chatting with an assistant language model to"
"""How every UserLM training intent starts (arXiv 2510.06552 §2; docs/userlm.md). Prompted baselines want the goal after it."""


@cache
def load_prompts(name: str) -> dict[str, Any]:
    """Read `simulators/prompts/<name>.yaml` (package data; prompts never live inline in code)."""
    text = resources.files(__package__).joinpath("prompts", f"{name}.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"prompt file prompts/{name}.yaml must hold a mapping, got {type(data).__name__}")
    return data


def render(template: str, **values: str) -> str:
    """Fill `{name}` placeholders in ONE pass over the template.

    Not `str.format`: prompt files contain literal JSON braces, and intents may contain braces too. Not one
    `str.replace` per name either: a value is text from the conversation (an assistant turn, the intent), and a
    value that contains another placeholder, say an assistant writing `{unrevealed}`, would then be filled in turn
    and leak what the simulator must not show (the hidden shards). Values are inserted verbatim, never re-read.
    """
    if not values:
        return template
    pattern = re.compile("|".join(re.escape("{" + key + "}") for key in values))
    return pattern.sub(lambda match: values[match.group(0)[1:-1]], template)


def intent_goal(intent: str) -> str | None:
    """The goal part of a UserLM-style intent ("You are a user chatting ... to <goal>"), else None."""
    stripped = intent.strip()
    if stripped.lower().startswith(USERLM_INTENT_PREFIX.lower()):
        goal = stripped[len(USERLM_INTENT_PREFIX) :].strip().lstrip(":-").strip()
        return goal.rstrip(".") or None
    return None


_JSON_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)
ModelT = TypeVar("ModelT", bound=BaseModel)


def parse_json_object(raw: str, schema: type[ModelT], strict: bool = False) -> ModelT:
    """The JSON object in an LLM reply (a ```json fence allowed), validated against `schema` (`strict`: no
    type coercion, e.g. a number is not accepted for a string field).

    Raises ValueError saying what is wrong; the JSON-replying simulators and the `grader` role keep it as the
    reason a reply was rejected."""
    text = raw.strip()
    if fenced := _JSON_FENCE.search(text):
        text = fenced.group(1).strip()
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        raise ValueError("no JSON object in the reply")
    try:
        data = json.loads(text[start : end + 1])
    except json.JSONDecodeError as ex:
        raise ValueError(f"invalid JSON: {ex.msg}") from ex
    try:
        return schema.model_validate(data, strict=strict)
    except ValidationError as ex:
        fields = ", ".join(f"{k}: {v.annotation.__name__}" for k, v in schema.model_fields.items())  # type: ignore[union-attr]
        raise ValueError(f"wrong fields (need {fields}): {data!r:.200}") from ex


_QUOTES = [('"', '"'), ("'", "'"), ("\u201c", "\u201d")]


def clean_draft(text: str) -> str:
    """Tidy a prompted model's draft user turn: strip whitespace, a leading "User:" label and wrapping quotes
    (instruction-tuned models often quote the message they were asked to write)."""
    text = text.strip()
    text = re.sub(r"^\s*(user|human|me)\s*:\s*", "", text, flags=re.IGNORECASE)
    for left, right in _QUOTES:
        if len(text) >= 2 and text.startswith(left) and text.endswith(right) and text.count(left) <= 2:
            text = text[1:-1].strip()
    return text


def derive_seed(base: int, ctx: SimulationContext, attempt: int = 0) -> int:
    """A distinct, reproducible seed per sample, epoch, user turn and resample attempt.

    One fixed seed for every call would make every resample of a rejected draft identical and every turn of
    every sample share its randomness.
    """
    key = f"{base}:{ctx.sample_id}:{ctx.epoch}:{ctx.turn}:{attempt}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=4).digest(), "big") & 0x7FFFFFFF


def eval_seed() -> int | None:
    """The eval's `--seed`, if set. Role models never receive it (docs/inspect.md), so simulators derive theirs from it."""
    from .._inspect_compat import active_generate_config

    return active_generate_config().seed


class ConfiguredSimulator(Generic[ConfigT]):
    """Base of the simulators built from a pydantic settings model (their preset schema).

    Holds the settings and describes the simulator as `{"simulator": name, **settings}`, the record the solver logs
    as `Conversation.simulator_config`, so every simulator's log entry has the same form. Each simulator's factory
    (`userlm_user(...)`, ...) takes exactly its config's fields, with the same defaults, and passes `**locals()`
    to the config (tests/test_simulators.py checks that they agree), so a setting is defined once.
    """

    name: str
    preset: str | None = None
    """The preset name or file `load_simulator` built this simulator from (logged in `simulator_config`)."""

    def __init__(self, config: ConfigT) -> None:
        self.config = config

    def describe(self) -> dict[str, Any]:
        return {"simulator": self.name, **self.config.model_dump(mode="json")}

    def preflight(self) -> None:
        """Checks that can run before any sample starts (`simulated_user` calls this while the task is built)."""
        if isinstance(self.config, ModelSettings):
            self.config.check_fallback(self.name)


class ModelSettings(BaseModel):
    """How an LLM-backed simulator calls its model (the fields every model-backed preset accepts)."""

    model_config = ConfigDict(extra="forbid")

    role: str = "user"
    """Inspect model role the simulator's model is bound to (`--model-role user=...`)."""
    model: str | None = None
    """Model used when the role is not bound. None: Inspect's fallback, the model under test itself."""
    temperature: float | None = Field(default=1.0, ge=0)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=512, gt=0)
    seed: int | None = None
    """Base seed; per-turn seeds are derived from it (or from the eval's `--seed` when this is None)."""

    def check_fallback(self, simulator: str) -> None:
        """Before any sample starts: when the eval binds no `role` model and the fallback is a `userlm/` model
        that is not here (a hub id never downloaded, a folder that does not exist), raise one `UsageError` that
        says how to bind the role or download the model, instead of a traceback in every sample.

        Checked only while an eval sets up its tasks (the eval's roles are known then), never for roles the task
        binds itself (`roles_bound_by_task`); costs a look at the local hub cache, no network."""
        from .._inspect_compat import eval_being_set_up
        from ..errors import UsageError

        if not eval_being_set_up() or self.role in model_roles() or self.role in _task_roles.get():
            return
        missing = missing_userlm_model(self.model)
        if missing is None:
            return
        name = (self.model or "").removeprefix("userlm/")
        download = "" if looks_like_folder(name) else f", or download it first: hf download {name}"
        raise UsageError(
            f"simulated_user({simulator!r}): no `{self.role}` model role given, and the default "
            f"{self.model} {missing}: pass --model-role {self.role}=<model> (for example --model-role "
            f"{self.role}=userlm/.cache/smollm2-135m-instruct){download}"
        )

    def get_model(self) -> Model:
        """The model bound to `role`; when none is, `model` (else the model under test), announced once per
        process as a warning and once per sample in the transcript, so a forgotten `--model-role` is never
        silent. The fallback is still labelled with the role, so its calls show as "Model Call (user)" and
        count under `role_usage`, not as the assistant's."""
        bound = model_roles().get(self.role)
        if bound is not None:
            return get_model(role=self.role)
        fallback = self.model if self.model is not None else get_model()
        model = get_model(role=self.role, default=fallback)
        announce_fallback(self.role, str(model), under_test=self.model is None)
        return model

    def generate_config(self, ctx: SimulationContext, attempt: int = 0, **extra: Any) -> GenerateConfig:
        base = self.seed if self.seed is not None else eval_seed()
        return GenerateConfig(
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=self.max_tokens,
            seed=derive_seed(base, ctx, attempt) if base is not None else None,
            **extra,
        )

    async def generate(
        self, messages: list[ChatMessage], ctx: SimulationContext, attempt: int = 0, **extra: Any
    ) -> tuple[ModelOutput, dict[str, Any]]:
        """One call to the simulator's model: its output and the facts the turn record keeps about the call
        (`call_facts`). Token/turn-limit suspension is the solver's job (it wraps every `next_turn`), so a
        simulator used outside the solver still works."""
        model = self.get_model()
        config = self.generate_config(ctx, attempt, **extra)
        output = await model.generate(messages, config=config)
        return output, call_facts(model, config)


_task_roles: ContextVar[frozenset[str]] = ContextVar("userlm_task_roles", default=frozenset())


@contextmanager
def roles_bound_by_task(roles: Collection[str]) -> Iterator[None]:
    """Roles a task binds itself (`Task(model_roles=...)`, `simulate -T user_model=`): Inspect applies them only
    when the task runs, so a simulator built now must not report them missing (`ModelSettings.check_fallback`)."""
    token = _task_roles.set(_task_roles.get() | frozenset(roles))
    try:
        yield
    finally:
        _task_roles.reset(token)


def looks_like_folder(name: str) -> bool:
    from ..runtime.template import looks_local

    return looks_local(name)


def missing_userlm_model(model: str | None) -> str | None:
    """Why `userlm/<name>` cannot load here (`is not downloaded`, `is no folder here`), or None when it can or
    is not a `userlm/` weights model (a server `base_url` is given per role, not in this name)."""
    if not model or not model.startswith("userlm/"):
        return None
    name = model.removeprefix("userlm/")
    if looks_like_folder(name):
        from pathlib import Path

        return None if Path(name).expanduser().is_dir() else "is no folder here"
    from ..runtime.hub import in_hub_cache

    return (
        None if in_hub_cache(name, ("config.json",)) else "is not downloaded (it needs the Hugging Face hub)"
    )


_announced_roles: set[str] = set()
_announced_transcripts: WeakSet[Any] = WeakSet()
logger = logging.getLogger(__name__)


def announce_fallback(role: str, model: str, under_test: bool) -> None:
    """Say that role `role` is unbound and `model` plays it: a warning once per process, an info event once per
    sample transcript."""
    who = "the model under test" if under_test else "the simulator's default"
    message = (
        f"No `{role}` model role given: using {model} ({who}) for the simulated user. "
        f"Bind one with --model-role {role}=<model>."
    )
    if role not in _announced_roles:
        _announced_roles.add(role)
        logger.warning(message)
    current = transcript()
    if current not in _announced_transcripts:
        _announced_transcripts.add(current)
        current.info(message, source="simulated_user")


def call_facts(model: Model, config: GenerateConfig) -> dict[str, Any]:
    """What a turn record says about the model call that produced it."""
    facts: dict[str, Any] = {"model": str(model)}
    if config.seed is not None:
        facts["seed"] = config.seed
    return facts
