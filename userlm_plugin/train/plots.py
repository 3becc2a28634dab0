"""`userlm_training.png`: the training loss of every step and the held-out perplexity, next to the record.

matplotlib is optional (the `report` and `train` extras install it); without it the plot is skipped and
`train sft` says so. The Agg backend draws without a display.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def plot_training(record: dict[str, Any], path: Path) -> str | None:
    """Draw the record's loss curve and held-out perplexity to `path`; its path, or None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    losses = record.get("losses") or []
    heldout = record.get("heldout") or []
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    if losses:
        left.plot([s for s, _ in losses], [v for _, v in losses], marker="." if len(losses) < 60 else None)
    left.set(title="training loss (user tokens)", xlabel="step", ylabel="mean NLL per token")
    if heldout:
        steps = [s for s, _ in heldout]
        ppl = [math.exp(v) for _, v in heldout]
        right.plot(steps, ppl, marker="o", color="tab:orange")
        for step, value in zip(steps, ppl, strict=True):
            right.annotate(
                f"{value:.2f}", (step, value), textcoords="offset points", xytext=(0, 6), ha="center"
            )
    else:
        right.text(
            0.5, 0.5, "no held-out data (--eval-data)", ha="center", va="center", transform=right.transAxes
        )
    right.set(title="held-out user-token perplexity", xlabel="step (0: base model)", ylabel="perplexity")
    profile = (record.get("profile") or {}).get("name", "")
    fig.suptitle(
        f"{record.get('base_model', '')} · profile {profile} · {record.get('steps', 0)} steps", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)
