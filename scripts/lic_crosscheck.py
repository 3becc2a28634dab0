"""Check `-T scoring=lic_exact` against Lost in Conversation's own code (docs/scoring.md, "How the table is pinned").

    .venv/bin/python scripts/lic_crosscheck.py --lic /path/to/lost_in_conversation   # a checkout at ba6b9a2

Two checks, both against LiC's functions themselves (`tasks/code/task_code.py` `TaskCode.extract_answer` and
`evaluator_function`, `tasks/math/task_math.py` `TaskMath.evaluator_function`):
1. every row of the differential table (tests/test_lic_differential.py): LiC's verdict on the row's reply and record
   must be the row's `lic_exact` verdict (a raise is `dropped`). LiC's evaluator runs the replies' code in a
   child process of its own, unsandboxed, as LiC does; the table's replies are benign;
2. the 164 canonical HumanEval programs in nine reply forms: `lic_rules.extract_answer` must return what LiC's
   returns (or raise where it raises), and `lic_rules.graded_program` the program LiC's evaluator would run, byte for
   byte (LiC's `check_correctness` is replaced by a recorder, so nothing runs).

LiC's code is not vendored (MIT, but the suite must not depend on a second repository), so this is a script, not a
test. Exit status 1 when anything differs.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_lic(checkout: Path) -> tuple[types.ModuleType, types.ModuleType]:
    """LiC's code and math task modules, imported from `checkout` without its `tasks/__init__.py` (which imports
    every task and their dependencies)."""
    sys.path.insert(0, str(checkout))
    for name in ("tasks", "tasks.code", "tasks.math"):
        package = types.ModuleType(name)
        package.__path__ = [str(checkout / name.replace(".", "/"))]
        sys.modules[name] = package
    os.chdir(checkout)  # LiC opens its prompt files relative to the working directory
    return importlib.import_module("tasks.code.task_code"), importlib.import_module("tasks.math.task_math")


def table_rows(task_code: types.ModuleType, task_math: types.ModuleType) -> int:
    import test_lic_differential as table

    from userlm_plugin.scoring.answers.math import MathAnswers

    code, math = task_code.TaskCode(), task_math.TaskMath()
    bad = 0
    for row in table.CODE_ROWS:
        try:
            extracted = code.extract_answer(row.reply)
            verdict = (
                table.PASS
                if code.evaluator_function(extracted, table.lic_records()[row.record])["score"] == 1
                else table.FAIL
            )
        except Exception:  # noqa: BLE001 - LiC raising is the `dropped` verdict
            verdict = table.DROPPED
        bad += verdict != row.lic_exact
        print(
            f"{'ok ' if verdict == row.lic_exact else 'BAD'} code {row.id}: LiC {verdict}, table {row.lic_exact}"
        )
    for row in table.MATH_ROWS:
        state = table.math_state(row.gold)
        span, _ = asyncio.run(MathAnswers("lic_exact").extract(row.reply, state, use_grader=False))  # type: ignore[arg-type]
        score = math.evaluator_function(span, {"answer": f"worked out\n#### {row.gold}"})["score"]
        verdict = table.PASS if score == 1 else table.FAIL
        bad += verdict != row.lic_exact
        print(
            f"{'ok ' if verdict == row.lic_exact else 'BAD'} math {row.id}: LiC {verdict}, table {row.lic_exact}"
        )
    return bad


def _indented(program: str) -> str:
    return "".join("    " + line + "\n" for line in program.splitlines())


FORMS = {
    "fenced": lambda p: f"Here:\n```python\n{p}\n```\nDone.",
    "unfenced": lambda p: p,
    "unclosed": lambda p: f"```python\n{p}\n",
    "after prose": lambda p: f"Sure, here it is:\n{p}",
    "py fence": lambda p: f"```py\n{p}\n```",
    "usage block after": lambda p: f"```python\n{p}\n```\nUsage:\n```python\nprint(1)\n```",
    "renamed to f": lambda p: f"```python\n{p}\n```",
    "class": lambda p: "```python\nclass Solution:\n" + _indented(p) + "```",
    "class, unclosed": lambda p: "```python\nclass Solution:\n" + _indented(p),
}


def canonical_texts(task_code: types.ModuleType) -> int:
    from userlm_plugin.evals.sharded.humaneval import load_humaneval
    from userlm_plugin.scoring.answers import lic_rules

    recorded: dict[str, str] = {}

    def record(sample, code, tests, timeout):  # noqa: ARG001 - LiC's check_correctness signature
        recorded["program"] = code
        return [True], {}

    task_code.check_correctness = record
    code = task_code.TaskCode()
    replies = bad = 0
    for problem in load_humaneval():
        for form_name, form in FORMS.items():
            program = problem.canonical_program
            if form_name == "renamed to f":
                program = program.replace(f"def {problem.entry_point}(", "def f(")
            reply = form(program)
            replies += 1
            try:
                theirs: tuple[str, str] = ("extracted", code.extract_answer(reply))
            except Exception as ex:  # noqa: BLE001
                theirs = ("raised", type(ex).__name__)
            try:
                ours: tuple[str, str] = ("extracted", lic_rules.extract_answer(reply))
            except lic_rules.LicCrash:
                ours = ("raised", "IndexError")
            if theirs != ours:
                bad += 1
                print(f"BAD extraction {problem.task_id} ({form_name})")
                continue
            if theirs[0] == "raised":
                continue
            recorded.clear()
            sample = {"prompt": problem.prompt, "metadata": {"func_name": problem.entry_point}}
            sample["public_test_cases"] = "[]"
            code.evaluator_function(theirs[1], sample)
            imports = lic_rules.prompt_imports(problem.prompt)
            if recorded.get("program") != lic_rules.graded_program(ours[1], problem.entry_point, imports):
                bad += 1
                print(f"BAD program {problem.task_id} ({form_name})")
    print(f"{replies} replies from the canonical HumanEval programs, {bad} differences")
    return bad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--lic", type=Path, required=True, help="a checkout of microsoft/lost_in_conversation"
    )
    args = parser.parse_args()
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    task_code, task_math = load_lic(args.lic.resolve())
    bad = table_rows(task_code, task_math) + canonical_texts(task_code)
    print("all agree" if not bad else f"{bad} differences")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
