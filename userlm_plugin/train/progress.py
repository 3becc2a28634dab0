"""Progress bars for the long training steps (flip, sft, perplexity): tqdm's, on stderr.

Every step that can take minutes on a CPU (tokenizing thousands of conversations, scoring held-out perplexity,
training) shows one, so a run is never silent (a 7-minute `train perplexity` printed nothing before). tqdm comes
with transformers and huggingface_hub; without it the loop simply runs. `USERLM_PROGRESS=0` turns the bars off.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress_enabled() -> bool:
    return os.environ.get("USERLM_PROGRESS", "1").strip().lower() not in ("0", "false", "no", "off")


def progress_bar(items: Iterable[T], label: str | None, total: int | None = None) -> Iterator[T]:
    """`items` with a bar labelled `label` on stderr (None, or `USERLM_PROGRESS=0`: no bar)."""
    if label is None or not progress_enabled():
        yield from items
        return
    try:
        from tqdm.auto import tqdm
    except ImportError:
        yield from items
        return
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    # mininterval: a bar redrawn at most every 2 s keeps a log file readable when stderr is not a terminal
    yield from tqdm(items, desc=label, total=total, file=sys.stderr, mininterval=2.0, dynamic_ncols=True)
