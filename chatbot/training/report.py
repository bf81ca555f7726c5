"""What ``chatbot train`` reports: the figures of a run, per epoch and in total (written as
``training_report.json`` and in the model card)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class TrainReport:
    base: str
    output: str
    device: str
    processes: int
    examples: dict[str, int]
    train_examples: int
    validation_examples: int
    dropped_too_long: int
    hyperparameters: dict[str, Any]
    precision: str = "fp32"
    example_tokens: dict[str, int] = field(default_factory=dict)  # mean and max per example
    threads: int = 0  # torch's CPU threads while training
    epochs: list[dict[str, float]] = field(default_factory=list)
    validation_loss: float | None = None
    validation_perplexity: float | None = None
    train_loss: float | None = None
    seconds: float = 0.0
    search_trials: list[dict[str, Any]] = field(default_factory=list)
    kb_version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def token_counts(lengths: Sequence[int]) -> dict[str, int]:
    """The mean and the longest of the examples' lengths in tokens."""
    if not lengths:
        return {}
    return {"mean": round(sum(lengths) / len(lengths)), "max": max(lengths)}


def per_epoch(history: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Train and validation loss (and perplexity) per epoch, from Trainer's log history."""
    rows: dict[int, dict[str, float]] = {}
    for entry in history:
        if "epoch" not in entry:
            continue
        epoch = max(1, math.ceil(round(entry["epoch"], 4)))
        row = rows.setdefault(epoch, {"epoch": epoch})
        if "loss" in entry:
            row["train_loss"] = round(float(entry["loss"]), 4)
        if "eval_loss" in entry:
            row["validation_loss"] = round(float(entry["eval_loss"]), 4)
            row["validation_perplexity"] = round(math.exp(min(entry["eval_loss"], 50)), 3)
    return [rows[k] for k in sorted(rows)]
