"""Keep our registry names right when a stale `userlm_plugin.egg-info` sits in the checkout.

Inspect names a plugin's components `<package>/<name>` only when the package is installed, which it learns from
the first distribution metadata Python finds for `userlm_plugin`. Python searches `sys.path` in order, and the
current folder comes first for `python -m pytest`, scripts and notebooks: a leftover `userlm_plugin.egg-info` from
an old setuptools build there (our build backend writes none) shadows the real install, and `userlm_plugin/simulate`
or `userlm/...` is then "not found". When that leftover exists, this module puts a metadata finder first on
`sys.meta_path` that answers for `userlm_plugin` with the installed distribution (the one an installer wrote), and
warns once so the file gets deleted. Nothing happens when there is no leftover (the usual case: one `stat`). It
runs when imported, and `userlm_plugin/__init__.py` imports it before anything that registers with Inspect.
"""

from __future__ import annotations

import importlib.metadata as metadata
import logging
import sys
from collections.abc import Iterable
from pathlib import Path

DISTRIBUTION = "userlm_plugin"
"""Our distribution's normalized name (`userlm-plugin`)."""

logger = logging.getLogger(__name__)


class _InstalledFirst(metadata.DistributionFinder):
    """Answers metadata lookups of our distribution with the installed one; finds no modules."""

    def __init__(self, installed: metadata.Distribution) -> None:
        self.installed = installed

    def find_spec(self, *args: object, **kwargs: object) -> None:
        return None

    def find_distributions(
        self, context: metadata.DistributionFinder.Context | None = None
    ) -> Iterable[metadata.Distribution]:
        name = context.name if context is not None else None
        if name is not None and name.lower().replace("-", "_").replace(".", "_") == DISTRIBUTION:
            return [self.installed]
        return []


def _installed_by_an_installer(dist: metadata.Distribution) -> bool:
    return dist.read_text("INSTALLER") is not None or dist.read_text("direct_url.json") is not None


def shield_from_stale_egg_info(package_dir: Path) -> bool:
    """Install the finder when `<checkout>/userlm_plugin.egg-info` exists and a real install is found; returns
    whether it did."""
    stale = package_dir.parent / f"{DISTRIBUTION}.egg-info"
    if not stale.is_dir() or any(isinstance(f, _InstalledFirst) for f in sys.meta_path):
        return False
    installed = next(
        (d for d in metadata.distributions(name=DISTRIBUTION) if _installed_by_an_installer(d)), None
    )
    if installed is None:
        return False  # not installed at all: nothing better to offer
    sys.meta_path.insert(0, _InstalledFirst(installed))
    logger.warning(
        f"Ignoring the stale {stale} (a leftover build file that shadows the installed userlm-plugin and would "
        "drop the `userlm_plugin/` prefix from its Inspect names): delete it."
    )
    return True


shield_from_stale_egg_info(Path(__file__).parent)  # on import: `userlm_plugin/__init__.py` imports this first
