"""Code answers as Lost in Conversation grades them (LiC `tasks/code/task_code.py`, `eval_code.py` at ba6b9a2;
docs/scoring.md): extraction (functions and `class Solution` blocks), LiC's import preamble, the test program, our
stricter rule-based attempt test, on records in LiC's schema (tests/fixtures/lic_mini.json)."""

from pathlib import Path

import pytest
from inspect_ai.util._sandbox.local import LocalSandboxEnvironment

from userlm_plugin.evals.sharded.dataset import code_sample
from userlm_plugin.evals.sharded.humaneval import load_humaneval
from userlm_plugin.evals.sharded.lic import load_lic
from userlm_plugin.scoring.answers.code import (
    build_spec,
    code_blocks,
    extract_code,
    extract_function,
    is_template,
    prompt_context,
)
from userlm_plugin.scoring.answers.runner import run_tests

FIXTURE = Path(__file__).parent / "fixtures" / "lic_mini.json"


def run(code: str, name: str, *args):
    namespace: dict = {}
    exec(code, namespace)
    return namespace[name](*args)


def test_last_function_of_last_python_block_with_imports() -> None:
    answer = (
        "First try:\n```python\ndef f(x):\n    return 0\n```\nBetter:\n"
        "```python\nimport math\nfrom typing import List\n\ndef helper(x):\n    return x\n\n"
        "def area(r: float) -> float:\n    return math.pi * r * r\n\nprint(area(1))\n```\nDone."
    )
    code = extract_function(answer, "area")
    assert code.startswith("import math\n\nfrom typing import List")
    assert "def helper" not in code and "print(" not in code
    assert run(code, "area", 1.0) == run("import math\ndef g(r):\n    return math.pi * r * r\n", "g", 1.0)


def test_renamed_function_stays_callable_and_recursive() -> None:
    answer = "```python\ndef fact(n):\n    return 1 if n <= 1 else n * fact(n - 1)\n```"
    code = extract_function(answer, "factorial")
    assert code.rstrip().endswith("factorial = fact")
    assert run(code, "factorial", 5) == 120


def test_no_fence_raw_text_and_unclosed_fence() -> None:
    assert run(extract_function("def add(a, b):\n    return a + b\n", "add"), "add", 1, 2) == 3
    truncated = "Sure!\n```python\ndef add(a, b):\n    return a + b\n"
    assert run(extract_function(truncated, "add"), "add", 2, 2) == 4


def test_decorated_and_non_python_blocks() -> None:
    answer = (
        "```bash\npip install x\n```\n```python\nimport functools\n\n@functools.lru_cache(None)\ndef fib(n):\n"
        "    return n if n < 2 else fib(n - 1) + fib(n - 2)\n```"
    )
    assert [lang for lang, _ in code_blocks(answer)] == ["bash", "python"]
    assert run(extract_function(answer, "fib"), "fib", 20) == 6765


def test_not_an_answer_attempt() -> None:
    assert extract_function("Could you tell me what the input looks like?", "f") is None
    assert extract_function("```python\nx = 1\n```", "f") is None
    assert extract_function("```python\ndef broken(:\n```", "f") is None


def test_prompt_context_gives_helpers_and_imports() -> None:
    problems = {p.task_id: p for p in load_humaneval()}
    context = prompt_context(problems["HumanEval/10"].prompt, "make_palindrome")
    assert "def is_palindrome" in context and "def make_palindrome" not in context
    assert prompt_context(problems["HumanEval/0"].prompt, "has_close_elements") == "from typing import List"


def test_build_spec_check_and_functional() -> None:
    spec = build_spec(
        "def add(a, b):\n    return a + b\n",
        {
            "func_name": "add",
            "code_tests": {"mode": "check", "prefix": "import os", "check": "def check(c): pass"},
        },
    )
    assert spec.mode == "check" and spec.entry_point == "add" and spec.program.startswith("import os")
    # HumanEval's check runs in the trusted process with the prompt's context; HumanEval's harness has no preamble
    assert spec.check.endswith("def check(c): pass") and not spec.preamble
    spec = build_spec(
        "def add(a, b):\n    return a + b\n",
        {
            "func_name": "add",
            "code_tests": {"mode": "functional", "public": [{"input": "1\n2", "output": "3"}]},
        },
    )
    assert spec.mode == "functional" and spec.known_test_count() == 1
    assert spec.preamble and spec.solution_class is False  # LiC: every call-based answer after the preamble
    cls = build_spec(
        "class Solution:\n    def plus(self, a, b):\n        return a + b\n",
        {"func_name": "add", "code_tests": {"mode": "functional", "public": []}},
    )
    assert cls.solution_class and cls.program.endswith("Solution.add = Solution.plus")


