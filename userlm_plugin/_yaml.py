"""YAML files written by users (simulator presets): plain data only, no aliases, a bounded size.

Why: a YAML alias (`*name`) repeats a node defined once, so a 1 KB file of aliases of aliases (the "billion laughs")
stands for gigabytes. PyYAML's `safe_load` builds aliases as shared references, cheaply; anything that then walks
the result (pydantic validation, the settings written to the log) expands them. No preset needs an alias, so none
is accepted: the loader stops at the first one, before building anything, and says where it is. The size cap bounds
what a file without aliases can hold. PyYAML has no option for either (its `safe_load` allows aliases), so this is
a small subclass of its `SafeLoader`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

MAX_USER_YAML_BYTES = 1 << 20
"""A preset is a few hundred bytes; 1 MiB leaves room for long scripted turns and nothing pathological."""


class _NoAliasLoader(yaml.SafeLoader):
    """`SafeLoader` that refuses aliases (and so merge keys `<<: *name`, which are aliases too)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.events.AliasEvent):
            event = self.peek_event()
            raise ConfigError(
                f"{self.name}: line {event.start_mark.line + 1}: YAML aliases (*{event.anchor}) are not accepted "
                "(one alias can stand for gigabytes); write the value out where it is used."
            )
        return super().compose_node(parent, index)


def load_user_yaml(path: Path) -> Any:
    """The data in a user's YAML file; a `ConfigError` naming the file for one that is too big, not YAML, or
    uses aliases."""
    size = path.stat().st_size
    if size > MAX_USER_YAML_BYTES:
        raise ConfigError(
            f"{path}: {size:,} bytes is more than a preset file may hold ({MAX_USER_YAML_BYTES:,} bytes)."
        )
    return load_user_yaml_text(path.read_text(encoding="utf-8", errors="replace"), str(path))


def load_user_yaml_text(text: str, name: str) -> Any:
    """The data in YAML text a user wrote (a preset file's, a `-M key=value` value); a `ConfigError` naming `name`
    for text that is not YAML or uses aliases."""
    loader = _NoAliasLoader(text)
    loader.name = name
    try:
        return loader.get_single_data()
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{name}: {where}not valid YAML ({problem}).") from None
    finally:
        loader.dispose()


__all__ = ["MAX_USER_YAML_BYTES", "load_user_yaml", "load_user_yaml_text"]
