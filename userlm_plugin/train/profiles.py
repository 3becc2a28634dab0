"""Training recipes as data: which numbers come from where (docs/training.md has the table).

* `paper` (the default): what the UserLM-8b model card states for UserLM-8b (https://huggingface.co/microsoft/UserLM-8b,
  "Training Details"): full-parameter fine-tuning of Llama3-8b-Base, maximum sequence length 2048, batch size 1024,
  learning rate 2e-5. The card does not give epochs, warmup, schedule or weight decay: those four are taken from
  the public reproduction (below), and marked so.
* `reproduction`: the public reproduction of the recipe (github.com/JosephJeesungSuh/dataset-signature-human-llm,
  `userlm_training/train.py`): 1 epoch, learning rate 2e-5 decaying to 2e-6, warmup ratio 0.1, weight decay 0,
  effective batch 64 (4 per GPU x 8 accumulation x 2 GPUs), samples of at most 4,096 tokens.
* `cpu`: ours, for a small real model (SmolLM2-135M-Instruct) on a laptop-class CPU: a learning rate that does not
  wreck a pretrained model (1e-4; `tiny`'s 3e-3 sent SmolLM2's held-out loss to 15.2 in two steps), windows of
  1024 tokens (long conversations are split, so late user turns and the end turn are kept: train/windows.py), a
  few dozen steps, no checkpoints kept once the run succeeds. docs/training.md#a-small-real-model-on-a-cpu has
  its measured time and perplexities.
* `tiny`: our CPU profile for the tests and a first dry run (a few dozen steps on a toy model): not a recipe.

The batch size is the EFFECTIVE batch (sequences per optimizer step); the trainer splits it into
`per_device_batch_size` x gradient accumulation x devices. `--method lora` trains LoRA adapters (our defaults:
rank 16, alpha 32, all linear layers, learning rate `lora_learning_rate`) plus the `<|endconversation|>` rows of
the embeddings, then merges them so the output folder is a plain model.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ConfigError


class SFTProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    method: Literal["full", "lora"] = "full"
    max_length: int = Field(gt=0)
    """Tokens per training sequence; a longer conversation is split into windows (or cut: `overflow`)."""
    overflow: Literal["window", "cut"] = "window"
    """A conversation over `max_length`: split into overlapping windows that keep every user turn and the end turn
    (train/windows.py), or cut at `max_length` keeping its start (the behaviour before windows)."""
    effective_batch_size: int = Field(gt=0)
    per_device_batch_size: int = Field(gt=0)
    learning_rate: float = Field(gt=0)
    min_learning_rate: float | None = None
    """Cosine decay floor (None: decay to 0)."""
    lora_learning_rate: float = Field(default=2e-4, gt=0)
    num_epochs: float = Field(default=1.0, gt=0)
    max_steps: int = -1
    """Stop after this many optimizer steps (-1: run the epochs)."""
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    weight_decay: float = Field(default=0.0, ge=0)
    dtype: Literal["auto", "bfloat16", "float32"] = "auto"
    """Training precision. auto: bfloat16 on a GPU that supports it, float32 otherwise."""
    save_dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    """Precision of the saved weights. auto: the base model's own (its config's `dtype`), so a bf16 checkpoint
    trained in fp32 on a CPU is saved at its own size, not twice it."""
    gradient_checkpointing: bool = True
    save_steps: int = Field(default=500, gt=0)
    save_total_limit: int | None = 2
    """Checkpoints kept while training (the oldest are deleted as new ones are written)."""
    keep_checkpoints: int = Field(default=1, ge=0)
    """Checkpoints left in `<out>/checkpoints/` once training finished (each holds the optimizer state, about 3x
    the weights): 1 lets `--resume` continue with more steps; 0 deletes them."""
    eval_steps: int | None = Field(default=None, gt=0)
    """Held-out loss every this many steps (None: before and after training only)."""
    logging_steps: int = Field(default=1, gt=0)
    """Every step by default: the final line and the loss curve report the last step's loss, not an earlier one."""
    lora_rank: int = Field(default=16, gt=0)
    lora_alpha: int = Field(default=32, gt=0)
    lora_dropout: float = Field(default=0.05, ge=0, lt=1)
    seed: int = 42
    sources: dict[str, str] = Field(default_factory=dict)
    """Field -> where its value comes from (printed by `train sft --show-profile`, written with the model)."""

    def gradient_accumulation(self, devices: int = 1) -> int:
        per_step = self.per_device_batch_size * max(devices, 1)
        return max(1, round(self.effective_batch_size / per_step))


