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

The output folder is a plain causal LM (LoRA adapters merged) with `<|endconversation|>` in its vocabulary and the
chat template it was trained with (the base model's own, else UserLM's: tokens.py), saved in the base model's own
dtype, so `--model-role user=userlm/<dir>` loads it as is. `userlm_training.json` beside the weights records the
profile (with its sources), the data counts, what `max_length` did (windows.py), the loss of every step and the
held-out loss before, during and after training; `userlm_training.png` plots the last two.

Callable from Python as from the CLI: `train_user_lm(".cache/smollm2-135m-instruct", "split/train.jsonl",
"models/x", profile="cpu", eval_records="split/test.jsonl")`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ModelLoadError, missing_dependency
from ..runtime.template import looks_local, stop_token_ids, token_ids
from .conversations import ChatRecord, RecordProblem, as_records
from .flip import IGNORE, FlipExample, turn_frame
from .profiles import SFTProfile, get_profile
from .progress import progress_bar
from .tokens import TokenSetup, prepare_model, prepare_tokenizer
from .windows import LengthReport, fit_examples

CHECKPOINTS = "checkpoints"
RECORD_FILE = "userlm_training.json"
PLOT_FILE = "userlm_training.png"


@dataclass
class SFTResult:
    output_dir: str
    steps: int
    losses: list[tuple[int, float]]
    """(step, training loss) of every logged step (every step by default)."""
    train_examples: int
    """Training sequences (a conversation split into windows counts once per window)."""
    loss_tokens: int
    skipped: list[RecordProblem]
    token_setup: TokenSetup
    eval_loss: float | None = None
    """Held-out loss after training: mean NLL per loss-carrying token, pooled over the held-out sequences."""
    heldout: list[tuple[int, float]] = field(default_factory=list)
    """(step, held-out loss), step 0 being the base model before training."""
    resumed_from: str | None = None
    train_seconds: float = 0.0
    conversations: int = 0
    length: LengthReport | None = None
    eval_length: LengthReport | None = None
    chat_template_source: str = ""
    saved_dtype: str = ""
    output_bytes: int = 0
    checkpoints_kept: int = 0
    plot: str | None = None
    """The PNG of the loss curve and held-out perplexity (None without matplotlib)."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def final_loss(self) -> float | None:
        """The training loss of the last step (not of an earlier logged one)."""
        return self.losses[-1][1] if self.losses else None

    @property
    def eval_perplexity(self) -> float | None:
        return math.exp(self.eval_loss) if self.eval_loss is not None else None

    @property
    def base_eval_perplexity(self) -> float | None:
        """Held-out perplexity of the base model (step 0), when it was measured before training."""
        before = [loss for step, loss in self.heldout if step == 0]
        return math.exp(before[0]) if before else None

    def model_name(self, cwd: str | Path | None = None) -> str:
        """`userlm/<path>` for this folder: relative to `cwd` (default: the current directory), so never the
        `userlm//abs/path` an absolute path would give."""
        return f"userlm/{_relative(self.output_dir, cwd)}"


def _relative(path: str | Path, cwd: str | Path | None = None) -> str:
    return os.path.relpath(Path(path).expanduser().resolve(), Path(cwd or os.getcwd()).resolve())


def _import_training() -> None:
    try:
        import peft  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as error:
        raise missing_dependency(error.name or "peft", "train", "userlm-plugin train sft") from error


class _Examples:
    """The fitted examples as a map-style dataset (each at most `max_length` tokens: windows.py)."""

    def __init__(self, examples: list[FlipExample]) -> None:
        self.rows = [
            {"input_ids": e.input_ids, "labels": e.labels}
            for e in examples
            if e.loss_tokens  # a sequence with no user token teaches nothing
        ]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return self.rows[index]


def _source(base_model: str) -> tuple[str, dict[str, Any]]:
    local = looks_local(base_model)
    path = Path(base_model).expanduser()
    if local and not path.is_dir():
        raise ModelLoadError(f"--model {base_model}: no such folder ({path.resolve()})")
    return (str(path) if local else base_model), ({"local_files_only": True} if local else {})


def load_base_tokenizer(base_model: str, revision: str | None = None) -> Any:
    """The base model's tokenizer (no weights): templates and data are checked before any weights load."""
    from transformers import AutoTokenizer

    source, kwargs = _source(base_model)
    try:
        return AutoTokenizer.from_pretrained(source, revision=revision, **kwargs)
    except OSError as error:
        raise ModelLoadError(f"--model {base_model}: could not load the tokenizer: {error}") from error


