"""The bar: every canonical HumanEval solution passes the code scorer's pipeline (extraction -> test spec -> isolated
run, `check` in the trusted launcher) in both scoring modes, at every isolation level: `corrected` with and without
LiC's import preamble, `lic_exact` (LiC's extraction and text-substitution rename) with it, as LiC runs every
answer, each at its own level (forced). A wrong one fails. Runs in parallel; still part of CI. Where this machine cannot
provide a level (namespace needs bubblewrap; namespace and user need root), that case runs at the strongest level
it has, with a warning that names the reason."""

import asyncio
import warnings
from types import SimpleNamespace

import pytest
from attacks import auto_level, isolation_available

from userlm_plugin._inspect_compat import LocalSandboxEnvironment
from userlm_plugin.evals.sharded.dataset import code_sample
from userlm_plugin.evals.sharded.humaneval import load_humaneval
from userlm_plugin.scoring.answers.code import CodeAnswers
from userlm_plugin.scoring.answers.runner import RunLimits, run_tests


async def _score(
    answer: str,
    metadata: dict,
    env,
    gate: asyncio.Semaphore,
    scoring: str = "corrected",
    preamble: bool | None = None,
    limits: RunLimits | None = None,
):
    answers = CodeAnswers(scoring=scoring)  # type: ignore[arg-type]
    code, _ = await answers.extract(answer, SimpleNamespace(metadata=metadata), use_grader=False)  # type: ignore[arg-type]
    assert code, metadata["task_id"]
    spec = answers.test_spec(code, metadata)
    assert spec is not None, metadata["task_id"]
    if preamble is not None:
        spec = spec.model_copy(update={"preamble": preamble})
    async with gate:
        return await run_tests(spec, limits, env=env)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("scoring", "preamble", "level"),
    [("corrected", False, "process"), ("corrected", True, "user"), ("lic_exact", True, "namespace")],
)
async def test_all_164_canonical_solutions_pass(scoring: str, preamble: bool, level: str) -> None:
    available, why = isolation_available(level)
    if not available:  # the scoring mode is still checked, at the strongest level this machine has
        warnings.warn(f"no {level} isolation on this machine ({why}); tested at {auto_level()}", stacklevel=1)
        level = auto_level()
    limits = RunLimits(isolation=level)
    problems = load_humaneval()
    assert len(problems) == 164
    env, gate = LocalSandboxEnvironment(), asyncio.Semaphore(4)
    answers = [f"Here you go:\n```python\n{p.canonical_program}\n```" for p in problems]
    metadata = [code_sample(p, "full").metadata for p in problems]
    results = await asyncio.gather(
        *(_score(a, m, env, gate, scoring, preamble, limits) for a, m in zip(answers, metadata, strict=True))
    )
    failed = {p.task_id: r.explanation() for p, r in zip(problems, results, strict=True) if not r.passed}
    assert failed == {}
    assert {r.isolation for r in results} == {level}


@pytest.mark.parametrize("scoring", ["corrected", "lic_exact"])
async def test_a_wrong_solution_fails(scoring: str) -> None:
    problem = next(p for p in load_humaneval() if p.task_id == "HumanEval/53")
    metadata = code_sample(problem, "full").metadata
    result = await _score(
        "```python\ndef add(x, y):\n    return x * y\n```",
        metadata,
        LocalSandboxEnvironment(),
        asyncio.Semaphore(1),
        scoring,
    )
    assert not result.passed and result.failure["error"].startswith("AssertionError")
