"""Scoring throughput: the isolated code runner beside round 1's runner, on HumanEval's 164 canonical solutions,
one sample at a time and samples in parallel (what Inspect does across samples, bounded by --max-subprocesses).

    .venv/bin/python bench/scoring_throughput.py [--problems 164] [--parallel 4] [--repeats 2]

Each canonical solution is one sample (check(candidate) = 1 test). "round 1" is the frozen copy of round 1's
launcher and harness in bench/round1_grading/ (candidate and harness in one interpreter; NOT used by the
package); "user" and "namespace" are `runner.run_tests` (trusted launcher + confined worker) forced to that
isolation level (both need a root launcher; namespace needs bubblewrap). All run in the same process,
interleaved (ABC, then CBA, ...), so machine load hits them alike; the ratios are the figures to read (the
namespaced runner must stay within 1.5x of the user level, the runner before namespaces).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

from userlm_plugin._inspect_compat import LocalSandboxEnvironment
from userlm_plugin.evals.sharded.dataset import code_sample
from userlm_plugin.evals.sharded.humaneval import load_humaneval
from userlm_plugin.scoring.answers.code import build_spec, extract_function
from userlm_plugin.scoring.answers.runner import RunLimits, TestSpec, run_tests

sys.path.insert(0, str(Path(__file__).parent))
from round1_grading.run import run_round1  # noqa: E402 - a sibling folder of this script


async def _user(spec: TestSpec, env: LocalSandboxEnvironment) -> bool:
    return (await run_tests(spec, RunLimits(isolation="user"), env=env)).passed


async def _namespace(spec: TestSpec, env: LocalSandboxEnvironment) -> bool:
    return (await run_tests(spec, RunLimits(isolation="namespace"), env=env)).passed


async def _round1(spec: TestSpec, env: LocalSandboxEnvironment) -> bool:
    return await run_round1(spec.program, spec.check or "", spec.entry_point or "", env)


RUNNERS = {"round 1": _round1, "user": _user, "namespace": _namespace}


async def timed(runner, specs: list[TestSpec], parallel: int) -> tuple[float, int]:
    env, gate = LocalSandboxEnvironment(), asyncio.Semaphore(parallel)

    async def one(spec: TestSpec) -> bool:
        async with gate:
            return await runner(spec, env)

    start = time.perf_counter()
    passed = await asyncio.gather(*(one(s) for s in specs))
    return time.perf_counter() - start, sum(passed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=164)
    parser.add_argument("--parallel", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--repeats", type=int, default=2, help="passes per runner, alternating the order")
    args = parser.parse_args()
    specs = []
    for problem in load_humaneval()[: args.problems]:
        metadata = code_sample(problem, "full").metadata
        code = extract_function(f"```python\n{problem.canonical_program}\n```", metadata["func_name"])
        specs.append(build_spec(code, metadata))
    load = os.getloadavg()[0]
    print(f"{len(specs)} HumanEval canonical solutions, {os.cpu_count()} CPUs, load average {load:.2f}")
    print(f"{'mode':<14}{'runner':<10}{'passed':>8}{'seconds':>9}{'samples/s':>11}")
    for label, parallel in (("sequential", 1), (f"parallel x{args.parallel}", args.parallel)):
        totals = dict.fromkeys(RUNNERS, 0.0)
        passed = dict.fromkeys(RUNNERS, 0)
        for repeat in range(args.repeats):
            order = list(RUNNERS) if repeat % 2 == 0 else list(reversed(RUNNERS))
            for name in order:
                elapsed, ok = asyncio.run(timed(RUNNERS[name], specs, parallel))
                totals[name] += elapsed
                passed[name] = ok
        for name in RUNNERS:
            seconds = totals[name] / args.repeats
            print(f"{label:<14}{name:<10}{passed[name]:>8}{seconds:>9.2f}{len(specs) / seconds:>11.1f}")
        for ratio, (a, b) in {
            "ns/user": ("namespace", "user"),
            "ns/round1": ("namespace", "round 1"),
        }.items():
            print(f"{label:<14}{ratio:<10}{'':>8}{totals[a] / totals[b]:>9.2f}x")


def _load_at_end() -> None:
    print("load average at the end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
    _load_at_end()
