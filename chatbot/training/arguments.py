"""What the Trainer's arguments are on this machine: the precision, activation checkpointing and
length-grouped batches (the last two under the names of the installed transformers)."""

from __future__ import annotations

import inspect
from typing import Any

from chatbot.errors import InvalidInput

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_precision(precision: str, cuda: bool) -> str:
    """What ``precision`` means on this machine: "fp32", "bf16" or "fp16" (mixed precision:
    the weights and optimizer stay float32, the matrix products run in the half type)."""
    import torch

    from knowledge.compute import native_bfloat16

    if precision == "fp16" and not cuda:
        raise InvalidInput("--precision fp16 needs a GPU; on a CPU use bf16 or fp32.")
    if precision != "auto":
        return precision
    if cuda:
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    # A training step of SmolLM2-135M on 4 examples of 410 tokens, 2 cores of an AMD EPYC with
    # AVX512-BF16: 12-16 s in float32, 5.4-6 s with bfloat16 autocast; without it, emulated.
    return "bf16" if native_bfloat16() else "fp32"


def checkpointing(on: bool) -> dict[str, bool]:
    """Recompute activations in the backward pass on a GPU (memory for speed); the argument was
    renamed in transformers 5."""
    from transformers import TrainingArguments

    known = inspect.signature(TrainingArguments.__init__).parameters
    name = "activation_checkpointing" if "activation_checkpointing" in known else (
        "gradient_checkpointing"
    )
    return {name: on}


def length_grouping() -> dict[str, Any]:
    """Batches of examples of about the same length: a batch is padded to its longest example,
    and a knowledge base's examples differ several-fold in length (a one-line FAQ answer beside
    three long passages). Renamed in transformers 5."""
    from transformers import TrainingArguments

    known = inspect.signature(TrainingArguments.__init__).parameters
    if "train_sampling_strategy" in known:
        return {"train_sampling_strategy": "group_by_length"}
    return {"group_by_length": True}


def micro_batches(batch_size: int, longest: int, max_batch_tokens: int) -> tuple[int, int]:
    """(examples per forward pass, passes per optimizer step) for ``batch_size`` examples a step.

    A forward pass holds activations for every token of its padded batch, so its memory grows
    with examples x length: on a knowledge base with long answers (COVID-QA, up to 1,531
    tokens) 8 examples a pass ran a 24 GB machine out of memory. The pass is kept to
    ``max_batch_tokens`` tokens at the longest example's length, and the step is made up by
    gradient accumulation; the pass size divides ``batch_size``, so the step is exactly
    ``batch_size`` examples and, since the loss is summed over the step's labelled tokens
    before dividing (``num_items_in_batch``), the same loss and gradient. An example longer
    than the budget gets a pass of its own.
    """
    fits = max(1, max_batch_tokens // max(1, longest))
    per_pass = max(n for n in range(1, batch_size + 1) if batch_size % n == 0 and n <= fits)
    return per_pass, batch_size // per_pass
