"""``chatbot train --retriever``: fine-tune the embedding model on the knowledge base itself.

Training rows are (anchor, positive, negative) triplets for sentence-transformers'
``MultipleNegativesRankingLoss``:

- anchor: a paraphrase of an entry, or the first sentence of its answer;
- positive: the entry's question, the one text every row of that entry shares, so the
  ``NO_DUPLICATES`` batch sampler never puts two rows of one entry in a batch (the other's
  anchor would otherwise count as a negative: a false negative);
- negative: the question of the entry the *base* model confuses it with most (a hard negative:
  the nearest other entry to the anchor).

Part of each entry's paraphrases (``heldout_share``, at least one for entries with three or
more phrasings) is kept out of training and measures the gain: the share of held-out
paraphrases whose nearest phrasing (question or kept paraphrase, the index's dense side)
belongs to their own entry, with the base model and with the tuned one. The tuned model is
written with ``save_pretrained`` (a folder ``CHATBOT_EMBEDDING_MODEL`` serves) with the report
beside it in ``training_report.json``.
"""

from __future__ import annotations

import json
import random
import time
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from chatbot.errors import InvalidInput
from knowledge import compute
from knowledge.index import first_sentence
from knowledge.records import Entry, Record


@dataclass
class RetrieverOptions:
    base: str
    output: Path
    epochs: float = 3.0
    learning_rate: float = 2e-5
    batch_size: int = 32
    max_steps: int = -1
    heldout_share: float = 0.2
    seed: int = 0

    def check(self) -> None:
        if not 0.0 <= self.heldout_share < 1.0:
            raise InvalidInput("--validation-split for --retriever must be at least 0 and below 1.")
        if self.batch_size < 2:
            raise InvalidInput("--batch-size for --retriever must be at least 2 (in-batch negatives).")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise InvalidInput("Give --epochs above 0 or --max-steps.")


@dataclass(frozen=True)
class Split:
    train: list[tuple[str, str]]  # (anchor, entry id)
    heldout: list[tuple[str, str]]  # (paraphrase, entry id)
    kept: dict[str, list[str]]  # entry id -> its question and kept paraphrases
    questions: dict[str, str]


def split_entries(records: Sequence[Record], heldout_share: float) -> Split:
    """Anchors to train on and paraphrases held out, by a hash of each text (reproducible)."""
    entries = [r for r in records if isinstance(r, Entry)]
    if len(entries) < 2:
        raise InvalidInput("Retriever training needs at least two FAQ entries in the published "
                           "knowledge base.")
    train: list[tuple[str, str]] = []
    heldout: list[tuple[str, str]] = []
    kept: dict[str, list[str]] = {}
    for entry in entries:
        paraphrases = entry.variants()[1:]
        n_out = 0
        if heldout_share > 0 and len(paraphrases) >= 2:
            n_out = max(1, round(len(paraphrases) * heldout_share))
        ordered = sorted(paraphrases, key=lambda p: zlib.crc32(f"{entry.id}\n{p}".encode()))
        out, rest = ordered[:n_out], ordered[n_out:]
        heldout += [(p, entry.id) for p in out]
        kept[entry.id] = [entry.question, *rest]
        train += [(p, entry.id) for p in rest]
        lead = first_sentence(entry.answer)
        if lead and lead != entry.question:
            train.append((lead, entry.id))
    if not train:
        raise InvalidInput("The knowledge base has no paraphrases or answers to train on.")
    return Split(train, heldout, kept, {e.id: e.question for e in entries})


def nearest_accuracy(model: Any, split: Split) -> float | None:
    """Share of held-out paraphrases whose nearest kept phrasing is their own entry's."""
    if not split.heldout:
        return None
    owners = [eid for eid, texts in split.kept.items() for _ in texts]
    corpus = [t for texts in split.kept.values() for t in texts]
    corpus_vecs = model.encode(corpus, normalize_embeddings=True, convert_to_numpy=True)
    query_vecs = model.encode([q for q, _ in split.heldout], normalize_embeddings=True,
                              convert_to_numpy=True)
    best = np.argmax(query_vecs @ corpus_vecs.T, axis=1)
    return float(np.mean([owners[b] == eid for b, (_, eid) in zip(best, split.heldout, strict=True)]))


def hard_negatives(model: Any, split: Split) -> list[str]:
    """For each training anchor, the question of the nearest other entry (by the base model)."""
    ids = list(split.questions)
    questions = model.encode([split.questions[i] for i in ids], normalize_embeddings=True,
                             convert_to_numpy=True)
    anchors = model.encode([a for a, _ in split.train], normalize_embeddings=True,
                           convert_to_numpy=True)
    sims = anchors @ questions.T
    own = np.array([ids.index(eid) for _, eid in split.train])
    sims[np.arange(len(own)), own] = -np.inf
    return [split.questions[ids[j]] for j in np.argmax(sims, axis=1)]


def train_retriever(options: RetrieverOptions, records: Sequence[Record], *, kb_version: int,
                    progress: bool = True) -> dict[str, Any]:
    """Fine-tune, measure on the held-out paraphrases, save; returns the report."""
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.losses import MultipleNegativesRankingLoss
    from sentence_transformers.training_args import BatchSamplers

    from knowledge.embeddings import resolve_embedding_model

    options.check()
    compute.all_cores()  # as in answer-model training: the caller may have left it on one core
    random.seed(options.seed)
    split = split_entries(records, options.heldout_share)
    model = SentenceTransformer(resolve_embedding_model(options.base))
    before = nearest_accuracy(model, split)
    rows = {
        "anchor": [a for a, _ in split.train],
        "positive": [split.questions[eid] for _, eid in split.train],
        "negative": hard_negatives(model, split),
    }
    dataset = Dataset.from_dict(rows).shuffle(seed=options.seed)
    work = options.output / "checkpoints"
    args = SentenceTransformerTrainingArguments(
        output_dir=str(work),
        num_train_epochs=options.epochs,
        max_steps=options.max_steps,
        per_device_train_batch_size=options.batch_size,
        learning_rate=options.learning_rate,
        warmup_steps=0.1,  # a float: the share of steps (transformers 5)
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        save_strategy="no",
        logging_steps=10,
        report_to="none",
        seed=options.seed,
        disable_tqdm=not progress,
        use_cpu=not _has_gpu(),
    )
    started = time.perf_counter()
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=dataset,
        loss=MultipleNegativesRankingLoss(model),
    )
    result = trainer.train()
    seconds = time.perf_counter() - started
    after = nearest_accuracy(model, split)
    options.output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(options.output))
    report = {
        "kind": "retriever",
        "base": options.base,
        "output": str(options.output),
        "kb_version": kb_version,
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
        "train_rows": len(rows["anchor"]),
        "heldout_paraphrases": len(split.heldout),
        "heldout_top1_before": before,
        "heldout_top1_after": after,
        "train_loss": float(result.training_loss),
        "steps": int(result.global_step),
        "train_seconds": round(seconds, 1),
    }
    (options.output / "training_report.json").write_text(json.dumps(report, indent=2))
    return report


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()
