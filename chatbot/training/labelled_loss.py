"""The training loss computed from logits at labelled positions only.

A causal LM's forward pass makes a vocabulary-wide row of logits for every position: with
SmolLM2's 49,152 tokens, a batch of 8 examples of 700 tokens is 275M floats (1.1 GB, and as
much again for their gradient), although only the answer's tokens (a fifth of an example or
less) carry a label. transformers' ``logits_to_keep`` takes the positions to keep, so the
loss here asks for the positions whose *next* token is labelled in any example of the batch,
and is the same number as the model's own loss (sum over labelled tokens / their count).
"""

from __future__ import annotations

import inspect
from typing import Any

from chatbot.training.tokens import IGNORE


def keeps_logits(model: Any) -> bool:
    """Whether the causal LM under any DDP or PEFT wrapper takes ``logits_to_keep``."""
    inner = getattr(model, "module", model)  # DistributedDataParallel
    if hasattr(inner, "get_base_model"):  # PEFT: its forward passes the argument on
        inner = inner.get_base_model()
    return "logits_to_keep" in inspect.signature(inner.forward).parameters


def labelled_loss(
    model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None
) -> tuple[Any, Any]:
    """(loss, outputs) for a batch with ``labels`` (``IGNORE`` where no loss is taken)."""
    import torch.nn.functional as F

    labels = inputs["labels"]
    targets = labels[:, 1:]  # position p predicts token p + 1
    keep = (targets != IGNORE).any(dim=0).nonzero().squeeze(1)
    features = {name: value for name, value in inputs.items() if name != "labels"}
    outputs = model(**features, logits_to_keep=keep)
    logits = outputs.logits.float()
    picked = targets[:, keep]
    loss = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), picked.reshape(-1),
        ignore_index=IGNORE, reduction="sum",
    )
    count = num_items_in_batch if num_items_in_batch is not None else (picked != IGNORE).sum()
    return loss / count, outputs


def trainer_class() -> type:
    """transformers' Trainer, with the loss taken from labelled positions' logits only
    (``labelled_loss``): long examples otherwise hold gigabytes of logits nobody uses."""
    from transformers import Trainer

    class AnswerTrainer(Trainer):  # type: ignore[misc]
        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            if "labels" not in inputs or not keeps_logits(model):
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            loss, outputs = labelled_loss(model, inputs, num_items_in_batch)
            if (self.args.average_tokens_across_devices and self.model_accepts_loss_kwargs
                    and num_items_in_batch is not None):
                loss = loss * self.accelerator.num_processes  # as Trainer's own loss does
            return (loss, outputs) if return_outputs else loss

    return AnswerTrainer
