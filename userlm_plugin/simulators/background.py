"""What the simulated user knows beyond its intent: sample metadata `user_background`
(docs/agents.md#what-the-simulated-user-knows).

An agent that asks its user for something (Inspect's `ask_user`, or a question in its reply) can only get an
answer the user has. Lost in Conversation keeps those facts in shards (the sharded and scripted users read them);
SimulatorArena gives each simulated user a background of question/answer pairs. `user_background` is the second
kind, for any sample: a string, a list of strings, a mapping, or a list of `{"question", "answer"}` pairs (the shape
of SimulatorArena's `document_creation_user_simulator_background.json`). It is appended to the intent, the input
the User LM and the prompted simulators condition on, for every turn, so the user knows it all conversation long.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ._common import load_prompts, render

BACKGROUND_KEY = "user_background"
"""Sample metadata key of what the simulated user knows (and the assistant does not)."""


def background_facts(raw: Any, where: str = "sample") -> list[str]:
    """`user_background` as one line per fact; a `ConfigError` naming the field when it has another shape."""
    prompts = load_prompts("background")
    if isinstance(raw, str):
        items: list[Any] = [raw]
    elif isinstance(raw, dict):
        items = [f"{key}: {value}" for key, value in raw.items()]
    elif isinstance(raw, list):
        items = raw
    else:
        items = [None]
    facts: list[str] = []
    for i, item in enumerate(items):
        if isinstance(item, dict) and set(item) >= {"question", "answer"}:
            item = render(
                prompts["qa_fact"], question=str(item["question"]).strip(), answer=str(item["answer"]).strip()
            )
        if not isinstance(item, str):
            raise ConfigError(
                f"{where}: metadata '{BACKGROUND_KEY}' must be a string, a list of strings, a mapping, or a list of "
                f'{{"question": ..., "answer": ...}} pairs; item {i} is {item!r:.200}.'
            )
        if item.strip():
            facts.append(" ".join(item.split()))
    return facts


def intent_with_background(intent: str | None, metadata: dict[str, Any], where: str = "sample") -> str | None:
    """`intent` followed by the sample's `user_background` facts (unchanged when the sample has none)."""
    raw = metadata.get(BACKGROUND_KEY)
    if raw is None:
        return intent
    facts = background_facts(raw, where)
    if not facts:
        return intent
    lines = "\n".join(f"- {fact}" for fact in facts)
    return render(
        load_prompts("background")["with_background"], intent=(intent or "").strip(), facts=lines
    ).strip()
