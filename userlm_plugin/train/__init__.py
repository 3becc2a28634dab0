"""Train your own User LM (arXiv 2510.06552 §2): intents -> dialogue flipping -> SFT -> user-token perplexity.

Every step is a `userlm-plugin train ...` subcommand (train/cli.py) over plain files, so each can be rerun or
swapped out; docs/training.md walks through them. Modules, each with one job:

    conversations.py  read + validate OpenAI-format JSONL, drop duplicates, split by user/conversation
    loaders.py        WildChat / LMSYS dumps from the hub at pinned revisions (optional, needs network)
    intents.py        a high-level intent per conversation from any Inspect model (resumable cache)
    flip.py           a conversation -> token ids + labels (loss on user turns only), checked against the
                      `userlm/` runtime's own prompt rendering
    tokens.py         `<|endconversation|>` and UserLM's chat template on a base model's tokenizer/embeddings
    profiles.py       the training recipes (paper, public reproduction, tiny CPU) as data
    sft.py            full fine-tuning or LoRA with TRL's SFTTrainer; an output folder `userlm/<dir>` loads
    perplexity.py     held-out user-token NLL/PPL and teacher-forced P(<|endconversation|>)

Import-light: nothing here imports torch, transformers, TRL or peft at module import time.
"""
