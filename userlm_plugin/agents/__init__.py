"""Simulated users for agents (docs/agents.md): Inspect's `ask_user` tool and react's `on_continue` hook, answered
by any of our simulators through the `user` role.

- `simulated_ask_user()`: the `ask_user` tool, same name, arguments and answers as Inspect's.
- `simulated_continue()`: an `on_continue` handler in which the simulated user replies to the agent or ends.
Inside `simulated_user(..., assistant=<agent>)` both reach the solver's simulated user (one per sample).
"""

from .ask_user import simulated_ask_user
from .talk_back import simulated_continue

__all__ = ["simulated_ask_user", "simulated_continue"]
