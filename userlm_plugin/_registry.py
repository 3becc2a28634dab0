"""Imported by Inspect on every run (entry point `inspect_ai`): registrations only.

Must stay light: no torch, transformers or litellm at import (tests/test_import_light.py checks this).
"""

# ruff: noqa: F401
from .conversation import simulated_user
from .providers import litellm, userlm
from .scoring.code import code_scorer
from .scoring.judges import intent_adherence, intent_coverage, role_adherence
from .scoring.math import math_scorer
from .scoring.quality import (
    conversation_variety,
    first_turn_quality,
    guardrail_activity,
    intent_decomposition,
    termination,
)
from .scoring.reliability import aptitude, ended_correct, performance, turns_used, unreliability
from .wrap import simulate
