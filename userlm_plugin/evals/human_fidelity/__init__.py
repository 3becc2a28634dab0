"""The human-fidelity eval: real human conversations replayed turn by turn, every simulator measured against the
people on the same prefixes (docs/fidelity.md).

`task.py` builds it; `dataset.py` and `simulatorarena.py` read the conversations; `replay.py` is the solver;
`features.py`, `summary.py`, `discriminator.py` and `guardrail_fit.py` are the metrics as plain functions and
`scorers.py` their Inspect scorers; `correlation.py` is SimulatorArena's rating-correlation protocol; `api.py` runs
the eval from Python and returns the metric table.
"""
