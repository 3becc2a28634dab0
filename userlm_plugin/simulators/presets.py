"""Turn a simulator spec — a preset name, a YAML file, a dict, or an object — into a `Simulator`.

This is what `-T simulator=userlm`, `-T simulator=path/to/sim.yaml` and `simulated_user(simulator=...)` go
through. A preset file is a mapping whose `simulator` key names the simulator and whose other keys are that
simulator's settings, e.g.

    simulator: prompted
    style: flattened
    role: user
    temperature: 1.0

Settings are validated against the simulator's pydantic schema (`extra="forbid"`): an unknown key is an error that
names it and lists the allowed keys, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from .._paths import resolve_user_path
from .._yaml import load_user_yaml
from ..errors import ConfigError
from .base import Simulator
from .prompted import PromptedConfig, PromptedUser
from .replay import ReplayConfig, ReplayUser
from .scripted import ScriptedConfig, ScriptedUser
from .sharded import ShardedConfig, ShardedUser
from .userlm import UserLMConfig, UserLMUser


@dataclass(frozen=True)
class Preset:
    """A named simulator: its settings schema, its constructor, and the settings the name implies."""

    schema: type[BaseModel]
    build: Callable[[Any], Simulator]
    defaults: dict[str, Any] = field(default_factory=dict)
    summary: str = ""


PRESETS: dict[str, Preset] = {
    "userlm": Preset(UserLMConfig, UserLMUser, summary="the User LM (UserLM-8b) through the `user` role"),
    "prompted": Preset(
        PromptedConfig, PromptedUser, {"style": "role_flip"}, "a prompted assistant, role-flipped chat"
    ),
    "prompted_flat": Preset(
        PromptedConfig,
        PromptedUser,
        {"style": "flattened"},
        "a prompted assistant, the paper's flattened prompt",
    ),
    "sharded": Preset(ShardedConfig, ShardedUser, summary="Lost in Conversation's sharded user"),
    "scripted": Preset(ScriptedConfig, ScriptedUser, summary="fixed turns or shards in order, no model"),
    "replay": Preset(
        ReplayConfig, ReplayUser, summary="the user turns of an earlier run's log, per sample and epoch"
    ),
}
"""Simulator names accepted by `simulated_user(simulator=...)` and by a preset file's `simulator` key."""


def load_simulator(spec: str | Path | dict[str, Any] | Simulator) -> Simulator:
    """Resolve a simulator spec.

    Args:
        spec: A preset name (see `PRESETS`), a path to a YAML preset file, a preset mapping (`{"simulator": name,
            **settings}`), or a ready `Simulator` object (returned unchanged).
    """
    if isinstance(spec, Simulator):
        return spec
    if isinstance(spec, dict):
        return simulator_from_dict(spec, source="simulator settings")
    if isinstance(spec, str) and spec in PRESETS:
        sim = simulator_from_dict({"simulator": spec}, source=spec)
    elif isinstance(spec, Path) or (
        isinstance(spec, str) and (spec.endswith((".yaml", ".yml")) or resolve_user_path(spec).is_file())
    ):
        sim = simulator_from_dict(_read_yaml(resolve_user_path(spec)), source=str(spec))
    elif isinstance(spec, str):
        close = difflib.get_close_matches(spec, PRESETS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"Unknown simulator {spec!r}. Use a preset name ({_names()}) or the path of a YAML preset file.{hint}"
        )
    else:
        raise ConfigError(
            "simulator must be a preset name, a YAML path, a dict or a Simulator object, "
            f"got {type(spec).__name__}"
        )
    if hasattr(sim, "preset"):
        sim.preset = str(spec)  # type: ignore[attr-defined]
    return sim


def simulator_from_dict(settings: dict[str, Any], source: str = "simulator settings") -> Simulator:
    """Build a simulator from `{"simulator": name, **settings}`, validating the settings strictly."""
    settings = dict(settings)
    name = settings.pop("simulator", None)
    if name is None:
        raise ConfigError(f"{source}: missing key 'simulator' (one of: {_names()}).")
    if name not in PRESETS:
        raise ConfigError(f"{source}: unknown simulator {name!r}. Valid names: {_names()}.")
    preset = PRESETS[name]
    allowed = ["simulator", *preset.schema.model_fields]
    unknown = [key for key in settings if key not in preset.schema.model_fields]
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(map(repr, unknown))} for simulator {name!r}. "
            f"Allowed keys: {', '.join(allowed)}."
        )
    try:
        config = preset.schema.model_validate({**preset.defaults, **settings})
    except ValidationError as ex:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in ex.errors(include_url=False)
        )
        raise ConfigError(f"{source}: invalid settings for simulator {name!r}: {problems}") from ex
    return preset.build(config)


def _read_yaml(path: Path) -> dict[str, Any]:
    """A preset file's mapping: no YAML aliases, at most `MAX_USER_YAML_BYTES` (`_yaml.py`: a 1 KB file of
    aliases can stand for gigabytes)."""
    if not path.is_file():
        raise ConfigError(f"Simulator preset file not found: {path} (cwd: {Path.cwd()})")
    data = load_user_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a simulator preset file must hold a mapping, got {type(data).__name__}")
    return data


def _names() -> str:
    return ", ".join(PRESETS)
