"""Run generated code against tests in Inspect's sandbox, isolated from the code that grades it (arXiv
2510.06552 §4 uses Lost in Conversation's code evaluator; see docs/grading.md for the isolation model).

`run_tests(spec)` sends the isolation bundle (`isolation/*.py`, as source) to the sample's sandbox with one
`sandbox().exec` call (recorded as no sandbox event: its input holds the tests, which stay out of the log).
There a trusted launcher starts the candidate's program in a separate, confined interpreter (as root: a uid
of its own, in namespaces of its own where bubblewrap works), sends it each test's arguments, and compares the
plain-data results itself; HumanEval's `check(candidate)` runs in the launcher with `candidate` proxied to
that interpreter. The launcher reports one JSON line, read here into a `RunResult`. With `-T sandbox=docker`
the same launcher runs inside the container.

The launcher itself runs under `env -i`, so nothing it or its workers can read holds API keys. Concurrency
comes from Inspect: `exec` calls share `--max-subprocesses`.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path
from typing import Any, Literal

from inspect_ai.util import SandboxEnvironment, sandbox
from pydantic import BaseModel, Field, model_validator

from ...errors import ConfigError

LIC_TEST_TIMEOUT_S = 6.0
"""Per-test timeout of Lost in Conversation's code evaluator (LiC `tasks/code/task_code.py`, timeout=6)."""

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
    isolation: Literal["auto", "namespace", "user", "process"] = Field(
        default="auto",
        description="`namespace`: candidate code runs in namespaces of its own (bubblewrap) as a uid of its "
        "own; `user`: as a uid of its own (both need a root launcher); `process`: as the launcher's user; "
        "`auto`: the first of these that is possible (each fallback says why). The others fail rather than "
        "fall back.",
    )
    disk_mb: int = Field(
        default=128, ge=1, description="`namespace` level: size of the run's tmpfs, all it can write in total"
    )
    uid_base: int = Field(default=61000, ge=1000, description="first uid of the per-run pool (`user` level)")
    uid_count: int = Field(default=1000, ge=1, description="uids in the pool: the most concurrent runs")
    worker_python: str | None = Field(
        default=None,
        description="interpreter for candidate code at the `user` and `process` levels; default: the "
        "launcher's, or at the `user` level the first python3 an unprivileged user can run (setting it rules "
        "out the `namespace` level, which runs the launcher's own interpreter)",
    )

    def wall_s(self, n_tests: int | None) -> float:
        """LiC's global join timeout, (t+1)·n+5 s; `max_wall_s` when n is unknown (encoded private tests)."""
        if n_tests is None:
            return self.max_wall_s
        return min((self.timeout_per_test_s + 1) * max(n_tests, 1) + 5, self.max_wall_s)


class TestSpec(BaseModel):
    """What to run: the candidate's program plus either HumanEval's `check` or call-based tests.

    Only `program` is candidate code; it runs in the confined worker. `check` and the tests stay in the
    trusted launcher (the worker sees the arguments of each call, never an expected output).
    """

    __test__ = False  # not a pytest test class

    mode: Literal["check", "functional"]
    program: str
    """The candidate's source (with the context it needs, e.g. a HumanEval prompt's imports and helpers)."""
    entry_point: str | None = None
    """`check` mode: the function passed to `check`."""
    check: str | None = None
    """`check` mode: trusted test source defining `check(candidate)` (and the helpers it uses)."""
    func_name: str | None = None
    """`functional` mode: the function (or `Solution` method) called with each test's JSON arguments."""
    tests: list[dict[str, Any]] = Field(default_factory=list)
    """`functional` mode: [{"input": newline-separated JSON args, "output": JSON}, ...]."""
    private: str | list[dict[str, Any]] | None = None
    """`functional` mode: LiC/LCB private tests, JSON or zlib+base64+pickle; decoded in a confined process."""
    preamble: bool = False
    """Run LiC's import preamble (`isolation/preamble.py`) before `program`, as LiC does for every answer."""
    solution_class: bool | None = None
    """Call `Solution().<name>` instead of a function. None: LiC's rule, i.e. when `program` contains the text
    `class Solution` (LiC `tasks/code/eval_code.py` compile_code)."""

    @model_validator(mode="after")
    def _complete(self) -> TestSpec:
        if self.mode == "check" and (not self.check or not self.entry_point):
            raise ConfigError("TestSpec(mode='check') needs `check` (the test source) and `entry_point`")
        if self.mode == "functional" and not self.func_name:
            raise ConfigError("TestSpec(mode='functional') needs `func_name`")
        return self

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
    isolation: str | None = None
    """`namespace` (candidate code ran in namespaces of its own, as a uid of its own), `user` (as a uid of
    its own) or `process` (as the launcher's user); None when the launcher could not run."""
    isolation_detail: str = ""
    """What confined the run (namespaces, uid, cgroup, ...) and why each stronger level was not used."""

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


ISOLATION_MODULES = ("plain", "wire", "preamble", "worker", "confine", "namespace", "judge", "launcher")
"""Shipped to the sandbox in this order (each may import the ones before it)."""


@cache
def _source(name: str) -> str:
    return (Path(__file__).parent / "isolation" / f"{name}.py").read_text(encoding="utf-8")


def _interpreter(env: SandboxEnvironment, limits: RunLimits) -> str:
    if limits.python:
        return limits.python
    from ..._inspect_compat import LocalSandboxEnvironment, unwrapped_sandbox

    return sys.executable if isinstance(unwrapped_sandbox(env), LocalSandboxEnvironment) else "python3"


def launcher_input(spec: TestSpec, limits: RunLimits) -> str:
    """The launcher's stdin: the isolation modules' sources, the boot source and the job."""
    bundle = {
        "modules": [[name, _source(name)] for name in ISOLATION_MODULES],
        "main": "launcher",
        "boot": _source("boot"),
        "job": {
            "spec": spec.model_dump(),
            "limits": {
                **limits.model_dump(exclude={"python", "max_wall_s"}),
                "wall_s": limits.wall_s(spec.known_test_count()),
            },
        },
    }
    return json.dumps(bundle)


async def run_tests(
    spec: TestSpec, limits: RunLimits | None = None, env: SandboxEnvironment | None = None
) -> RunResult:
    """Run `spec` isolated in the sandbox (`env`, default: the current sample's `sandbox()`)."""
    limits = limits or RunLimits()
    env = env or sandbox()
    wall = limits.wall_s(spec.known_test_count())
    command = ["env", "-i", CLEAN_PATH, "LANG=C.UTF-8", _interpreter(env, limits), "-I", "-S", "-B"]
    command += ["-c", _source("boot"), "stdin"]
    from ..._inspect_compat import sandbox_events_off

    try:
        with sandbox_events_off(env):  # the input holds the tests: it must not reach the log
            result = await env.exec(
                command, input=launcher_input(spec, limits), timeout=int(wall) + 60, timeout_retry=False
            )
    except TimeoutError:
        return RunResult(passed=False, timed_out=True, error="the sandbox did not return in time")
    lines = result.stdout.strip().splitlines()
    try:
        report = json.loads(lines[-1]) if result.success and lines else None
    except ValueError:
        report = None
    if not isinstance(report, dict):
        return RunResult(
            passed=False,
            returncode=result.returncode,
            error="the sandboxed launcher failed (is python3 >= 3.8 available in the sandbox?)",
            stderr_tail=result.stderr[-2000:],
        )
    outcome = report.pop("result") or {"passed": False, "error": "the launcher reported no result"}
    return RunResult(**outcome, **report)