_CARD = "model card (microsoft/UserLM-8b, Training Details)"
_REPRO = "public reproduction (JosephJeesungSuh/dataset-signature-human-llm, userlm_training/train.py)"

PROFILES: dict[str, SFTProfile] = {
    "paper": SFTProfile(
        name="paper",
        max_length=2048,
        effective_batch_size=1024,
        per_device_batch_size=4,
        learning_rate=2e-5,
        min_learning_rate=2e-6,
        num_epochs=1,
        warmup_ratio=0.1,
        weight_decay=0.0,
        sources={
            "method": f"full fine-tuning: {_CARD}",
            "max_length": _CARD,
            "effective_batch_size": _CARD,
            "learning_rate": _CARD,
            "num_epochs": f"not on the card; {_REPRO}",
            "warmup_ratio": f"not on the card; {_REPRO}",
            "min_learning_rate": f"not on the card; {_REPRO}",
            "weight_decay": f"not on the card; {_REPRO}",
            "per_device_batch_size": "ours (memory); the effective batch is what the recipe fixes",
        },
    ),
    "reproduction": SFTProfile(
        name="reproduction",
        max_length=4096,
        effective_batch_size=64,
        per_device_batch_size=4,
        learning_rate=2e-5,
        min_learning_rate=2e-6,
        num_epochs=1,
        warmup_ratio=0.1,
        weight_decay=0.0,
        sources={
            "all": f"{_REPRO}: 1 epoch, lr 2e-5 -> 2e-6, warmup 0.1, weight decay 0, batch 4 x 8 accumulation x "
            "2 GPUs = 64, samples over 4,096 tokens excluded (we truncate them instead)",
        },
    ),
    "cpu": SFTProfile(
        name="cpu",
        max_length=1024,
        effective_batch_size=4,
        per_device_batch_size=1,
        learning_rate=1e-4,
        min_learning_rate=1e-5,
        lora_learning_rate=5e-4,
        num_epochs=1,
        max_steps=24,
        warmup_ratio=0.1,
        dtype="float32",
        gradient_checkpointing=False,
        save_steps=12,
        save_total_limit=1,
        keep_checkpoints=0,
        sources={
            "all": "ours: a short CPU run of a small real model (SmolLM2-135M-Instruct on 2 cores), measured in "
            "docs/training.md; not the paper's recipe",
            "learning_rate": "ours: 1e-4 lowered SmolLM2's held-out user-token perplexity; 3e-3 (tiny) wrecked it",
            "max_length": "ours: windows of 1024 tokens (train/windows.py) keep every user turn and end turn of "
            "SimulatorArena's ~3k-token conversations at a CPU's pace",
            "per_device_batch_size": "ours: one sequence at a time (no padding), 4 accumulated per step",
        },
    ),
    "tiny": SFTProfile(
        name="tiny",
        max_length=512,
        effective_batch_size=4,
        per_device_batch_size=4,
        learning_rate=3e-3,
        lora_learning_rate=1e-2,
        num_epochs=1,
        max_steps=40,
        warmup_ratio=0.1,
        dtype="float32",
        gradient_checkpointing=False,
        save_steps=20,
        sources={"all": "ours: a CPU smoke profile for toy models (tests, dry runs), not a recipe"},
    ),
}
DEFAULT_PROFILE = "paper"


def get_profile(name: str, **overrides: object) -> SFTProfile:
    """A named profile with command-line overrides applied (None values are ignored)."""
    if name not in PROFILES:
        raise ConfigError(f"--profile {name!r} is not one of: {', '.join(PROFILES)}")
    changes = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(changes) - set(SFTProfile.model_fields)
    if unknown:
        raise ConfigError(f"unknown profile field(s): {', '.join(sorted(unknown))}")
    return SFTProfile.model_validate({**PROFILES[name].model_dump(), **changes})
