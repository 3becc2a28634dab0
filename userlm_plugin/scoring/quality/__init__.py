"""Is the simulated user human-like? The simulator-quality scorers and metrics of "Flipping the Dialogue" (docs/
metrics.md): first-turn diversity, intent decomposition, termination, conversation variety, guardrail activity
(`scorers.py`, pure functions in `metrics.py`) and the LLM-judged role/intent adherence and coverage (`judges.py`)."""
