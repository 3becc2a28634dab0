"""Code extraction (LiC's rule-based extractor, paper.md §3.2-3.3) and test programs."""

from userlm_plugin.evals.sharded.humaneval import load_humaneval
from userlm_plugin.scoring.answers.code import build_spec, code_blocks, extract_function, prompt_context


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
    spec = build_spec(
        "def add(a, b):\n    return a + b\n",
        {
            "func_name": "add",
            "code_tests": {"mode": "functional", "public": [{"input": "1\n2", "output": "3"}]},
        },
    )
    assert spec.mode == "functional" and spec.known_test_count() == 1
