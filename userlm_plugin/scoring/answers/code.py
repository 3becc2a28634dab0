"""Code answers: extraction, the test program, and the code scorer (docs/scoring.md, "code").

Two scoring modes (`modes.py`). `lic_exact` extracts and renames exactly as Lost in Conversation does
(`lic_rules.py`). `corrected` (the default) follows LiC's rule-based extractor (`tasks/code/task_code.py`,
`extract_answer`) in intent, without its bugs:
- an answer that mentions `class Solution` (LiveCodeBench's starter form) keeps the whole last code block (closed
  or not) that defines it; the tests then call `Solution().<func_name>` on one instance, as `eval_code.py`
  (`compile_code`) does, the method named `func_name` when there is one;
- otherwise the LAST Python code block (the raw text when there is none) gives its top-level imports and its LAST
  top-level function, callable under the expected name. LiC renames by replacing the first function's name
  everywhere in the text; we keep the definition and add `expected = original`, so a recursive function still
  finds itself and no other identifier changes. Other top-level code is dropped, as in LiC.

Every LiC candidate runs after LiC's import preamble (`eval_code.py`, `import_string`: `from typing import *`,
`math`, `collections`, ... and a recursion limit of 50000; `TestSpec.preamble`, run by the grading harness), so
`List` or `Counter` work without an import, and after the HumanEval prompt's own imports and helpers.

Our rule-based attempt test (no `grader` role) also refuses templates: a function whose body is only a
docstring, `pass`, `...` or `raise NotImplementedError` is a sketch, not an answer attempt. A real function is an
attempt even when the reply goes on to ask the user something.

Tests: call-based functional tests (public + private, JSON in/out, tuple == list) for Lost in Conversation
records, as LiC does; HumanEval's own `check(candidate)` for the offline `humaneval` dataset. Each run is
confined by `runner.run_tests` (6 s per test).
"""

from __future__ import annotations

import ast
import re
import textwrap
from typing import Any

from inspect_ai.scorer import Score, Target, scorer
from inspect_ai.solver import TaskState
from inspect_ai.util import SandboxEnvironment

from . import lic_rules
from .attempts import AnswerTask, make_stop_when, score_last_attempt
from .hidden_tests import code_tests_of
from .lic_rules import LicCrash
from .modes import DEFAULT_SCORING, LIC_CRASH, ScoringMode
from .reliability import reliability_metrics
from .runner import RunLimits, TestSpec, run_tests

FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
PYTHON_TAGS = ("", "python", "py", "python3")
SOLUTION_CLASS = "Solution"


def code_blocks(text: str) -> list[tuple[str, str]]:
    """Fenced blocks as (language tag, body), in order; an unclosed last fence runs to the end."""
    return [(m.group(1).lower(), m.group(2)) for m in FENCE.finditer(text)]


def _parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    except SyntaxError:
        return None


def last_python_block(text: str) -> str:
    """The last block tagged python/py (or untagged) that contains a `def`; else the raw text."""
    blocks = [body for lang, body in code_blocks(text) if lang in PYTHON_TAGS]
    with_def = [b for b in blocks if re.search(r"^\s*(async\s+)?def ", b, re.MULTILINE)]
    if with_def:
        return with_def[-1]
    return text


def solution_class(tree: ast.Module) -> ast.ClassDef | None:
    return next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == SOLUTION_CLASS), None)


def extract_solution_class(text: str) -> str | None:
    """LiC's class branch: the last code block (else the raw text) defining a top-level `class Solution`."""
    blocks = [body for lang, body in code_blocks(text) if lang in PYTHON_TAGS]
    for source in [*reversed(blocks), text]:
        source = textwrap.dedent(source)
        tree = _parse(source)
        if tree is not None and solution_class(tree) is not None:
            return source.strip() + "\n"
    return None


def extract_function(text: str, expected_name: str) -> str | None:
    """Imports + the last top-level function of the last Python block, callable as `expected_name`.

    Returns None when the text holds no parseable top-level function.
    """
    source = textwrap.dedent(last_python_block(text))
    tree = _parse(source)
    if tree is None:
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


def extract_code(text: str, expected_name: str) -> str | None:
    """The gradeable code of an answer: a `class Solution` block when the text mentions one (LiC), else the
    function; None when there is neither."""
    if f"class {SOLUTION_CLASS}" in text and (block := extract_solution_class(text)) is not None:
        return block
    return extract_function(text, expected_name)


