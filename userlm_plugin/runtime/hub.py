"""Hub ids when the Hugging Face hub is offline: fail when the model is created, not on its first generate.

With `HF_HUB_OFFLINE=1` (or `TRANSFORMERS_OFFLINE=1`) a hub id that was never downloaded cannot load; before this
check the user model loaded lazily, so the eval ran until the first user turn and then failed each sample (and
Inspect retried it). Reading the local cache costs no network and no import of transformers or torch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..errors import UsageError

_TRUE = {"1", "ON", "YES", "TRUE"}


def hub_offline() -> bool:
    """The hub's own rule (huggingface_hub.constants), read now rather than when huggingface_hub was imported."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.upper() in _TRUE


def in_hub_cache(repo_id: str, filenames: Sequence[str], revision: str | None = None) -> bool:
    """Whether any of `filenames` of `repo_id` is in the local hub cache (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # no huggingface_hub: nothing can have been downloaded through it
        return False
    for filename in filenames:
        try:
            found = try_to_load_from_cache(repo_id, filename, revision=revision)
        except Exception:  # noqa: BLE001 - an id the hub would reject is not in the cache either
            return False
        if isinstance(found, str):
            return True
    return False


def check_offline_hub_id(
    model_name: str, source: str, filenames: Sequence[str], revision: str | None = None
) -> None:
    """Raise a one-line `UsageError` when the hub is offline and `source` (a hub id) was never downloaded."""
    if hub_offline() and not in_hub_cache(source, filenames, revision):
        raise UsageError(
            f"userlm/{model_name}: offline: pass a local folder or download first ({source!r} is not in the "
            f"Hugging Face cache and HF_HUB_OFFLINE is set; run `hf download {source}` while online, or pass the "
            "model's local folder)"
        )


__all__ = ["check_offline_hub_id", "hub_offline", "in_hub_cache"]
