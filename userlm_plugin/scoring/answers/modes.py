"""The two scoring modes of the sharded evals (docs/scoring.md, "Scoring modes: lic_exact and corrected").

- `corrected` (the default): our rules, with every difference from Lost in Conversation listed in docs/scoring.md
  and the direction it moves a score;
- `lic_exact` (what `-T paper=true` selects; also `-T scoring=lic_exact`): LiC's own behaviour where the published
  numbers depend on it, bugs included (`lic_rules.py`): its code extraction and text-substitution rename, its
  `class Solution` handling, its math regex and dot stripping, no cap on the sharded user's tokens.

Both modes run candidate code in the same isolated runner and compare returned values with the same rule (Python's
`==` after LiC's tuple -> list rule, `isolation/plain.py`): the mode changes what is graded and how a number is
read, never who decides the verdict.
"""

from __future__ import annotations

from typing import Literal, get_args

ScoringMode = Literal["corrected", "lic_exact"]
SCORING_MODES: tuple[str, ...] = get_args(ScoringMode)
DEFAULT_SCORING: ScoringMode = "corrected"
PAPER_SCORING: ScoringMode = "lic_exact"
"""The mode `-T paper=true` selects: the paper's numbers come from LiC's scoring code (arXiv 2510.06552 §4)."""

SCORING_KEY = "scoring"
"""Where the mode is recorded: every answer score's metadata, the task metadata, the log's tags."""
LIC_CRASH = "lic_crash"
"""Score/check metadata key (its value: why) for a turn on which LiC's own code raises and aborts the
conversation. LiC's driver logs nothing for such a conversation and runs it again, so its averages leave it out;
the reliability metrics do the same (`reliability.py`)."""
