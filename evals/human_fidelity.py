"""How human is this simulated user? Real human conversations replayed turn by turn (docs/fidelity.md).

    inspect eval evals/human_fidelity.py -T data=my_conversations.jsonl -T simulator=prompted_flat \\
        --model-role user=openai-api/<service>/<model>
    inspect eval evals/human_fidelity.py -T source=simulatorarena -T simulator=userlm \\
        --model-role user=userlm/microsoft/UserLM-8b
    inspect eval evals/human_fidelity.py -T source=simulatorarena -T protocol=correlation \\
        -T simulator=prompted --model-role user=... --model-role judge=... \\
        -T assistants='{gpt-4o: openai/gpt-4o, "*": openai/gpt-4o-mini}'

Then `userlm-plugin compare LOG_DIR --view fidelity` puts the simulators side by side with the people as their
own row. What each protocol does and every metric: `userlm_plugin/evals/human_fidelity/task.py`, docs/fidelity.md.
"""

from typing import Any, Literal

from inspect_ai import Task, task

from userlm_plugin.evals.human_fidelity.task import human_fidelity_task


@task
def human_fidelity(
    data: str | None = None,
    source: Literal["simulatorarena"] | None = None,
    subset: Literal["document_creation", "math_tutoring"] = "document_creation",
    simulator: str | dict[str, Any] = "userlm",
    protocol: Literal["replay", "correlation"] = "replay",
    assistants: dict[str, str] | None = None,
    max_turns: int = 15,
    background: bool = True,
    limit: int | None = None,
    on_invalid: Literal["skip", "fail"] = "skip",
) -> Task:
    """A simulator against real people, on the same conversations.

    Args:
        data: Conversations: a JSONL file in OpenAI messages format (optional `intent`, `user_id`; WildChat/LMSYS
            rows too) or a SimulatorArena annotations .json file.
        source: `simulatorarena`: download SimulatorArena's file at the pinned commit (cached).
        subset: With source=simulatorarena: document_creation or math_tutoring (its problem text is redacted).
        simulator: Preset name (userlm, prompted, prompted_flat, scripted, ...) or YAML preset path; its model is
            the `user` role.
        protocol: replay (the fidelity metrics) or correlation (SimulatorArena's rating correlation).
        assistants: correlation only: SimulatorArena's assistant names -> Inspect models ("*" = any other).
        max_turns: correlation only: cap on simulated user turns (SimulatorArena's simulations use 15).
        background: SimulatorArena document creation: give the simulator the person's private background
            (sample metadata `user_background`, appended to the intent).
        limit: Replay only the first N conversations.
        on_invalid: skip (default, each logged) or fail on records that cannot be replayed.
    """
    return human_fidelity_task(
        data=data,
        source=source,
        subset=subset,
        simulator=simulator,
        protocol=protocol,
        assistants=assistants,
        max_turns=max_turns,
        background=background,
        limit=limit,
        on_invalid=on_invalid,
    )
