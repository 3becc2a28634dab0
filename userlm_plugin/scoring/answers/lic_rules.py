"""Lost in Conversation's own answer rules, step for step and bugs included, for the `lic_exact` scoring mode.

Reimplemented from microsoft/lost_in_conversation at commit ba6b9a2 (MIT licence, Copyright (c) Microsoft
Corporation): `tasks/code/task_code.py` (`extract_answer`, `_extract_function_from_code`, `evaluator_function`)
and `tasks/math/task_math.py` (`evaluator_function`). The regular expressions and the order of the steps are LiC's;
the code is ours. What each step does to a score, and how the `corrected` mode differs, is tabulated in
docs/scoring.md ("Scoring modes: lic_exact and corrected"); tests/test_lic_differential.py pins every row.

What stays ours in `lic_exact` too: candidate code runs in our isolated runner (docs/grading.md), which compares
results with LiC's rule (`==` after a top-level tuple -> list) on plain data only.

Where LiC's own code raises, LiC's driver (`run_simulations.py`) prints the error and logs nothing for that
conversation, so it is missing from LiC's results (a rerun of the driver simulates it again). `LicCrash` marks that
case; the scorer records it (`modes.LIC_CRASH`) and the reliability metrics leave the conversation out.
"""

from __future__ import annotations

import ast
import re

LIC_FENCE = re.compile(r"```(?:python)?\s*(.*?)\s*```", re.DOTALL)
"""LiC's code-block pattern: closed fences only; a tag other than `python` (`py`, `Python`) stays in the block."""
SOLUTION_TEXT = "class Solution"
"""LiC decides "class answer" by this text anywhere in the reply (and again in the program, `eval_code.py`)."""
LIC_MATH_NUMBER = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
"""lm-evaluation-harness's GSM8K flexible-match pattern, as LiC uses it (its last match is the prediction)."""
LIC_MATH_IGNORE = (",", "\\$", "(?s).*#### ", "\\.$")
"""Removed from prediction and gold before the exact comparison (LiC's `regexes_to_ignore`): commas, dollar
signs, anything up to `#### `, and ONE trailing dot."""


class LicCrash(Exception):
    """LiC's own code raises on this reply (the message says where and why), aborting the conversation."""


# ---------------------------------------------------------------- code: extraction (task_code.py extract_answer)


def extract_answer(text: str) -> str:
    """LiC's `TaskCode.extract_answer`: the code LiC grades for a reply ("" when it finds no function).

    - the reply mentions `class Solution`: the last closed code block containing that text, whole; no such block
      raises (`LicCrash`: LiC's list index is out of range);
    - else, for the closed blocks from last to first, the first that yields a function (`function_from_code`);
      blocks without one give "";
    - no closed block: the text from the LAST `import` substring (else the last `def` substring) onward, after
      dropping a first line that starts with a backtick (an unclosed fence).
    """
    blocks = LIC_FENCE.findall(text)
    if SOLUTION_TEXT in text:
        with_class = [block for block in blocks if SOLUTION_TEXT in block]
        if not with_class:
            raise LicCrash(
                "LiC's extract_answer raises IndexError: the reply mentions `class Solution` but no closed code "
                "block contains it"
            )
        return with_class[-1]
    if blocks:
        for block in reversed(blocks):
            if result := function_from_code(block):
                return result
        return ""
    text = text.strip()
    if text.startswith("```") or text.startswith("`"):
        text = text[text.find("\n") :].strip()
    import_at, def_at = text.rfind("import"), text.rfind("def")
    start = import_at if import_at >= 0 else def_at
    if start >= 0:
        text = text[start:]
    return function_from_code(text)


def function_from_code(code: str) -> str:
    """LiC's `_extract_function_from_code`: every import ANYWHERE in the code (unparsed, hoisted to the top) and the
    last top-level `def` (not `async def`) with its decorators, as written; "" when it does not parse or has none."""
    try:
        tree = ast.parse(code)
    except Exception:  # noqa: BLE001 - LiC catches everything here
        return ""
    imports = [ast.unparse(n) for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    top_level = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    if not top_level:
        return ""
    function = top_level[-1]
    start = function.decorator_list[0].lineno - 1 if function.decorator_list else function.lineno - 1
    text = "\n".join(code.splitlines()[start : function.end_lineno])
    return "\n".join(imports) + "\n\n" + text if imports else text


# ---------------------------------------------------------------- code: the graded program (evaluator_function)


def prompt_imports(prompt: str | None) -> str:
    """The top-level imports of a HumanEval record's prompt, unparsed, one per line (LiC prepends them)."""
    if not prompt:
        return ""
    try:
        tree = ast.parse(prompt)
    except SyntaxError:
        return ""
    return "\n".join(ast.unparse(n) for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom))


def graded_program(answer: str, func_name: str, imports: str = "") -> str | None:
    """LiC's `evaluator_function` before the tests run: fence markers deleted; None (score 0 without running) when
    no `def ` is left; the prompt's imports prepended; then the name between the first `def ` and the next `(`
    replaced by `func_name` EVERYWHERE in the text, imports included (a function named `f` turns
    `from typing import List` into `<func_name>rom typing import List`)."""
    code = answer.replace("```python", "").replace("```", "")
    if "def " not in code:
        return None
    if imports:
        code = imports + "\n\n" + code
    old_name = code.split("def ")[1].split("(")[0].strip()
    return code.replace(old_name, func_name)


# ---------------------------------------------------------------- math (task_math.py evaluator_function)


def math_gold(answer: str) -> str:
    """LiC's gold: the text after the first `####` of the GSM8K rationale, stripped and lower-cased."""
    return answer.split("####")[1].strip().lower()


def math_prediction(answer: str) -> str | None:
    """LiC's prediction: the LAST match of the flexible pattern, kept even when it holds no digit (`$$`, `...`);
    a `$` answer ending `.00` goes through `rstrip(".00")` (characters, not a suffix: `$100.00` -> `$1`). None
    when nothing matches (LiC scores 0)."""
    matches = LIC_MATH_NUMBER.findall(answer.strip())
    if not matches:
        return None
    prediction = next(group for group in matches[-1] if group)
    if "$" in prediction and prediction.endswith(".00"):
        prediction = prediction.rstrip(".00")  # noqa: B005 - LiC's bug, reproduced on purpose
    return prediction


def normalise(value: str) -> str:
    """LiC's `regexes_to_ignore`, applied in order to prediction and gold."""
    for pattern in LIC_MATH_IGNORE:
        value = re.sub(pattern, "", value)
    return value
