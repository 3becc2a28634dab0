"""Inspect finds our components under `userlm_plugin/...` when Python starts in the repo root (as `python -m
pytest`, scripts and notebooks do: the current folder comes first on sys.path), also with a stale
`userlm_plugin.egg-info` planted there, the leftover of an old setuptools build that used to shadow the install."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
NAMES = {
    "task": ["userlm_plugin/simulate"],
    "modelapi": ["userlm_plugin/userlm", "userlm_plugin/litellm"],
    "solver": ["userlm_plugin/simulated_user"],
    "scorer": ["userlm_plugin/termination", "userlm_plugin/code_scorer"],
}
LOOKUP = f"""
import json, logging
logging.basicConfig(level=logging.WARNING)
from inspect_ai._util.registry import registry_lookup
names = {NAMES!r}
print(json.dumps({{kind: [n for n in found if registry_lookup(kind, n) is None] for kind, found in names.items()}}))
"""


def _missing_names(cwd: Path) -> tuple[dict[str, list[str]], str]:
    """Run the lookup as `python -c` in `cwd` (so '' = cwd is sys.path[0]); (names not found, stderr)."""
    done = subprocess.run(
        [sys.executable, "-c", LOOKUP], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def test_names_resolve_when_python_starts_in_the_repo_root() -> None:
    missing, _ = _missing_names(ROOT)
    assert missing == {kind: [] for kind in NAMES}
    assert not list(ROOT.glob("*.egg-info")), "the build backend must write no egg-info into the checkout"


def _plant_stale_egg_info(root: Path) -> Path:
    """What `pip install -e .` with setuptools left in the checkout."""
    egg = root / "userlm_plugin.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: userlm-plugin\nVersion: 0.1.0\n")
    (egg / "entry_points.txt").write_text("[inspect_ai]\nuserlm_plugin = userlm_plugin._registry\n")
    (egg / "top_level.txt").write_text("userlm_plugin\n")
    (egg / "SOURCES.txt").write_text("pyproject.toml\n")
    return egg


def test_names_resolve_with_a_stale_egg_info_in_the_root(tmp_path: Path) -> None:
    # a mirror of the repo root (the package folder linked in), so the real checkout is never touched
    (tmp_path / "userlm_plugin").symlink_to(ROOT / "userlm_plugin", target_is_directory=True)
    egg = _plant_stale_egg_info(tmp_path)
    missing, stderr = _missing_names(tmp_path)
    assert missing == {kind: [] for kind in NAMES}
    assert f"Ignoring the stale {egg}" in stderr and "delete it" in stderr
