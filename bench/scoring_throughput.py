"""Scoring throughput: tests run per second by the confined code runner, one sample at a time vs samples in
parallel (what Inspect does across samples, bounded by --max-subprocesses).

    .venv/bin/python bench/scoring_throughput.py [--problems 164] [--parallel 4]

Each HumanEval canonical solution is one sample (check(candidate) = 1 test); every run goes through the
launcher (clean env, temp dir, rlimits, process-group sweep), so the figures include that overhead.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from inspect_ai.util._sandbox.local import LocalSandboxEnvironment

from userlm_plugin.evals.sharded.dataset import code_sample
from userlm_plugin.evals.sharded.humaneval import load_humaneval
from userlm_plugin.scoring.answers.code import build_spec, extract_function
from userlm_plugin.scoring.answers.runner import run_tests


async def run(specs, parallel: int) -> tuple[float, int, int]:
    env, gate = LocalSandboxEnvironment(), asyncio.Semaphore(parallel)

    async def one(spec):
        async with gate:
            return await run_tests(spec, env=env)

    start = time.perf_counter()
    results = await asyncio.gather(*(one(s) for s in specs))
    elapsed = time.perf_counter() - start
    return elapsed, sum(r.n_tests for r in results), sum(r.passed for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=164)
    parser.add_argument("--parallel", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    specs = []
    for problem in load_humaneval()[: args.problems]:
        metadata = code_sample(problem, "full").metadata
        code = extract_function(f"```python\n{problem.canonical_program}\n```", metadata["func_name"])
        specs.append(build_spec(code, metadata))
    print(f"{len(specs)} HumanEval samples (canonical solutions), {os.cpu_count()} CPUs")
    print(f"{'mode':<14}{'samples':>8}{'tests':>7}{'passed':>8}{'seconds':>9}{'tests/s':>9}{'samples/s':>11}")
    for label, parallel in (("sequential", 1), (f"parallel x{args.parallel}", args.parallel)):
        elapsed, tests, passed = asyncio.run(run(specs, parallel))
        print(
            f"{label:<14}{len(specs):>8}{tests:>7}{passed:>8}{elapsed:>9.2f}{tests / elapsed:>9.1f}{len(specs) / elapsed:>11.1f}"
        )


if __name__ == "__main__":
    main()
