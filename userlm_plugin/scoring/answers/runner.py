"""Run generated code against tests in Inspect's sandbox, confined (paper.md §3.3; notes §4.2).

`run_tests(spec)` sends a trusted launcher (`_launcher.py`) and the test harness (`_harness.py`) to the
sample's sandbox with one `sandbox().exec` call. The launcher runs the harness in a fresh temp dir, with an
empty environment, rlimits (memory, CPU, processes, file size), its own process group and a wall timeout,
and kills every process the code left behind. With `-T sandbox=docker` the same happens inside the
container, which also isolates the filesystem and network; the `local` sandbox cannot (see README).

The launcher itself runs under `env -i`, so even `/proc/<parent>/environ` of the process the code can see
holds no API keys. Concurrency comes from Inspect: `exec` calls share `--max-subprocesses`.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path
from typing import Any, Literal

from inspect_ai.util import SandboxEnvironment, sandbox
from pydantic import BaseModel, Field

LIC_TEST_TIMEOUT_S = 6.0
"""Per-test timeout of Lost in Conversation's code evaluator (paper.md §3.3)."""

CLEAN_PATH = "PATH=/usr/local/bin:/usr/bin:/bin"


class RunLimits(BaseModel):
    """Resource caps for one test run. Defaults follow LiC (6 s per test, wall (6+1)·n+5 s)."""

    timeout_per_test_s: float = Field(default=LIC_TEST_TIMEOUT_S, gt=0)
    memory_mb: int = Field(default=2048, ge=64, description="address-space cap (RLIMIT_AS)")
    max_processes: int = Field(default=32, ge=1, description="new processes the code may create")
    file_size_mb: int = Field(default=64, ge=1, description="largest file the code may write")
    max_wall_s: float = Field(default=300.0, gt=0, description="wall cap when the test count is unknown")
    python: str | None = Field(
        default=None, description="interpreter in the sandbox; default: this one for `local`, else python3"
    )

    def wall_s(self, n_tests: int | None) -> float:
        """LiC's global join timeout, (t+1)·n+5 s; `max_wall_s` when n is unknown (encoded private tests)."""
        if n_tests is None:
            return self.max_wall_s
        return min((self.timeout_per_test_s + 1) * max(n_tests, 1) + 5, self.max_wall_s)


class TestSpec(BaseModel):
    """What to run: a full program plus either HumanEval's `check(candidate)` or call-based tests."""

    __test__ = False  # not a pytest test class

    mode: Literal["check", "functional"]
    program: str
    """Source executed first (imports, prompt helpers, the candidate function, and for `check` the test)."""
    entry_point: str | None = None
    """`check` mode: the function passed to `check`."""
    func_name: str | None = None
    """`functional` mode: the function called with each test's JSON arguments."""
    tests: list[dict[str, Any]] = Field(default_factory=list)
    """`functional` mode: [{"input": newline-separated JSON args, "output": JSON}, ...]."""
    private: str | None = None
    """`functional` mode: LiC/LCB private tests, JSON or zlib+base64+pickle; decoded in the sandbox only."""

    def known_test_count(self) -> int | None:
        if self.mode == "check":
            return 1
        return None if self.private is not None else len(self.tests)


class RunResult(BaseModel):
    """Outcome of one run, as the launcher reported it."""

    passed: bool
    n_tests: int = 0
    n_passed: int = 0
    error: str | None = None
    """Why the code could not be tested at all (load error, missing function, timeout, crash)."""
    failure: dict[str, Any] | None = None
    """The first failing test: index, input, expected, got or error."""
    timed_out: bool = False
    returncode: int | None = None
    elapsed_s: float | None = None
    killed_leftovers: int = 0
    stderr_tail: str = ""
    stdout_tail: str = ""

    def explanation(self) -> str:
        """First failing test plus the stderr tail: what a reader of the log needs to see."""
        if self.passed:
            return f"passed {self.n_passed}/{self.n_tests} tests"
        lines = [f"failed: {self.n_passed}/{self.n_tests} tests passed"]
        if self.timed_out:
            lines.append("the whole run hit its wall timeout and was killed")
        if self.error:
            lines.append(self.error)
        if self.failure:
            lines.append("first failing test: " + json.dumps(self.failure, ensure_ascii=False))
        if self.stderr_tail.strip():
            lines.append("stderr (tail):\n" + self.stderr_tail.strip())
        if self.stdout_tail.strip():
            lines.append("stdout (tail):\n" + self.stdout_tail.strip())
        return "\n".join(lines)


@cache
def _source(name: str) -> str:
    return (Path(__file__).parent / name).read_text(encoding="utf-8")


def _interpreter(env: SandboxEnvironment, limits: RunLimits) -> str:
    if limits.python:
        return limits.python
    from ..._inspect_compat import LocalSandboxEnvironment

    return sys.executable if isinstance(env, LocalSandboxEnvironment) else "python3"


async def run_tests(
    spec: TestSpec, limits: RunLimits | None = None, env: SandboxEnvironment | None = None
) -> RunResult:
    """Run `spec` confined in the sandbox (`env`, default: the current sample's `sandbox()`)."""
    limits = limits or RunLimits()
    env = env or sandbox()
    wall = limits.wall_s(spec.known_test_count())
    payload = {
        "harness": _source("_harness.py"),
        "spec": {**spec.model_dump(), "timeout_per_test": limits.timeout_per_test_s},
        "limits": {
            "wall_s": wall,
            "memory_mb": limits.memory_mb,
            "max_processes": limits.max_processes,
            "file_size_mb": limits.file_size_mb,
        },
    }
    command = [
        "env",
        "-i",
        CLEAN_PATH,
        "LANG=C.UTF-8",
        _interpreter(env, limits),
        "-I",
        "-c",
        _source("_launcher.py"),
    ]
    try:
        result = await env.exec(
            command, input=json.dumps(payload), timeout=int(wall) + 30, timeout_retry=False
        )
    except TimeoutError:
        return RunResult(passed=False, timed_out=True, error="the sandbox did not return in time")
    lines = result.stdout.strip().splitlines()
    if not result.success or not lines:
        return RunResult(
            passed=False,
            returncode=result.returncode,
            error="the sandboxed launcher failed (is python3 available in the sandbox?)",
            stderr_tail=result.stderr[-2000:],
        )
    report = json.loads(lines[-1])
    outcome = report.pop("result") or {}
    if not outcome:
        outcome = {"passed": False, "error": "the test process died before reporting a result"}
        if report["timed_out"]:
            outcome["error"] = f"killed at the wall timeout ({wall:g}s)"
        elif report["returncode"] and report["returncode"] < 0:
            outcome["error"] = f"the test process was killed by signal {-report['returncode']}"
    outcome.pop("stdout", None)
    return RunResult(**outcome, **report)
