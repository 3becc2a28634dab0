"""Train your own User LM (arXiv 2510.06552 §2): intents -> dialogue flipping -> SFT -> user-token perplexity.

Every step is a `userlm-plugin train ...` subcommand (train/cli.py) over plain files, and a Python function:

    from userlm_plugin.train import evaluate_model, flip_conversations, train_user_lm

    split = flip_conversations("conversations.jsonl", "data/split", model=".cache/smollm2-135m-instruct")
    result = train_user_lm(".cache/smollm2-135m-instruct", split.train, "models/mine", profile="cpu",
                           eval_records=split.test)
    reports = evaluate_model("models/mine", split.test)     # one PerplexityReport per condition

docs/training.md walks through them. Modules, each with one job:

    conversations.py  read + validate OpenAI-format JSONL, drop duplicates, split by user/conversation
    loaders.py        WildChat / LMSYS dumps from the hub at pinned revisions (optional, needs network)
    intents.py        a high-level intent per conversation from any Inspect model (resumable cache)
    prepare.py        the `flip` step: split, and check every conversation against a model's rendering
    flip.py           a conversation -> token ids + labels (loss on user turns only), checked against the
                      `userlm/` runtime's own prompt rendering
    windows.py        conversations longer than max_length as overlapping windows (late and end turns kept)
    tokens.py         `<|endconversation|>` and the chat template (the model's own, else UserLM's)
    profiles.py       the training recipes (paper, public reproduction, cpu, tiny) as data
    sft.py            full fine-tuning or LoRA on transformers' Trainer; an output folder `userlm/<dir>` loads
    perplexity.py     held-out user-token NLL/PPL and teacher-forced P(<|endconversation|>)
    progress.py, plots.py  progress bars on the long steps; the loss / held-out perplexity PNG

Import-light: nothing here imports torch, transformers or peft at module import time.
"""

from __future__ import annotations

from .conversations import ChatRecord, read_conversations
from .perplexity import PerplexityReport, evaluate_model
from .prepare import FlipRun, flip_conversations
from .profiles import PROFILES, SFTProfile, get_profile
from .sft import SFTResult, train_user_lm

__all__ = [
    "PROFILES",
    "ChatRecord",
    "FlipRun",
    "PerplexityReport",
    "SFTProfile",
    "SFTResult",
    "evaluate_model",
    "flip_conversations",
    "get_profile",
    "read_conversations",
    "train_user_lm",
]
