"""Math conversations from Lost in Conversation (GSM8K), as in the UserLM paper §4.

    inspect eval evals/math_sharded.py --model litellm/openai/gpt-4o \
        --model-role user=userlm/microsoft/UserLM-8b -T setting=userlm

Settings: full | concat | sharded | userlm | scripted | snowball | recap (see userlm_plugin/data/samples.py).
"""

from inspect_ai import Task, task

from userlm_plugin.evals.sharded.lic import LIC_REVISION
from userlm_plugin.evals.sharded.task import sharded_task


@task
def math_sharded(
    setting: str = "userlm",
    data: str | None = None,
    revision: str = LIC_REVISION,
    limit: int | None = None,
    epochs: int = 10,
    shuffle: bool = False,
    seed: int | None = None,
    max_turns: int | None = None,
    on_invalid: str = "skip",
) -> Task:
    """The math half of the paper's extrinsic evaluation (GSM8K flexible match of the last number).

    Args:
        setting: Who plays the user and how the instruction is given (default `userlm`, the paper's §4).
        data: Local copy of lost_in_conversation.json (default: download at `revision`).
        revision: HF dataset revision to download.
        limit: Keep the first N instructions (after shuffling).
        epochs: Conversations per instruction (paper: 10); P/A90/U are computed over them.
        shuffle: Shuffle the instructions (with `seed`).
        seed: Shuffle seed.
        max_turns: Cap on simulated user turns (default per setting: 1 / 16 / 8 for userlm).
        on_invalid: Malformed LiC records: `skip` (logged with task_id) or `fail`.
    """
    return sharded_task(
        "math",
        setting=setting,
        dataset="lic",
        data=data,
        revision=revision,
        limit=limit,
        epochs=epochs,
        shuffle=shuffle,
        seed=seed,
        max_turns=max_turns,
        on_invalid=on_invalid,  # type: ignore[arg-type]
    )