def _load_weights(base_model: str, dtype: str, revision: str | None) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    source, kwargs = _source(base_model)
    if dtype == "auto":
        bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        torch_dtype = torch.bfloat16 if bf16 else torch.float32
    else:
        torch_dtype = getattr(torch, dtype)
    try:
        return AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype, revision=revision, **kwargs)
    except OSError as error:
        raise ModelLoadError(f"--model {base_model}: could not load the base model: {error}") from error


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


def heldout_loss(model: Any, rows: Sequence[dict[str, list[int]]], label: str | None = None) -> float | None:
    """Mean NLL per loss-carrying token, pooled over `rows` (one forward pass each, no padding): the held-out
    figure `train sft` reports before, during and after training (exp of it is the user-token perplexity over the
    same tokens the training loss covers)."""
    import torch
    import torch.nn.functional as F

    if not rows:
        return None
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    try:
        with torch.no_grad():
            for row in progress_bar(rows, label):
                ids = torch.tensor([row["input_ids"]], device=device)
                labels = torch.tensor(row["labels"][1:], device=device)
                logits = model(input_ids=ids).logits[0, :-1].float()
                total += float(F.cross_entropy(logits, labels, ignore_index=IGNORE, reduction="sum"))
                count += int((labels != IGNORE).sum())
    finally:
        model.train(was_training)
    return total / count if count else None


def _saved_dtype(profile: SFTProfile, base_model: str, revision: str | None) -> Any:
    """The dtype to save in: the profile's, or (auto) the checkpoint's own as its config.json states it (read
    before the weights load in the training dtype, which rewrites the in-memory config); None: as trained."""
    import torch
    from transformers import AutoConfig

    if profile.save_dtype != "auto":
        return getattr(torch, profile.save_dtype)
    source, kwargs = _source(base_model)
    try:
        config = AutoConfig.from_pretrained(source, revision=revision, **kwargs)
    except (OSError, ValueError):
        return None
    own = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(own, str):
        own = getattr(torch, own, None)
    return own if isinstance(own, torch.dtype) else None


