"""Inspect imports every plugin's registry on every run (notes G7): ours must not drag in heavy libraries."""

import json
import subprocess
import sys

HEAVY = ["torch", "transformers", "litellm", "tokenizers", "huggingface_hub"]


def test_registry_import_is_light() -> None:
    code = (
        "import sys, json, userlm_plugin._registry, userlm_plugin;"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_providers_are_registered_with_inspect() -> None:
    from inspect_ai._util.registry import registry_lookup

    import userlm_plugin._registry  # noqa: F401

    assert registry_lookup("modelapi", "userlm") is not None
    assert registry_lookup("modelapi", "litellm") is not None
