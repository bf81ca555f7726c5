"""Hybrid retrieval with calibrated scores.

An item's raw score fuses the three signals of ``knowledge.index``:
``raw = dense + LEAD_WEIGHT * lead + KEYWORD_WEIGHT * min(bm25, KEYWORD_CAP)``.
Its reported ``score`` is ``sigmoid(SLOPE * raw + INTERCEPT)``: for the best hit of a query,
an estimate of the probability that it is the entry that answers the query. The ranking
weights maximise top-1 accuracy on our data; the two calibration constants were fitted by
logistic regression on the best hits of labelled queries from two unrelated knowledge bases
(the demo shop and the COVID FAQ, each also queried with the other's questions as
out-of-scope cases; ``bench/fit_calibration.py``), so that one threshold means about the
same on any knowledge base.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from knowledge.embeddings import Embedder
from knowledge.index import Item, SearchIndex, Signals
from knowledge.store import KnowledgeStore

log = logging.getLogger(__name__)

LEAD_WEIGHT = 0.5
KEYWORD_WEIGHT = 0.04
KEYWORD_CAP = 15.0
CONTEXT_WEIGHT = 0.6  # share of the earlier question in a follow-up's query vector
CODE_BONUS = 0.3  # a product code or order number quoted verbatim is near-certain evidence
SLOPE = 5.027
INTERCEPT = -4.829


@dataclass(frozen=True)
class Hit:
    id: str
    kind: str  # "faq" | "passage"
    title: str
    text: str
    parent: str
    score: float  # calibrated, in [0, 1]
    dense: float
    lead: float
    keyword: float
    code: float = 0.0

    @property
    def raw(self) -> float:
        return fused(self.dense, self.lead, self.keyword, self.code)


def fused(dense: float, lead: float, keyword: float, code: float = 0.0) -> float:
    return (
        dense + LEAD_WEIGHT * lead + KEYWORD_WEIGHT * min(keyword, KEYWORD_CAP) + CODE_BONUS * code
    )


def calibrate(raw: float) -> float:
    return 1.0 / (1.0 + math.exp(-(SLOPE * raw + INTERCEPT)))


def rank(index: SearchIndex, signals: list[Signals], k: int) -> list[Hit]:
    hits = []
    for s in signals:
        item: Item = index.items[s.item]
        raw = fused(s.dense, s.lead, s.keyword, s.code)
        hits.append(
            Hit(
                id=item.id,
                kind=item.kind,
                title=item.title,
                text=item.text,
                parent=item.parent,
                score=calibrate(raw),
                dense=s.dense,
                lead=s.lead,
                keyword=s.keyword,
                code=s.code,
            )
        )
    hits.sort(key=lambda h: (-h.score, h.id))
    return hits[:k]


class Retriever:
    """Answers queries from the latest published KB version, reloading when it changes."""

    def __init__(self, store: KnowledgeStore, embedder: Embedder, folder: Path) -> None:
        self.store = store
        self.embedder = embedder
        self.folder = folder
        self._index: SearchIndex | None = None
        self._lock = threading.Lock()

    @property
    def version(self) -> int:
        return self._index.version if self._index else 0

    @property
    def loaded(self) -> bool:
        """An index is in memory (the server can answer), whatever its version."""
        return self._index is not None

    def index(self) -> SearchIndex:
        """The index of the latest published version (loaded or rebuilt when stale)."""
        latest = self.store.current_version()
        current = self._index
        if current is not None and current.version == latest:
            return current
        with self._lock:
            if self._index is None or self._index.version != latest:
                self._index = self._load_or_build(latest)
            return self._index

    def rebuild(self, show_progress: bool = False) -> SearchIndex:
        with self._lock:
            version = self.store.current_version()
            index = SearchIndex.build(
                self.store.published(version),
                self.embedder,
                version=version,
                show_progress=show_progress,
            )
            index.save(self.folder)
            self._index = index
            return index

    def _load_or_build(self, version: int, show_progress: bool = False) -> SearchIndex:
        if SearchIndex.stamp(self.folder) == (version, self.embedder.name):
            try:
                return SearchIndex.load(self.folder)
            except Exception:  # a damaged index is derived data: rebuild it
                log.warning("the saved index could not be read; rebuilding", exc_info=True)
        log.info("building the search index for knowledge-base version %s", version)
        index = SearchIndex.build(
            self.store.published(version), self.embedder, version=version,
            show_progress=show_progress,
            previous=self._index,  # unchanged items keep their vectors: an edit embeds itself
        )
        index.save(self.folder)
        return index

    def search(self, query: str, k: int = 5, *, context: str | None = None) -> list[Hit]:
        """Hits for ``query``; with ``context`` (the earlier question of a follow-up), the dense
        side searches a blend that leans on the new message, and keywords come from it alone."""
        query = " ".join(query.split())
        if not query:
            return []
        index = self.index()
        vec = self.embedder.embed_query(query)
        if context:
            blend = vec + CONTEXT_WEIGHT * self.embedder.embed_query(" ".join(context.split()))
            vec = (blend / max(float(np.linalg.norm(blend)), 1e-9)).astype(np.float32)
        return rank(index, index.signals(vec, query, k), k)
