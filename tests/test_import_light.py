"""Inspect imports every plugin's registry on every run: ours must not drag in heavy libraries."""

import json
import subprocess
import sys

HEAVY = [
    "torch",
    "transformers",
    "litellm",
    "tokenizers",
    "huggingface_hub",
    "sklearn",
    "scipy",
    "spellchecker",
    "wordfreq",
]


def test_registry_import_is_light() -> None:
    code = (
        "import sys, json, userlm_plugin._registry, userlm_plugin;"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_providers_are_registered_with_inspect() -> None:
    """Registered under our package namespace; Inspect matches `--model userlm/...` on the unqualified name."""
    from inspect_ai._util.registry import registry_find, registry_info

    import userlm_plugin._registry  # noqa: F401

    names = {registry_info(o).name for o in registry_find(lambda info: info.type == "modelapi")}
    assert {"userlm_plugin/userlm", "userlm_plugin/litellm"} <= names
