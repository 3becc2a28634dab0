"""Imported by Inspect on every run (entry point `inspect_ai`): registrations only.

Must stay light: no torch, transformers or litellm at import (tests/test_import_light.py checks this).
"""

# ruff: noqa: F401
from .conversation import simulated_user
from .providers import litellm, userlm
from .wrap import simulate
