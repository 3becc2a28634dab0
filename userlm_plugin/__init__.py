"""userlm_plugin: realistic simulated users for Inspect AI evals.

Public API: the `simulated_user` solver, simulators, scorers and metrics. Model providers register
themselves with Inspect (`userlm/...`, `litellm/...`) through the `inspect_ai` entry point.
"""

from . import _metadata_guard  # noqa: F401  (first: before any registration below computes our registry names)
from .agents import simulated_ask_user, simulated_continue
from .conversation import simulated_user
from .scoring.answers.code import code_scorer, code_stop_when, extract_function
from .scoring.answers.math import extract_last_number, math_scorer, math_stop_when
from .scoring.answers.reliability import (
    aptitude,
    ended_correct,
    lic_dropped,
    performance,
    turns_used,
    unreliability,
)
from .scoring.answers.runner import RunLimits, RunResult, TestSpec, run_tests
from .scoring.quality.judges import intent_adherence, intent_coverage, role_adherence
from .scoring.quality.scorers import (
    conversation_variety,
    first_turn_quality,
    guardrail_activity,
    intent_decomposition,
    simulation_quality_scorers,
    termination,
)
from .simulators import (
    SimulationContext,
    Simulator,
    load_simulator,
    prompted_user,
    scripted_user,
    sharded_user,
    userlm_user,
)
from .simulators.replay import replay_user
from .turns import END_CONVERSATION, EndReason, Rejection, RejectReason, StopReason, TurnRecord, UserTurn
from .wrap import with_simulated_user

__all__ = [
    "conversation_variety",
    "first_turn_quality",
    "guardrail_activity",
    "intent_adherence",
    "intent_coverage",
    "intent_decomposition",
    "role_adherence",
    "simulation_quality_scorers",
    "termination",
    "replay_user",
    "with_simulated_user",
    "RunLimits",
    "RunResult",
    "TestSpec",
    "aptitude",
    "code_scorer",
    "code_stop_when",
    "ended_correct",
    "extract_function",
    "extract_last_number",
    "lic_dropped",
    "math_scorer",
    "math_stop_when",
    "performance",
    "run_tests",
    "turns_used",
    "unreliability",
    "SimulationContext",
    "Simulator",
    "load_simulator",
    "prompted_user",
    "scripted_user",
    "sharded_user",
    "simulated_ask_user",
    "simulated_continue",
    "simulated_user",
    "userlm_user",
    "END_CONVERSATION",
    "EndReason",
    "RejectReason",
    "Rejection",
    "StopReason",
    "TurnRecord",
    "UserTurn",
]
