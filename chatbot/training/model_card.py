"""The model card (``README.md``) that ``chatbot train`` writes beside the weights."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatbot.training.report import TrainReport


def model_card(report: TrainReport) -> str:
    rows = "\n".join(
        f"| {e['epoch']} | {e.get('train_loss', '')} | {e.get('validation_loss', '')} | "
        f"{e.get('validation_perplexity', '')} |"
        for e in report.epochs
    )
    counts = ", ".join(f"{v} {k}" for k, v in sorted(report.examples.items())) or "n/a"
    hp = ", ".join(f"{k}={v}" for k, v in report.hyperparameters.items())
    tokens = report.example_tokens
    return f"""---
base_model: {report.base}
library_name: transformers
tags: [support-chatbot, fine-tuned]
---

# Support Chatbot answer model

Fine-tuned by `chatbot train` on {datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")} to answer
customers from the passages the retriever finds, in the serving prompt layout.

- Base model: `{report.base}`
- Knowledge-base version: {report.kb_version}
- Training data: {report.train_examples} training and {report.validation_examples} validation
  examples ({counts}); {report.dropped_too_long} dropped as too long
- Hyper-parameters: {hp}
- Tokens per example: {tokens.get("mean")} on average, {tokens.get("max")} at most
- Device: {report.device} ({report.precision}, {report.threads} threads),
  {report.processes} process(es); {report.seconds} s
- Final validation loss: {report.validation_loss}; perplexity: {report.validation_perplexity}

| epoch | train loss | validation loss | validation perplexity |
|---|---|---|---|
{rows}

Serve it with `CHATBOT_MODEL={report.output} chatbot serve`.
"""
