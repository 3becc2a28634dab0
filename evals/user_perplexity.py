"""Held-out user-token perplexity of a User LM (arXiv 2510.06552 §3, the paper's distributional-alignment metric).

    inspect eval evals/user_perplexity.py -T data=held_out.jsonl --model none/none \\
        --model-role user=userlm/microsoft/UserLM-8b
    inspect eval evals/user_perplexity.py -T data=held_out.jsonl --model none/none \\
        --model-role user=userlm/./my-userlm -T condition=intent

`-T data=` is a conversation JSONL (OpenAI messages + `intent`; `userlm-plugin train flip` writes test.jsonl).
`-T condition=` intent | no_intent | both (default). The `user` role must be a local `userlm/` model (a folder or
hub id; `-M chat_template=` for a base model without a template). Metrics: pooled perplexity per condition over
all user tokens (`ppl_*`) and over the user turns alone (`ppl_turns_*`), and the calibration of the teacher-forced
end probability against where each real conversation ended. The same figures on the command line:
`userlm-plugin train perplexity`. See docs/training.md.
"""

from typing import Literal

from inspect_ai import Task, task

from userlm_plugin.evals.user_perplexity.task import user_perplexity_task


@task
def user_perplexity(
    data: str,
    condition: Literal["intent", "no_intent", "both"] = "both",
    limit: int | None = None,
) -> Task:
    """User-token perplexity of the `user` role's model on held-out conversations.

    Args:
        data: Conversation JSONL (OpenAI messages format with `intent`).
        condition: intent | no_intent | both.
        limit: Conversations to score (default: all).
    """
    return user_perplexity_task(data, condition=condition, limit=limit)