def _is_template(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A body of only a docstring, `pass`, `...` or `raise NotImplementedError`: a sketch, not an answer."""
    for node in function.body:
        if isinstance(node, ast.Pass):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # docstring or `...`
        if isinstance(node, ast.Raise) and "NotImplementedError" in ast.unparse(node):
            continue
        return False
    return True


def is_template(code: str) -> bool:
    """True when extracted code only sketches the answer (every function or `Solution` method is a template)."""
    tree = _parse(code)
    if tree is None:
        return False
    cls = solution_class(tree)
    body = cls.body if cls is not None else tree.body
    functions = [n for n in body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    return bool(functions) and all(_is_template(f) for f in functions)


def solution_method(code: str, func_name: str) -> str | None:
    """The `Solution` method the tests call: `func_name` when defined, else the first non-dunder method (LiC
    renames the first `def` of the answer to `func_name`). None when the code has no `class Solution`."""
    tree = _parse(code)
    cls = solution_class(tree) if tree is not None else None
    if cls is None:
        return None
    methods = [n.name for n in cls.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    if func_name in methods:
        return func_name
    return next((m for m in methods if not (m.startswith("__") and m.endswith("__"))), func_name)


def prompt_context(prompt: str, entry_point: str) -> str:
    """What a HumanEval prompt gives the solution besides its own signature: its imports and helper
    functions (e.g. `is_palindrome` for HumanEval/10), prepended as HumanEval's own harness does."""
    tree = _parse(prompt + "\n    pass\n") or ast.parse(prompt)
    keep = [
        n
        for n in tree.body
        if isinstance(n, ast.Import | ast.ImportFrom)
        or (isinstance(n, ast.FunctionDef | ast.ClassDef) and n.name != entry_point)
    ]
    source = prompt + "\n    pass\n"
    return "\n\n".join(ast.get_source_segment(source, n) or "" for n in keep).strip()


def build_spec(code: str, metadata: dict[str, Any], scoring: ScoringMode = DEFAULT_SCORING) -> TestSpec:
    """The test run for extracted code, from the sample's tests (`hidden_tests.code_tests_of`).

    LiC records (`functional`): the prompt's imports/helpers and the candidate, run after LiC's import preamble;
    a `class Solution` answer is called as `Solution().<func_name>` on one instance (a method under another name
    is aliased, as LiC renames the answer's first `def`). HumanEval (`check`): the prompt's context and the
    candidate, tested by HumanEval's `check`.

    `lic_exact`: `code` is LiC's graded program (`lic_rules.graded_program`: the prompt's imports already in it,
    the first function already renamed), run as LiC runs it: no prompt helpers, no alias, and a class answer
    recognised by the text `class Solution` in the program. HumanEval's `check` keeps HumanEval's own context.
    """
    tests = code_tests_of(
        metadata
    )  # not in the metadata itself: the log must not hold them (hidden_tests.py)
    name = metadata["func_name"]
    parts = [tests.get("prefix", ""), code]
    if tests["mode"] == "check":
        program = "\n\n".join(p for p in parts if p)
        check = "\n\n".join(p for p in (tests.get("prefix", ""), tests["check"]) if p)  # helpers check uses
        return TestSpec(mode="check", program=program, check=check, entry_point=name)
    private, public = tests.get("private"), tests.get("public", [])
    if scoring == "lic_exact":
        return TestSpec(
            mode="functional", program=code, func_name=name, tests=public, private=private, preamble=True
        )
    method = solution_method(code, name)
    if method is not None and method != name:
        parts.append(f"{SOLUTION_CLASS}.{name} = {SOLUTION_CLASS}.{method}")
    return TestSpec(
        mode="functional",
        program="\n\n".join(p for p in parts if p),
        func_name=name,
        tests=public,
        private=private,
        preamble=True,
        solution_class=method is not None,
    )


CODE_ANSWER_DESCRIPTION = (
    "A valid Python function, defined with `def ...`, that returns a value and handles every test case the "
    "task describes (a `class Solution` with that method also counts). A plain-language explanation is not an "
    "answer."
)
"""What a code answer looks like, for the grader's prompt (our wording of LiC's `get_answer_description`)."""


class CodeAnswers(AnswerTask):
    """Code answers: extracted by rules (LiC extracts code by rules even with its classifier), run against tests."""

    kind = "code"
    answer_description = CODE_ANSWER_DESCRIPTION

    def __init__(
        self,
        limits: RunLimits | None = None,
        scoring: ScoringMode = DEFAULT_SCORING,
        env: SandboxEnvironment | None = None,
    ) -> None:
        self.limits = limits or RunLimits()
        self.scoring = scoring
        self.env = env
        """Where tests run; None: the current sample's sandbox (`sandbox()`)."""

    def answer_code(self, text: str, func_name: str) -> str | None:
        """The code this mode grades for a reply (None: none found); `lic_exact` may raise `LicCrash`."""
        if self.scoring == "lic_exact":
            return lic_rules.extract_answer(text) or None
        return extract_code(text, func_name)

    def rule_based(self, text: str, state: TaskState) -> str | None:
        name = state.metadata["func_name"]
        try:
            code = self.answer_code(text, name)
        except LicCrash:  # the attempt rule is ours; the crash is recorded when the answer is extracted
            code = extract_code(text, name)
        return None if code is None or is_template(code) else code

    async def extract(self, text: str, state: TaskState, use_grader: bool) -> tuple[str, dict[str, Any]]:
        try:
            code = self.answer_code(text, state.metadata["func_name"])
        except LicCrash as crash:
            return "", {"extraction": "rules", LIC_CRASH: str(crash)}
        return code or "", {"extraction": "rules"}

    def test_spec(self, answer: str, metadata: dict[str, Any]) -> TestSpec | None:
        """The run that grades an extracted answer in this mode; None when LiC scores it 0 without running it
        (`lic_exact`: no `def ` left). Under `lic_exact` the program is LiC's (`lic_rules.graded_program`)."""
        if self.scoring == "lic_exact":
            tests = code_tests_of(metadata)
            program = lic_rules.graded_program(answer, metadata["func_name"], tests.get("lic_imports", ""))
            if program is None:
                return None
            answer = program
        return build_spec(answer, metadata, self.scoring)

    async def grade(self, answer: str, state: TaskState) -> tuple[bool, str, dict[str, Any]]:
        spec = self.test_spec(answer, state.metadata)
        if spec is None:
            return False, "no `def ` in the extracted code: LiC scores it 0 without running it", {}
        result = await run_tests(spec, self.limits, self.env)
        details = result.model_dump(exclude={"stderr_tail", "stdout_tail"})
        if self.scoring == "lic_exact":  # LiC's rename edits the text: show what ran
            details["graded_program"] = spec.program
        return result.passed, result.explanation(), details


def code_stop_when(
    limits: RunLimits | None = None, single_turn: bool = False, scoring: ScoringMode = DEFAULT_SCORING
):
    """`stop_when` for code: run the tests on the latest answer attempt; stop when they all pass."""
    return make_stop_when(CodeAnswers(limits, scoring), single_turn=single_turn)


@scorer(metrics=reliability_metrics())
def code_scorer(
    timeout_per_test: float = 6.0,
    memory_mb: int = 2048,
    single_turn: bool = False,
    scoring: ScoringMode = DEFAULT_SCORING,
    isolation: str = "auto",
):
    """Runs the task's tests on the code in the conversation's last answer attempt.

    Value: {"correct": 0|1, "turns": user turns, "ended_correct": 0|1}; explanation: the first failing
    test, the stderr tail and how the conversation ended. Needs a sandbox (`local` or `docker`).

    Args:
        timeout_per_test: Seconds per test (LiC: 6).
        memory_mb: Address-space cap of the test process.
        single_turn: Every assistant reply is an answer attempt (LiC's FULL/CONCAT skip the classifier).
        scoring: `corrected` (default) or `lic_exact` (LiC's extraction and rename, bugs included; docs/scoring.md).
        isolation: `auto`, `namespace`, `user` or `process` (docs/grading.md#isolation-levels).
    """
    limits = RunLimits(timeout_per_test_s=timeout_per_test, memory_mb=memory_mb, isolation=isolation)
    answers = CodeAnswers(limits, scoring)

    async def score(state: TaskState, target: Target) -> Score:  # noqa: ARG001
        return await score_last_attempt(state, answers, single_turn=single_turn)

    return score
