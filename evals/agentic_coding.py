"""An agent that must ask its user: Lost in Conversation's sharded code instructions given to a `react` agent with
a Python tool, the shards known only to the simulated user (docs/agents.md#the-agentic-coding-eval).

    inspect eval evals/agentic_coding.py --model openai/gpt-4o --model-role user=openai/gpt-4o-mini
    inspect eval evals/agentic_coding.py -T setting=userlm --model openai/gpt-4o \
        --model-role user=userlm/microsoft/UserLM-8b

`-T` arguments (validated by `userlm_plugin/evals/agentic/task.py`; an unknown one is an error):
    setting           sharded (default: LiC's user LLM) | scripted (shards verbatim, no model) | userlm
    dataset           lic (default) | humaneval (userlm only: HumanEval has no shards)
    data, revision    a local lost_in_conversation.json, or the HF revision to download
    sources           humaneval, lcb_easy, lcb_medium, lcb
    max_turns         cap on simulated user turns, questions included (default 16, 8 for userlm)
    ask_retries       ask_user questions asked again after an answer that does not fit (default 2)
    tool_timeout      seconds per python tool call (default 30)
    sandbox           local (default) | docker
    scoring           corrected (default) | lic_exact: the coding eval's scoring modes (docs/scoring.md)
    on_invalid        skip (default) | fail, for malformed LiC records
    timeout_per_test  seconds per test when grading (LiC: 6)
Use Inspect's own --limit, --epochs (default 10), --message-limit (default 100) and --sample-shuffle.
"""

from typing import Any

from inspect_ai import Task, task

from userlm_plugin.evals.agentic.task import agentic_coding_task


@task
def agentic_coding(setting: str = "sharded", **options: Any) -> Task:
    """The agentic coding eval (arguments: the module docstring)."""
    return agentic_coding_task(setting=setting, **options)
