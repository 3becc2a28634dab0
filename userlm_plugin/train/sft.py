"""Supervised fine-tuning of a User LM: full or LoRA, on transformers' `Trainer`, with labels we build ourselves.

Why our own labels: TRL's `assistant_only_loss` finds the loss tokens through `{% generation %}` markers in the
chat template and puts the loss on the ASSISTANT's turns; a User LM needs it on the user's turns, with UserLM's
own template (no markers, and it must stay identical to what the runtime renders). So `flip.py` builds
`input_ids` + `labels` (-100 off the user turns), checked token for token against the `userlm/` runtime's prompt.

Why transformers' `Trainer` and not TRL's `SFTTrainer` (which does accept a pre-tokenized `labels` column): with
labels built, SFTTrainer adds nothing we need, and TRL 1.x computes the loss through a fused LM head that reads
`lm_head.weight` directly, so peft's trainable rows on the LM head are bypassed (TRL refuses adapters on
`lm_head`). LoRA needs exactly that: the new `<|endconversation|>` token's output row must train, or the model can
never tell "end of conversation" from the EOS row it was copied from. `Trainer` gives the same loop: progress
bar, checkpoints every `save_steps`, `--resume` from the last one, gradient accumulation and checkpointing.

The output folder is a plain causal LM (LoRA adapters merged) with `<|endconversation|>` in its vocabulary and
UserLM's chat template, so `--model-role user=userlm/<dir>` loads it as is. `userlm_training.json` beside the
weights records the profile (with its sources), the data counts and the loss curve.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ModelLoadError, missing_dependency
from ..runtime.template import looks_local, stop_token_ids, token_ids
from .conversations import ChatRecord, RecordProblem
from .flip import flip_records
from .profiles import SFTProfile
from .tokens import TokenSetup, prepare_model, prepare_tokenizer

CHECKPOINTS = "checkpoints"
RECORD_FILE = "userlm_training.json"


@dataclass
class SFTResult:
    output_dir: str
    steps: int
    losses: list[tuple[int, float]]
    """(step, training loss) as logged."""
    train_examples: int
    loss_tokens: int
    skipped: list[RecordProblem]
    token_setup: TokenSetup
    eval_loss: float | None = None
    resumed_from: str | None = None
    train_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def _import_training() -> None:
    try:
        import peft  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as error:
        raise missing_dependency(error.name or "peft", "train", "userlm-plugin train sft") from error


class _Examples:
    """The flipped examples as a map-style dataset (cut to `max_length`, keeping the start)."""

    def __init__(self, examples: list[Any], max_length: int) -> None:
        self.rows = []
        for example in examples:
            labels = example.labels[:max_length]
            if any(label != -100 for label in labels):  # a cut that leaves no user token teaches nothing
                self.rows.append({"input_ids": example.input_ids[:max_length], "labels": labels})

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return self.rows[index]


def _load_base(base_model: str, dtype: str, revision: str | None) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local = looks_local(base_model)
    path = Path(base_model).expanduser()
    if local and not path.is_dir():
        raise ModelLoadError(f"--model {base_model}: no such folder ({path.resolve()})")
    source = str(path) if local else base_model
    kwargs: dict[str, Any] = {"revision": revision, **({"local_files_only": True} if local else {})}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        if dtype == "auto":
            bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
            torch_dtype = torch.bfloat16 if bf16 else torch.float32
        else:
            torch_dtype = getattr(torch, dtype)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype, **kwargs)
    except OSError as error:
        raise ModelLoadError(f"--model {base_model}: could not load the base model: {error}") from error
    return model, tokenizer


def _lora_config(profile: SFTProfile, model: Any, end_id: int) -> Any:
    from peft import LoraConfig

    # The <|endconversation|> rows of both embedding matrices train too (peft's trainable tokens): LoRA on the
    # linear layers alone cannot teach a token whose rows are a copy of EOS what it means.
    embed_name = _module_name(model, model.get_input_embeddings())
    head = model.get_output_embeddings()
    token_rows = {embed_name: [end_id]}
    tied = head is not None and head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    if head is not None and not tied:
        token_rows[_module_name(model, head)] = [end_id]
    return LoraConfig(
        r=profile.lora_rank,
        lora_alpha=profile.lora_alpha,
        lora_dropout=profile.lora_dropout,
        target_modules="all-linear",
        trainable_token_indices=token_rows,
        task_type="CAUSAL_LM",
    )


def _module_name(model: Any, module: Any) -> str:
    return next(name for name, m in model.named_modules() if m is module).split(".")[-1]


def _last_checkpoint(folder: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(folder)) if folder.is_dir() else None


def train_user_lm(
    base_model: str,
    train_records: list[ChatRecord],
    output_dir: str | Path,
    *,
    profile: SFTProfile,
    eval_records: list[ChatRecord] | None = None,
    resume: bool = False,
    chat_template: str | None = None,
    revision: str | None = None,
    progress: bool = True,
) -> SFTResult:
    """Fine-tune `base_model` (hub id or folder) into a User LM in `output_dir` (see the module docstring)."""
    _import_training()
    import torch
    from transformers import DataCollatorForSeq2Seq, GenerationConfig, Trainer, TrainingArguments

    out = Path(output_dir).expanduser()
    checkpoints = out / CHECKPOINTS
    resume_from = _last_checkpoint(checkpoints) if resume else None
    if resume and resume_from is None:
        raise ConfigError(
            f"--resume: no checkpoint under {checkpoints} to resume from (drop --resume to start)"
        )
    model, tokenizer = _load_base(base_model, profile.dtype, revision)
    added = prepare_tokenizer(tokenizer, chat_template)
    setup = prepare_model(model, tokenizer, added)
    examples, skipped = flip_records(tokenizer, train_records)
    if not examples:
        reasons = "; ".join(str(p) for p in skipped[:3])
        raise ConfigError(f"no trainable conversation among {len(train_records)} ({reasons})")
    train_set = _Examples(examples, profile.max_length)
    eval_set = _Examples(flip_records(tokenizer, eval_records or [])[0], profile.max_length)
    if profile.method == "lora":
        from peft import get_peft_model

        model = get_peft_model(model, _lora_config(profile, model, setup.end_token_id))
    if profile.gradient_checkpointing:
        model.config.use_cache = False
    bf16 = model.dtype == torch.bfloat16
    lr = profile.lora_learning_rate if profile.method == "lora" else profile.learning_rate
    scheduler = "cosine_with_min_lr" if profile.min_learning_rate is not None else "cosine"
    scheduler_kwargs = {"min_lr": profile.min_learning_rate} if profile.min_learning_rate is not None else {}
    if profile.min_learning_rate is not None and profile.method == "lora":
        scheduler_kwargs = {"min_lr": lr * profile.min_learning_rate / profile.learning_rate}
    args = TrainingArguments(
        output_dir=str(checkpoints),
        per_device_train_batch_size=profile.per_device_batch_size,
        per_device_eval_batch_size=profile.per_device_batch_size,
        gradient_accumulation_steps=profile.gradient_accumulation(max(torch.cuda.device_count(), 1)),
        learning_rate=lr,
        lr_scheduler_type=scheduler,
        lr_scheduler_kwargs=scheduler_kwargs,
        num_train_epochs=profile.num_epochs,
        max_steps=profile.max_steps,
        warmup_steps=profile.warmup_ratio,
        weight_decay=profile.weight_decay,
        bf16=bf16,
        fp16=False,
        activation_checkpointing=profile.gradient_checkpointing,
        logging_steps=profile.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=profile.save_steps,
        save_total_limit=profile.save_total_limit,
        seed=profile.seed,
        report_to="none",
        disable_tqdm=not progress,
        remove_unused_columns=False,
        dataloader_pin_memory=torch.cuda.is_available(),
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set if len(eval_set) else None,
        data_collator=DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100, pad_to_multiple_of=8),
    )
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_from)
    seconds = time.perf_counter() - started
    eval_loss = trainer.evaluate().get("eval_loss") if len(eval_set) else None
    final = trainer.model.merge_and_unload() if profile.method == "lora" else trainer.model
    stops = stop_token_ids(tokenizer, token_ids(getattr(final.config, "eos_token_id", None)))
    final.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=stops, pad_token_id=tokenizer.pad_token_id
    )
    out.mkdir(parents=True, exist_ok=True)
    final.save_pretrained(out)
    tokenizer.save_pretrained(out)
    losses = [(int(e["step"]), float(e["loss"])) for e in trainer.state.log_history if "loss" in e]
    result = SFTResult(
        output_dir=str(out),
        steps=int(trainer.state.global_step),
        losses=losses,
        train_examples=len(train_set),
        loss_tokens=sum(e.loss_tokens for e in examples),
        skipped=skipped,
        token_setup=setup,
        eval_loss=None if eval_loss is None else float(eval_loss),
        resumed_from=resume_from,
        train_seconds=seconds,
    )
    _write_record(out, base_model, profile, result)
    return result


def _write_record(out: Path, base_model: str, profile: SFTProfile, result: SFTResult) -> None:
    record = {
        "base_model": base_model,
        "profile": profile.model_dump(mode="json"),
        "steps": result.steps,
        "train_examples": result.train_examples,
        "loss_tokens": result.loss_tokens,
        "skipped": [str(p) for p in result.skipped],
        "token_setup": asdict(result.token_setup),
        "losses": result.losses,
        "eval_loss": result.eval_loss,
        "resumed_from": result.resumed_from,
        "train_seconds": round(result.train_seconds, 2),
    }
    (out / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
