"""Code that runs inside the sample's sandbox to grade generated code (see docs/grading.md).

These modules are never imported by the eval process to run anything: `runner.py` reads their source and
ships it with the launcher command, so they work in any sandbox that has a `python3` (the local one, or a
docker container). Hence: stdlib only, and Python >= 3.8 syntax and library.

Two sides, two processes:
- trusted (`launcher`, `judge`, `confine`, `namespace`): the launcher process decides the verdict. It runs
  HumanEval's `check(candidate)` itself and compares call results itself; it never executes candidate code.
- untrusted (`worker`): a fresh interpreter, confined (as root: its own uid, and namespaces of its own where
  bubblewrap works; its own session, rlimits), that loads the candidate's program and answers calls with plain
  data.
`plain` (the data codec) and `wire` (framing) are used by both sides; `preamble` is LiC's import preamble,
kept as data.
"""