# ---------------------------------------------------------------- LiC semantics on records in LiC's schema


@pytest.fixture(scope="module")
def records() -> dict:
    return {r.task_id: r for r in load_lic("code", data=FIXTURE).records}


@pytest.fixture
def env() -> LocalSandboxEnvironment:
    return LocalSandboxEnvironment()


async def grade(text: str, record, env) -> bool:
    metadata = code_sample(record, "sharded").metadata
    code = extract_code(text, metadata["func_name"])
    assert code is not None
    result = await run_tests(build_spec(code, metadata), env=env)
    return result.passed


CLASS_ANSWER = (
    "Using the starter code:\n```python\nclass Solution:\n    def scaleAll(self, nums: List[int], k: int) -> "
    "List[int]:\n        return [x * k for x in nums]\n```\nWant me to handle empty lists too?"
)


def test_class_solution_block_is_kept_whole_as_lic_extracts_it() -> None:
    answer = (
        "First idea:\n```python\nclass Solution:\n    pass\n```\nBetter:\n```python\nimport math\n\n"
        "class Solution:\n    def helper(self, x):\n        return x\n\n    def scaleAll(self, nums, k):\n"
        "        return [self.helper(x) * k for x in nums]\n```"
    )
    code = extract_code(answer, "scaleAll")
    assert code.startswith("import math\n\nclass Solution:") and "def helper" in code and "pass" not in code
    # without `class Solution`, the function rule (last top-level function) applies
    assert extract_code("```python\ndef f(x):\n    return x\n```", "g").endswith("g = f\n")


async def test_class_answer_passes_lics_tests_through_solution_method(records, env) -> None:
    lcb = records["sharded-livecodebench/9001"]  # class Solution starter; public + encoded private tests
    assert await grade(CLASS_ANSWER, lcb, env)
    wrong = CLASS_ANSWER.replace("x * k", "x + k")
    assert not await grade(wrong, lcb, env)
    # a method under another name is called as func_name, as LiC's rename of the first `def` does
    renamed = CLASS_ANSWER.replace("def scaleAll", "def scale")
    assert await grade(renamed, lcb, env)


async def test_lic_import_preamble_is_available_to_candidates(records, env) -> None:
    he = records["sharded-HumanEval/53"]
    uses_preamble = (
        "```python\ndef add(x: int, y: int) -> int:\n"
        "    parts: List[int] = [x, y]\n"  # typing.List without an import
        "    counts = Counter(parts)\n"  # collections.Counter
        "    assert pow(2, 3, 5) == 3 and datetime.date(2020, 1, 1).year == 2020\n"  # builtin pow; module datetime
        "    return sum(k * v for k, v in counts.items())\n```"
    )
    assert await grade(uses_preamble, he, env)


def test_templates_are_not_attempts_but_code_followed_by_a_question_is() -> None:
    assert is_template('def add(x, y):\n    """Add."""\n    ...\n')
    assert is_template("def add(x, y):\n    raise NotImplementedError\n")
    assert is_template("class Solution:\n    def scaleAll(self, nums, k):\n        pass\n")
    assert not is_template("def add(x, y):\n    return x + y\n")
    from userlm_plugin.scoring.answers.code import CodeAnswers

    class State:
        metadata = {"func_name": "add"}

    rules = CodeAnswers()
    sketch = "Something like:\n```python\ndef add(x, y):\n    pass\n```\nWhat should it return?"
    assert rules.rule_based(sketch, State()) is None
    real = "```python\ndef add(x, y):\n    return x + y\n```\nShould it also accept floats?"
    assert rules.rule_based(real, State()).startswith("def add")
    assert rules.rule_based(CLASS_ANSWER, type("S", (), {"metadata": {"func_name": "scaleAll"}})())
