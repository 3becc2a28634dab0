"""Who plays the user: the User LM, a prompted assistant (the paper's baselines), Lost in Conversation's
sharded user, or a fixed script. Each implements the `Simulator` protocol in `base.py`."""

from .base import Shard, SimulationContext, Simulator
from .presets import PRESETS, load_simulator, simulator_from_dict
from .prompted import PromptedUser, prompted_user
from .scripted import ScriptedUser, scripted_user
from .sharded import ShardedUser, sharded_user
from .userlm import UserLMUser, userlm_user

__all__ = [
    "PRESETS",
    "PromptedUser",
    "ScriptedUser",
    "Shard",
    "ShardedUser",
    "SimulationContext",
    "Simulator",
    "UserLMUser",
    "load_simulator",
    "prompted_user",
    "scripted_user",
    "sharded_user",
    "simulator_from_dict",
    "userlm_user",
]
