"""Detects a prompted simulator that stopped playing the user and wrote an assistant's reply.

Prompted assistants drop the user role in 20-60% of conversations (arXiv 2510.06552 §3, "role adherence"; docs/metrics.md): they open with
"Sure! Here's...", call themselves an AI, offer help, or answer the question instead of asking it. The patterns
live in `prompts/role_break.yaml` so they can be reviewed and extended without touching code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from ._common import load_prompts

_ANCHORED = {"openers", "answers"}


@dataclass(frozen=True)
class RoleBreakRule:
    category: str
    pattern: re.Pattern[str]

    def matches(self, text: str) -> bool:
        return bool(self.pattern.search(text))


@cache
def role_break_rules() -> tuple[RoleBreakRule, ...]:
    rules: list[RoleBreakRule] = []
    for category, patterns in load_prompts("role_break").items():
        for source in patterns:
            if category in _ANCHORED and not source.startswith("^"):
                source = "^" + source
            rules.append(RoleBreakRule(category, re.compile(source, re.IGNORECASE)))
    return tuple(rules)


def detect_role_break(text: str) -> str | None:
    """The first rule a draft user turn breaks, as "category: pattern", or None if it reads like a user."""
    stripped = text.strip()
    for rule in role_break_rules():
        if rule.matches(stripped):
            return f"{rule.category}: {rule.pattern.pattern}"
    return None