def _prune_checkpoints(folder: Path, keep: int) -> int:
    """Delete all but the newest `keep` checkpoints (the folder itself when none is kept); returns how many remain."""
    if not folder.is_dir():
        return 0
    found = sorted(
        (p for p in folder.iterdir() if p.is_dir() and p.name.startswith("checkpoint-")),
        key=lambda p: int(p.name.rsplit("-", 1)[-1]) if p.name.rsplit("-", 1)[-1].isdigit() else -1,
    )
    for old in found[: max(len(found) - keep, 0)]:
        shutil.rmtree(old, ignore_errors=True)
    if keep == 0:
        shutil.rmtree(folder, ignore_errors=True)
    return min(len(found), keep)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def train_user_lm(
    base_model: str,
    train_records: Sequence[ChatRecord] | str | Path,
    output_dir: str | Path,
    *,
    profile: SFTProfile | str = "paper",
    eval_records: Sequence[ChatRecord] | str | Path | None = None,
    resume: bool = False,
    chat_template: str | None = None,
    revision: str | None = None,
    progress: bool = True,
    eval_before: bool = True,
    **overrides: Any,
) -> SFTResult:
    """Fine-tune `base_model` (hub id or folder) into a User LM in `output_dir` (see the module docstring).

    `train_records` / `eval_records`: records or conversation files; `profile`: a profile or its name, with
    `overrides` (e.g. `max_steps=4`) applied; `chat_template`: a template file or `userlm` (default: the
    model's own, else UserLM's); `eval_before=False` skips the held-out loss of the base model (one forward pass
    over the held-out data; a caller that scores the base model itself saves it). Raises `ConfigError` (naming
    the option) before any weights load when the data or the template cannot train."""
    _import_training()
    if isinstance(profile, str):
        profile = get_profile(profile, **overrides)
    elif overrides:
        profile = get_profile(profile.name, **{**profile.model_dump(exclude={"name"}), **overrides})
    train_records = as_records(train_records)
    eval_list = as_records(eval_records)
    import torch
    from transformers import (
        DataCollatorForSeq2Seq,
        GenerationConfig,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    out = Path(output_dir).expanduser()
    checkpoints = out / CHECKPOINTS
    resume_from = _last_checkpoint(checkpoints) if resume else None
    if resume and resume_from is None:
        raise ConfigError(
            f"--resume: no checkpoint under {checkpoints} to resume from (drop --resume to start)"
        )
    label = (lambda text: text) if progress else (lambda text: None)
    tokenizer = load_base_tokenizer(base_model, revision)
    added = prepare_tokenizer(tokenizer, chat_template)
    # a template that cannot frame a user turn fails here, before any weights load
    frame = turn_frame(tokenizer)
    fitted = fit_examples(
        tokenizer, train_records, profile.max_length, overflow=profile.overflow, progress=label("flip train")
    )
    if not fitted.examples:
        reasons = "; ".join(str(p) for p in fitted.problems[:3]) or "no conversation given"
        raise ConfigError(f"no trainable conversation among {len(train_records)} ({reasons})")
    held_out = fit_examples(
        tokenizer, eval_list, profile.max_length, overflow=profile.overflow, progress=label("flip held-out")
    )
    train_set, eval_set = _Examples(fitted.examples), _Examples(held_out.examples)

    save_dtype = _saved_dtype(profile, base_model, revision)
    model = _load_weights(base_model, profile.dtype, revision)
    setup = prepare_model(model, tokenizer, added)
    if profile.method == "lora":
        from peft import get_peft_model

        model = get_peft_model(model, _lora_config(profile, model, setup.end_token_id))
    if profile.gradient_checkpointing:
        model.config.use_cache = False
    heldout: list[tuple[int, float]] = []
    if len(eval_set) and resume_from is None and eval_before:
        before = heldout_loss(model, eval_set.rows, label("held-out loss, base model"))
        if before is not None:
            heldout.append((0, before))

    class _Progress(TrainerCallback):
        """The held-out loss every `eval_steps`; no checkpoint written at the end when none is to be kept."""

        def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> Any:
            step = state.global_step
            if (
                profile.eval_steps
                and len(eval_set)
                and step % profile.eval_steps == 0
                and step < state.max_steps
            ):
                loss = heldout_loss(model, eval_set.rows)
                if loss is not None:
                    heldout.append((step, loss))
            if profile.keep_checkpoints == 0 and step >= state.max_steps:
                control.should_save = False
            return control

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
        data_collator=DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORE, pad_to_multiple_of=8),
        callbacks=[_Progress()],
    )
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_from)
    seconds = time.perf_counter() - started
    steps = int(trainer.state.global_step)
    eval_loss = (
        heldout_loss(trainer.model, eval_set.rows, label("held-out loss, trained")) if len(eval_set) else None
    )
    if eval_loss is not None:
        heldout.append((steps, eval_loss))
    final = trainer.model.merge_and_unload() if profile.method == "lora" else trainer.model
    stops = stop_token_ids(tokenizer, token_ids(getattr(final.config, "eos_token_id", None)))
    if frame.end_of_turn not in stops:  # the template's end-of-turn is not one of the model's stop tokens
        stops.append(frame.end_of_turn)
    final.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=stops, pad_token_id=tokenizer.pad_token_id
    )
    if save_dtype is not None and final.dtype != save_dtype:
        final = final.to(save_dtype)
    out.mkdir(parents=True, exist_ok=True)
    final.save_pretrained(out)
    tokenizer.save_pretrained(out)
    kept = _prune_checkpoints(checkpoints, profile.keep_checkpoints)
    losses = [(int(e["step"]), float(e["loss"])) for e in trainer.state.log_history if "loss" in e]
    result = SFTResult(
        output_dir=str(out),
        steps=steps,
        losses=losses,
        train_examples=len(train_set),
        loss_tokens=sum(e.loss_tokens for e in fitted.examples),
        skipped=fitted.problems,
        token_setup=setup,
        eval_loss=None if eval_loss is None else float(eval_loss),
        heldout=heldout,
        resumed_from=resume_from,
        train_seconds=seconds,
        conversations=len(train_records) - len(fitted.problems),
        length=fitted.report,
        eval_length=held_out.report if eval_list else None,
        chat_template_source=getattr(tokenizer, "_userlm_template_source", ""),
        saved_dtype=str(final.dtype).removeprefix("torch."),
        checkpoints_kept=kept,
    )
    record = _write_record(out, base_model, profile, result)
    from .plots import plot_training

    result.plot = plot_training(record, out / PLOT_FILE)
    result.output_bytes = folder_bytes(out)
    return result


def _write_record(out: Path, base_model: str, profile: SFTProfile, result: SFTResult) -> dict[str, Any]:
    record = {
        "base_model": base_model,
        "profile": profile.model_dump(mode="json"),
        "chat_template": result.chat_template_source,
        "steps": result.steps,
        "conversations": result.conversations,
        "train_examples": result.train_examples,
        "loss_tokens": result.loss_tokens,
        "length": result.length.to_json() if result.length else None,
        "eval_length": result.eval_length.to_json() if result.eval_length else None,
        "skipped": [str(p) for p in result.skipped],
        "token_setup": asdict(result.token_setup),
        "losses": result.losses,
        "final_loss": result.final_loss,
        "heldout": result.heldout,
        "eval_loss": result.eval_loss,
        "eval_perplexity": result.eval_perplexity,
        "saved_dtype": result.saved_dtype,
        "checkpoints_kept": result.checkpoints_kept,
        "resumed_from": result.resumed_from,
        "train_seconds": round(result.train_seconds, 2),
    }
    (out / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record
