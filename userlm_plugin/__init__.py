"""userlm_plugin: realistic simulated users for Inspect AI evals.

Public API: the `simulated_user` solver, simulators, scorers and metrics. Model providers register
themselves with Inspect (`userlm/...`, `litellm/...`) through the `inspect_ai` entry point.
"""

from .turns import END_CONVERSATION, EndReason, Rejection, RejectReason, StopReason, TurnRecord, UserTurn

__all__ = [
    "END_CONVERSATION",
    "EndReason",
    "RejectReason",
    "Rejection",
    "StopReason",
    "TurnRecord",
    "UserTurn",
]
