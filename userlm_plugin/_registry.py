"""Imported by Inspect on every run (entry point `inspect_ai`): registrations only.

Must stay light: no torch, transformers or litellm at import (tests/test_import_light.py checks this).
"""

# ruff: noqa: F401
from .conversation import simulated_user
from .evals.human_fidelity.scorers import guardrail_fit, human_fidelity, human_perplexity
from .evals.user_perplexity.task import user_token_perplexity
from .providers import litellm, userlm
from .scoring.answers.code import code_scorer
from .scoring.answers.math import math_scorer
from .scoring.answers.reliability import (
    aptitude,
    ended_correct,
    lic_dropped,
    performance,
    turns_used,
    unreliability,
)
from .scoring.quality.calibration import end_calibration
from .scoring.quality.judges import intent_adherence, intent_coverage, role_adherence
from .scoring.quality.scorers import (
    conversation_variety,
    first_turn_quality,
    guardrail_activity,
    intent_decomposition,
    termination,
)
from .wrap import simulate
