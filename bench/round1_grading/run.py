# FROZEN: round 1's runner call (commit 6cd4a1e), kept ONLY for bench/scoring_throughput.py's side-by-side timing.
# NOT used by userlm_plugin, and NOT safe against hostile code: the candidate ran in the same interpreter as the
# harness that printed the verdict (docs/grading.md).
"""Round 1's `run_tests` for HumanEval `check` specs, reduced to what the throughput bench needs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from inspect_ai.util import SandboxEnvironment

HERE = Path(__file__).parent


async def run_round1(program: str, check: str, entry_point: str, env: SandboxEnvironment) -> bool:
    """Run `program` + `check` the round-1 way (one interpreter for candidate and harness); True if passed."""
    payload = {
        "harness": (HERE / "harness.py").read_text(encoding="utf-8"),
        "spec": {
            "mode": "check",
            "program": program + "\n\n" + check,
            "entry_point": entry_point,
            "func_name": None,
            "tests": [],
            "private": None,
            "timeout_per_test": 6.0,
        },
        "limits": {"wall_s": 12.0, "memory_mb": 2048, "max_processes": 32, "file_size_mb": 64},
    }
    launcher = (HERE / "launcher.py").read_text(encoding="utf-8")
    command = ["env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", sys.executable, "-I", "-c"]
    result = await env.exec([*command, launcher], input=json.dumps(payload), timeout=60, timeout_retry=False)
    lines = result.stdout.strip().splitlines()
    report = json.loads(lines[-1]) if result.success and lines else {}
    return bool((report.get("result") or {}).get("passed"))
