"""Fine-tune the answer model with transformers' Trainer.

Full fine-tuning or LoRA (PEFT, merged into the weights on save); validation loss per epoch
with early stopping and the best epoch kept; an optional Optuna search over learning rate and
epochs chosen by validation loss; mixed precision (bf16 on a GPU that has it, else fp16; bf16 on
a CPU that multiplies it natively) and gradient checkpointing on a GPU. Launched with
``torchrun --nproc_per_node=N`` or ``accelerate launch`` it trains data-parallel (gloo on CPU);
only the first process writes the output folder.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatbot.errors import InvalidInput
from chatbot.generation.local import load_model, load_tokenizer
from chatbot.training.arguments import (
    PRECISIONS,
    checkpointing,
    length_grouping,
    micro_batches,
    resolve_precision,
)
from chatbot.training.data import Example
from chatbot.training.labelled_loss import trainer_class
from chatbot.training.model_card import model_card
from chatbot.training.report import TrainReport, per_epoch, token_counts
from chatbot.training.tokens import Collator, encode_chat
from knowledge import compute

log = logging.getLogger(__name__)

# For base models without a chat template (e.g. Gemma 3 270M base): ChatML, which the tuned
# model then learns and serves with.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
PROMPT_LOOKUP_TOKENS = 10  # drafted per step when the saved model is served (generation_config)


@dataclass
class TrainOptions:
    base: str
    output: Path
    epochs: float = 3.0
    learning_rate: float | None = None  # None: 5e-5 full, 3e-4 LoRA
    batch_size: int = 8
    # Tokens one forward pass may hold (examples x padded length); see micro_batches.
    max_batch_tokens: int = 8192
    max_steps: int = -1
    lora: bool = False
    validation_split: float = 0.1
    search: int = 0  # Optuna trials; 0 = no search
    seed: int = 0
    patience: int = 2
    max_length: int = 2048
    progress: bool = True
    precision: str = "auto"  # one of PRECISIONS

    def check(self) -> None:
        rules = [
            (self.epochs > 0, "--epochs must be above 0"),
            (self.learning_rate is None or 0 < self.learning_rate < 1,
             "--learning-rate must be between 0 and 1"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.max_batch_tokens >= 1, "--max-batch-tokens must be at least 1"),
            (self.max_steps == -1 or self.max_steps >= 1, "--max-steps must be at least 1"),
            (0 <= self.validation_split < 1, "--validation-split must be at least 0 and below 1"),
            (self.search >= 0, "--search must be 0 or more"),
            (not self.search or self.validation_split > 0,
             "--search chooses by validation loss: give a --validation-split above 0"),
            (self.precision in PRECISIONS,
             f"--precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}"),
        ]
        for ok, message in rules:
            if not ok:
                raise InvalidInput(message + ".")

    @property
    def rate(self) -> float:
        return self.learning_rate or (3e-4 if self.lora else 5e-5)


class _Chats:
    """A list of encoded chats as a map-style dataset."""

    def __init__(self, rows: list[dict[str, list[int]]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.rows[i]


def _encode(tokenizer: Any, examples: Sequence[Example], max_length: int) -> tuple[_Chats, int]:
    rows, dropped = [], 0
    for ex in examples:
        ids, labels = encode_chat(tokenizer, ex.messages)
        if len(ids) > max_length:
            dropped += 1
            continue
        rows.append({"input_ids": ids, "labels": labels})
    return _Chats(rows), dropped


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _drop_gguf_marks(model: Any) -> None:
    """A GGUF file is dequantized to plain fp32 weights on load, but the model keeps the GGUF
    quantizer's marks, which make Trainer refuse it and save_pretrained write a quantization
    config; nothing is quantized any more, so they go."""
    config = getattr(model.config, "quantization_config", None)
    method = getattr(config, "quant_method", None) or (config or {}).get("quant_method")
    if str(getattr(method, "value", method)) != "gguf":
        return
    model.hf_quantizer = None
    model.is_quantized = False
    del model.config.quantization_config


def prepare_tokenizer(tokenizer: Any) -> Any:
    """A chat template for base models without one, and a pad token for batching."""
    if tokenizer.chat_template is None:
        tokenizer.chat_template = CHATML_TEMPLATE
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _load_model(base: str, lora: bool) -> Any:
    import torch

    model = load_model(base, dtype=torch.float32)
    _drop_gguf_marks(model)
    if lora:
        from peft import LoraConfig, get_peft_model

        present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
        targets = [t for t in LORA_TARGETS if t in present] or "all-linear"
        config = LoraConfig(
            r=16, lora_alpha=32, lora_dropout=0.05, target_modules=targets, task_type="CAUSAL_LM"
        )
        model = get_peft_model(model, config)
    return model


def train(
    options: TrainOptions,
    train_examples: Sequence[Example],
    validation_examples: Sequence[Example],
    *,
    tokenizer: Any = None,
    example_counts: dict[str, int] | None = None,
    kb_version: int | None = None,
) -> TrainReport:
    """Train, keep the best epoch, and write a ``save_pretrained`` folder with a model card."""
    import torch
    from transformers import EarlyStoppingCallback, TrainingArguments

    options.check()
    # A caller that embedded queries in this thread (building the examples does) left it on
    # one core: training there took twice as long.
    compute.all_cores()
    if options.search and world_size() > 1:
        raise InvalidInput("--search runs in one process; start it without torchrun.")
    if not train_examples:
        raise InvalidInput("No training examples: the knowledge base gave none to train on.")
    started = time.perf_counter()
    cuda = torch.cuda.is_available()
    precision = resolve_precision(options.precision, cuda)
    tokenizer = prepare_tokenizer(tokenizer or load_tokenizer(options.base))
    train_set, dropped = _encode(tokenizer, train_examples, options.max_length)
    val_set, dropped_val = _encode(tokenizer, validation_examples, options.max_length)
    has_val = len(val_set) > 0
    if not train_set.rows:
        raise InvalidInput(f"Every training example is longer than {options.max_length} tokens "
                           "(CHATBOT_CONTEXT_TOKENS): none is left to train on.")
    tokens = token_counts([len(row["input_ids"]) for row in [*train_set.rows, *val_set.rows]])
    per_pass, accumulation = micro_batches(options.batch_size, tokens["max"],
                                           options.max_batch_tokens)
    work = options.output / ".checkpoints"
    args = TrainingArguments(
        output_dir=str(work),
        num_train_epochs=options.epochs,
        max_steps=options.max_steps,
        learning_rate=options.rate,
        per_device_train_batch_size=per_pass,
        gradient_accumulation_steps=accumulation,
        per_device_eval_batch_size=per_pass,
        warmup_steps=0.05,
        weight_decay=0.0,
        lr_scheduler_type="linear",
        eval_strategy="epoch" if has_val else "no",
        save_strategy="epoch" if has_val else "no",
        save_total_limit=2,
        load_best_model_at_end=has_val,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        logging_strategy="epoch",
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=not cuda,
        **checkpointing(cuda),
        **length_grouping(),
        ddp_backend="gloo" if world_size() > 1 and not cuda else None,
        report_to="none",
        disable_tqdm=not options.progress or not is_main_process(),
        remove_unused_columns=False,
        seed=options.seed,
        data_seed=options.seed,
        save_only_model=True,
    )
    callbacks = [EarlyStoppingCallback(early_stopping_patience=options.patience)] if has_val else []
    collator = Collator(tokenizer.pad_token_id)
    trials: list[dict[str, Any]] = []
    epochs, rate = options.epochs, options.rate
    if options.search:
        trials, epochs, rate = _search(options, args, train_set, val_set, collator)
        args.num_train_epochs, args.learning_rate = epochs, rate
    trainer = trainer_class()(
        model=_load_model(options.base, options.lora),
        args=args,
        train_dataset=train_set,
        eval_dataset=val_set if has_val else None,
        data_collator=collator,
        callbacks=callbacks,
    )
    result = trainer.train()
    final_eval: dict[str, float] = {}
    if has_val:
        # The kept model is the best epoch's, already scored: scoring the validation set again
        # would cost as much as an epoch's evaluation (minutes on a CPU).
        best = trainer.state.best_metric
        final_eval = {"eval_loss": best} if best is not None else trainer.evaluate()
    report = TrainReport(
        base=options.base,
        output=str(options.output),
        device="cuda" if cuda else "cpu",
        processes=world_size(),
        examples=example_counts or {},
        train_examples=len(train_set),
        validation_examples=len(val_set),
        dropped_too_long=dropped + dropped_val,
        hyperparameters={
            "learning_rate": rate,
            "epochs": epochs,
            "batch_size": options.batch_size,
            "examples_per_pass": per_pass,
            "gradient_accumulation_steps": accumulation,
            "max_batch_tokens": options.max_batch_tokens,
            "max_steps": options.max_steps,
            "lora": options.lora,
            "seed": options.seed,
            "validation_split": options.validation_split,
        },
        precision=precision,
        example_tokens=tokens,
        threads=torch.get_num_threads(),
        epochs=per_epoch(trainer.state.log_history),
        train_loss=round(float(result.training_loss), 4),
        search_trials=trials,
        kb_version=kb_version,
    )
    if "eval_loss" in final_eval:
        report.validation_loss = round(float(final_eval["eval_loss"]), 4)
        report.validation_perplexity = round(math.exp(min(final_eval["eval_loss"], 50)), 3)
    report.seconds = round(time.perf_counter() - started, 1)
    if trainer.is_world_process_zero():
        _save(trainer.model, tokenizer, options, report)
        shutil.rmtree(work, ignore_errors=True)
    return report


def _search(
    options: TrainOptions, args: Any, train_set: _Chats, val_set: _Chats, collator: Collator
) -> tuple[list[dict[str, Any]], float, float]:
    """Optuna over learning rate and epochs, each trial scored by its best validation loss."""

    low, high = (5e-5, 1e-3) if options.lora else (1e-5, 2e-4)
    max_epochs = max(1, math.ceil(options.epochs))

    studies: list[Any] = []

    def space(trial: Any) -> dict[str, Any]:
        studies[:] = [trial.study]
        return {
            "learning_rate": trial.suggest_float("learning_rate", low, high, log=True),
            "num_train_epochs": trial.suggest_int("num_train_epochs", 1, max_epochs),
        }

    trials: list[dict[str, Any]] = []

    def objective(metrics: dict[str, float]) -> float:
        return metrics["eval_loss"]

    search_args = args.__class__(**{**args.to_dict(), "load_best_model_at_end": False,
                                    "save_strategy": "no"})
    trainer = trainer_class()(
        model_init=lambda trial=None: _load_model(options.base, options.lora),
        args=search_args,
        train_dataset=train_set,
        eval_dataset=val_set,
        data_collator=collator,
    )
    best = trainer.hyperparameter_search(
        direction="minimize",
        backend="optuna",
        hp_space=space,
        n_trials=options.search,
        compute_objective=objective,
    )
    for trial in studies[0].trials if studies else []:
        if trial.value is not None:
            trials.append({"params": trial.params, "validation_loss": round(trial.value, 4)})
    if not trials:
        trials.append({"params": best.hyperparameters, "validation_loss": best.objective})
    return trials, float(best.hyperparameters["num_train_epochs"]), float(
        best.hyperparameters["learning_rate"]
    )


def _save(model: Any, tokenizer: Any, options: TrainOptions, report: TrainReport) -> None:
    if options.lora:
        model = model.merge_and_unload()
    out = options.output
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(end, int) and end != tokenizer.unk_token_id:
        # Replies end with the chat template's end-of-turn token: stop there when serving.
        model.generation_config.eos_token_id = end
    # A tuned model quotes its passages, so drafting from the prompt pays: the fine-tuned demo
    # model's turn went from 5.5 s to 1.6 s with the same answers (README, Performance).
    model.generation_config.prompt_lookup_num_tokens = PROMPT_LOOKUP_TOKENS
    model.generation_config.save_pretrained(out)
    (out / "training_report.json").write_text(
        json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8"
    )
    (out / "README.md").write_text(model_card(report), encoding="utf-8")
