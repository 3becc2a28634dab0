"""Code answers: extraction (paper.md §3.2-3.3) and the code scorer.

Extraction follows Lost in Conversation's rule-based extractor: take the LAST Python code block of the
answer (the raw text when there is none), keep its top-level imports, keep its LAST top-level function, and
make that function callable under the expected name. LiC renames the definition; we keep the original
definition and add `expected = original` when the names differ, so that a recursive function still finds
itself. Other top-level code (helpers, constants) is dropped, as in LiC: the assistant's system prompt asks
for exactly one top-level function.

Tests: HumanEval's own `check(candidate)` for the `humaneval` dataset; call-based functional tests
(public + private, JSON in/out, tuple == list) for Lost in Conversation records, as LiC does. Each run is
confined by `runner.run_tests` (6 s per test).
"""

from __future__ import annotations

import ast
import re
import textwrap
from typing import Any

from inspect_ai.scorer import Score, Target, scorer
from inspect_ai.solver import TaskState

from .attempts import make_stop_when, score_last_attempt
from .reliability import reliability_metrics
from .runner import RunLimits, TestSpec, run_tests

FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


def code_blocks(text: str) -> list[tuple[str, str]]:
    """Fenced blocks as (language tag, body), in order; an unclosed last fence runs to the end."""
    return [(m.group(1).lower(), m.group(2)) for m in FENCE.finditer(text)]


def last_python_block(text: str) -> str:
    """The last block tagged python/py (or untagged) that contains a `def`; else the raw text."""
    blocks = [body for lang, body in code_blocks(text) if lang in ("", "python", "py", "python3")]
    with_def = [b for b in blocks if re.search(r"^\s*(async\s+)?def ", b, re.MULTILINE)]
    if with_def:
        return with_def[-1]
    return text


def extract_function(text: str, expected_name: str) -> str | None:
    """Imports + the last top-level function of the last Python block, callable as `expected_name`.

    Returns None when the text holds no parseable top-level function (not an answer attempt).
    """
    source = textwrap.dedent(last_python_block(text))
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    imports = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    if not functions:
        return None
    function = functions[-1]
    parts = [ast.get_source_segment(source, node) or "" for node in imports]
    start = min([function.lineno, *(d.lineno for d in function.decorator_list)])
    parts.append("\n".join(source.splitlines()[start - 1 : function.end_lineno]))
    if function.name != expected_name:
        parts.append(f"{expected_name} = {function.name}")
    return "\n\n".join(p for p in parts if p).strip() + "\n"


def prompt_context(prompt: str, entry_point: str) -> str:
    """What a HumanEval prompt gives the solution besides its own signature: its imports and helper
    functions (e.g. `is_palindrome` for HumanEval/10), prepended as HumanEval's own harness does."""
    try:
        tree = ast.parse(prompt + "\n    pass\n")
    except SyntaxError:
        tree = ast.parse(prompt)
    keep = [
        n
        for n in tree.body
        if isinstance(n, ast.Import | ast.ImportFrom)
        or (isinstance(n, ast.FunctionDef | ast.ClassDef) and n.name != entry_point)
    ]
    source = prompt + "\n    pass\n"
    return "\n\n".join(ast.get_source_segment(source, n) or "" for n in keep).strip()


def build_spec(function_code: str, metadata: dict[str, Any]) -> TestSpec:
    """The test program for an extracted function, from the sample's `code_tests` metadata."""
    tests = metadata.get("code_tests")
    if not isinstance(tests, dict):
        raise ValueError(
            "sample metadata has no 'code_tests': build samples with userlm_plugin.evals.sharded.dataset"
        )
    program = "\n\n".join(p for p in (tests.get("prefix", ""), function_code) if p)
    name = metadata["func_name"]
    if tests["mode"] == "check":
        return TestSpec(mode="check", program=program + "\n\n" + tests["check"], entry_point=name)
    return TestSpec(
        mode="functional",
        program=program,
        func_name=name,
        tests=tests.get("public", []),
        private=tests.get("private"),
    )


def _extractor(text: str, state: TaskState) -> str | None:
    return extract_function(text, state.metadata["func_name"])


def _grader(limits: RunLimits):
    async def grade(answer: str, state: TaskState) -> tuple[bool, str, dict[str, Any]]:
        result = await run_tests(build_spec(answer, state.metadata), limits)
        details = result.model_dump(exclude={"stderr_tail", "stdout_tail"})
        return result.passed, result.explanation(), details

    return grade


def code_stop_when(limits: RunLimits | None = None):
    """`stop_when` for code: run the tests on the latest answer; stop when they all pass."""
    return make_stop_when(_extractor, _grader(limits or RunLimits()))


@scorer(metrics=reliability_metrics())
def code_scorer(timeout_per_test: float = 6.0, memory_mb: int = 2048):
    """Runs the task's tests on the function in the conversation's last answer attempt.

    Value: {"correct": 0|1, "turns": user turns, "ended_correct": 0|1}; explanation: the first failing
    test and the stderr tail. Needs a sandbox (`local` or `docker`).
    """
    grade = _grader(RunLimits(timeout_per_test_s=timeout_per_test, memory_mb=memory_mb))

    async def score(state: TaskState, target: Target) -> Score:  # noqa: ARG001
        return await score_last_attempt(state, _extractor, grade)

    return score
