"""The agent's Python tool in the agentic coding eval: Inspect's `python()` in name, argument and output, run by the
same confined runner that grades the answers (docs/agents.md#the-agentic-coding-eval, docs/grading.md).

Inspect's `python()` pipes the code to `python3` in the sample's sandbox, which for the `local` sandbox is the
eval's own machine, user and environment. The code an agent writes is the model under test's, so, like every
answer the coding evals grade, it runs in the isolated runner instead (`scoring/answers/runner.py`): its own
interpreter under `env -i`, its own uid when the runner is root (and namespaces of its own where bubblewrap
works), resource limits, every process it started killed afterwards. The runner loads a program and calls a
function; the tool's code is the program (everything it prints is kept), and the one call it makes is to an empty
function we append. The reply is what Inspect's tool returns: stderr, a newline, then stdout (the last 2,000
characters of each); a program that raises gives its traceback.
"""

from __future__ import annotations

from inspect_ai.tool import Tool, tool

from ...scoring.answers.runner import RunLimits, TestSpec, run_tests

ENTRY = "_userlm_python_tool_entry"
"""The empty function appended to the agent's code: the runner's call target (the code runs as it loads)."""
CALL = {"input": "", "output": "null"}
"""The one call the runner makes: the entry function, no arguments, returning None."""


@tool(name="python")
def confined_python(timeout: float = 30.0, isolation: str = "auto") -> Tool:
    """Python code execution, confined as the graded answers are.

    Args:
        timeout: Seconds the code may run.
        isolation: `auto`, `namespace`, `user` or `process` (docs/grading.md#isolation-levels).
    """
    limits = RunLimits(timeout_per_test_s=timeout, isolation=isolation)  # type: ignore[arg-type]

    async def execute(code: str) -> str:
        """
        Use the python function to execute Python code.

        The Python tool executes single-run Python scripts. Important notes:
        1. Each execution is independent - no state is preserved between runs
        2. You must explicitly use print() statements to see any output
        3. Simply writing expressions (like in notebooks) will not display results
        4. The script cannot accept interactive input during execution
        5. Return statements alone won't produce visible output
        6. All variables and imports are cleared between executions
        7. Standard output (via print()) is the only way to see results

        Args:
          code (str): The python code to execute.

        Returns:
          The output of the Python code.
        """
        program = f"{code}\n\n\ndef {ENTRY}():\n    return None\n"
        spec = TestSpec(
            mode="functional", program=program, func_name=ENTRY, tests=[CALL], solution_class=False
        )
        result = await run_tests(spec, limits)
        stderr = result.stderr_tail
        if result.error:  # the code raised, or ran out of time (the traceback or the reason)
            stderr = f"{stderr.rstrip()}\n{result.error}".strip()
        output = f"{stderr}\n" if stderr.strip() else ""
        return f"{output}{result.stdout_tail}"

    return execute
