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
