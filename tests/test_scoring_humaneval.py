"""The bar: every canonical HumanEval solution passes the code scorer's pipeline (extraction -> test spec -> isolated
run, `check` in the trusted launcher) in both scoring modes: `corrected` with and without LiC's import preamble,
`lic_exact` (LiC's extraction and text-substitution rename) with it, as LiC runs every answer. A wrong one fails.
Runs in parallel; still part of CI."""

import asyncio
from types import SimpleNamespace

import pytest

from userlm_plugin._inspect_compat import LocalSandboxEnvironment
from userlm_plugin.evals.sharded.dataset import code_sample
from userlm_plugin.evals.sharded.humaneval import load_humaneval
from userlm_plugin.scoring.answers.code import CodeAnswers
from userlm_plugin.scoring.answers.runner import run_tests


async def _score(
    answer: str,
    metadata: dict,
    env,
    gate: asyncio.Semaphore,
    scoring: str = "corrected",
    preamble: bool | None = None,
):
    answers = CodeAnswers(scoring=scoring)  # type: ignore[arg-type]
    code, _ = await answers.extract(answer, SimpleNamespace(metadata=metadata), use_grader=False)  # type: ignore[arg-type]
    assert code, metadata["task_id"]
    spec = answers.test_spec(code, metadata)
    assert spec is not None, metadata["task_id"]
    if preamble is not None:
        spec = spec.model_copy(update={"preamble": preamble})
    async with gate:
        return await run_tests(spec, env=env)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("scoring", "preamble"), [("corrected", False), ("corrected", True), ("lic_exact", True)]
)
async def test_all_164_canonical_solutions_pass(scoring: str, preamble: bool) -> None:
    problems = load_humaneval()
    assert len(problems) == 164
    env, gate = LocalSandboxEnvironment(), asyncio.Semaphore(4)
    answers = [f"Here you go:\n```python\n{p.canonical_program}\n```" for p in problems]
    metadata = [code_sample(p, "full").metadata for p in problems]
    results = await asyncio.gather(
        *(_score(a, m, env, gate, scoring, preamble) for a, m in zip(answers, metadata, strict=True))
    )
    failed = {p.task_id: r.explanation() for p, r in zip(problems, results, strict=True) if not r.passed}
    assert failed == {}


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
