"""Resolve file paths users pass as task/solver arguments (`-T data=...`, `-T simulator=my.yaml`, replay logs).

Inspect changes the working directory to a task file's folder while it builds the task, so a relative path
typed at the shell (`inspect eval evals/math_sharded.py -T data=data/lic.json`) would otherwise be looked up
under `evals/`. The shell's directory survives in `$PWD` (os.chdir does not touch it).
"""

from __future__ import annotations

import os
from pathlib import Path


def resolve_user_path(path: str | os.PathLike[str]) -> Path:
    """`path` as the user meant it: as given when it exists (or is absolute), else relative to the directory
    the command was started in. Returns the path as given when neither exists, so errors name what was typed."""
    given = Path(path).expanduser()
    if given.is_absolute() or given.exists():
        return given
    shell_dir = os.environ.get("PWD")
    if shell_dir and (candidate := Path(shell_dir) / given).exists():
        return candidate
    return given
