"""Hybrid retrieval with calibrated scores.

An item's raw score fuses the three similarity signals of ``knowledge.index``:
``raw = dense + LEAD_WEIGHT * lead + KEYWORD_WEIGHT * min(bm25, KEYWORD_CAP)``.
Its reported ``score`` is the knowledge base's ``Calibration`` of it together with the KB's
classifier head's probability and margin (``knowledge.calibration``): for the best hit of a
query, an estimate of the probability that it is the entry that answers the query, fitted to
each published version on its own held-out paraphrases and unanswerable messages, so that one
threshold means about the same on any knowledge base. The ranking weights maximise top-1
accuracy on our data.

Queries are cleaned (pictographs, repeated punctuation) and their typos mended towards the
KB's own words (``knowledge.normalize``) before they are embedded and matched.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import numpy as np

from knowledge.calibration import (
    GLOBAL,
    WITH_CLASSIFIER,
    Calibration,
    Sample,
    fit,
    folds_for,
    generic_unanswerable,
    heldout_split,
)
from knowledge.embeddings import Embedder
from knowledge.index import Item, SearchIndex, Signals, keyword_depth
from knowledge.normalize import clean
from knowledge.records import Entry
from knowledge.store import KnowledgeStore

log = logging.getLogger(__name__)

# From this many entries on, a query's BM25 scoring runs on another thread while the query is
# embedded (numpy and torch release the GIL): at 1M entries it takes ~9 ms, which the embedding
# then hides (17.0 -> 11.0 ms for the two); at 100k it takes ~0.9 ms and the hand-off to the
# thread costs what it saves (bench/retrieval_latency.py at 100k and 1M).
OVERLAP_ABOVE = 200_000
LEAD_WEIGHT = 0.5
KEYWORD_WEIGHT = 0.04
KEYWORD_CAP = 15.0
CONTEXT_WEIGHT = 0.6  # share of the earlier question in a follow-up's query vector
# A generic out-of-scope message this close to one of the KB's phrasings is a kind of message
# the KB answers: it is no unanswerable case for that KB (staff-marked ones always are).
COVERED_GENERIC = 0.75
CODE_BONUS = 0.3  # a product code or order number quoted verbatim is near-certain evidence

T = TypeVar("T")


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
    classifier: float = 0.0
    margin: float = 0.0
    subject: str = ""

    @property
    def raw(self) -> float:
        return fused(self.dense, self.lead, self.keyword, self.code)


def fused(dense: float, lead: float, keyword: float, code: float = 0.0) -> float:
    return (
        dense + LEAD_WEIGHT * lead + KEYWORD_WEIGHT * min(keyword, KEYWORD_CAP) + CODE_BONUS * code
    )


_keyword_lock = threading.Lock()
_keyword_pool: ThreadPoolExecutor | None = None


def _keyword_thread() -> ThreadPoolExecutor:
    global _keyword_pool
    with _keyword_lock:
        if _keyword_pool is None:
            _keyword_pool = ThreadPoolExecutor(2, thread_name_prefix="keyword")
        return _keyword_pool


def embed_with_keywords(
    index: SearchIndex, query: str, k: int, embed: Callable[[], T]
) -> tuple[T, dict[int, float] | None]:
    """``embed()``, and on a large index ``query``'s BM25 candidates for ``k`` hits, scored on
    another thread meanwhile (None on a small one: ``signals`` scores them itself)."""
    if len(index.items) < OVERLAP_ABOVE:
        return embed(), None
    keyword = _keyword_thread().submit(index.keyword_scores, query, keyword_depth(k))
    try:
        vector = embed()
    except BaseException:
        keyword.cancel()
        raise
    return vector, keyword.result()


def rank(
    index: SearchIndex, signals: list[Signals], k: int, calibration: Calibration = GLOBAL
) -> list[Hit]:
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
                score=calibration.score(raw, s.classifier, s.margin),
                dense=s.dense,
                lead=s.lead,
                keyword=s.keyword,
                code=s.code,
                classifier=s.classifier,
                margin=s.margin,
                subject=item.subject,
            )
        )
    # A steep calibration rounds the best scores to 1.0: the raw score still orders them.
    hits.sort(key=lambda h: (-h.score, -h.raw, h.id))
    return hits[:k]


def _sample(hits: Sequence[Hit], correct: bool, answerable: bool) -> Sample:
    if not hits:
        return Sample(0.0, False, answerable)
    top = hits[0]
    return Sample(top.raw, correct, answerable, top.classifier, top.margin)


class Retriever:
    """Answers queries from the latest published KB version, reloading when it changes.

    Each version's classifier head and calibration are fitted right after its index is built
    and saved beside it (``classifier.npz``, ``calibration.json``, stamped like the index);
    until they are ready, searches of the new version use the previous calibration (the
    global one where that weighed a head). ``calibrate=False`` keeps the global constants.
    """

    def __init__(
        self,
        store: KnowledgeStore,
        embedder: Embedder,
        folder: Path,
        *,
        calibrate: bool = True,
        unanswerable: Callable[[], Sequence[str]] = tuple,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.folder = folder
        self.auto_calibrate = calibrate
        self.unanswerable = unanswerable  # the KB's own out-of-scope examples (staff's)
        self._index: SearchIndex | None = None
        self.calibration: Calibration = GLOBAL
        self._calibrated_version = -1
        self._lock = threading.Lock()
        self._calibration_lock = threading.Lock()
        self._save_lock = threading.Lock()

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
        fresh = False
        with self._lock:
            swapped = self._index is None or self._index.version != latest
            if swapped:
                self._index, fresh = self._load_or_build(latest)
            index = self._index
        if swapped:
            # The searches that waited for the build answer now. The thread that built saves
            # the index and fits its calibration after that; meanwhile they rank with the
            # previous version's calibration.
            if fresh:
                self._save(index)
            self._ensure_calibration(index)
        return index

    def _save(self, index: SearchIndex) -> None:
        with self._save_lock:
            if self._index is index:  # a newer version built meanwhile saves itself
                index.save(self.folder)

    def rebuild(self, show_progress: bool = False) -> SearchIndex:
        with self._lock:
            version = self.store.current_version()
            index = SearchIndex.build(
                self.store.published(version),
                self.embedder,
                version=version,
                show_progress=show_progress,
                head=not self.auto_calibrate,
            )
            with self._save_lock:
                index.save(self.folder)
            self._index = index
        self._ensure_calibration(index, refit=True)
        return index

    def _load_or_build(
        self, version: int, show_progress: bool = False
    ) -> tuple[SearchIndex, bool]:
        """The version's index, and whether it was built now (and is not saved yet)."""
        if SearchIndex.stamp(self.folder) == (version, self.embedder.name):
            try:
                return SearchIndex.load(self.folder), False
            except Exception:  # a damaged index is derived data: rebuild it
                log.warning("the saved index could not be read; rebuilding", exc_info=True)
        log.info("building the search index for knowledge-base version %s", version)
        index = SearchIndex.build(
            self.store.published(version), self.embedder, version=version,
            show_progress=show_progress,
            previous=self._index,  # unchanged items keep their vectors: an edit embeds itself
            head=False,  # fitted with the calibration, after searches move to this version
        )
        if self._index is not None:
            index.take_speller(self._index)
        return index, True

    # --- calibration ------------------------------------------------------------------

    def _ensure_calibration(self, index: SearchIndex, refit: bool = False) -> None:
        if not self.auto_calibrate or (self._calibrated_version == index.version and not refit):
            return
        with self._calibration_lock:
            if self._calibrated_version == index.version and not refit:
                return
            if index.classifier is None:
                started = time.perf_counter()
                index.fit_head()
                if index.classifier is not None:
                    log.info("fitted the classifier head of knowledge-base version %s in %.2f s",
                             index.version, time.perf_counter() - started)
                    with self._save_lock:
                        if self._index is index:
                            index.classifier.save(self.folder)
            stamp = f"{index.version} {self.embedder.name}"
            path = self.folder / "calibration.json"
            calibration = None
            if not refit:
                try:
                    saved = json.loads(path.read_text(encoding="utf-8"))
                    if saved.get("stamp") == stamp:
                        calibration = Calibration.from_json(saved["calibration"])
                except (OSError, ValueError, KeyError, TypeError):
                    calibration = None
            if calibration is None:
                started = time.perf_counter()
                calibration = self.fit_calibration(index)
                log.info("calibrated knowledge-base version %s in %.2f s (%s)", index.version,
                         time.perf_counter() - started, calibration.describe())
                tmp = path.with_suffix(".json.tmp")
                tmp.write_text(json.dumps({"stamp": stamp, "calibration": calibration.to_json()}),
                               encoding="utf-8")
                tmp.replace(path)
            if self._index is index:
                self.calibration = calibration
                self._calibrated_version = index.version

    def fit_calibration(self, index: SearchIndex) -> Calibration:
        """Fit ``index``'s KB on its held-out phrasings and the unanswerable messages."""
        embedded = getattr(self.embedder, "last_embedded", None)
        try:
            return self._fit(index)
        finally:  # what the index build embedded stays the figure to report
            if embedded is not None:
                self.embedder.last_embedded = embedded

    def _fit(self, index: SearchIndex) -> Calibration:
        # A phrasing of an entry about a subject is asked, in a conversation, about that subject
        # (named in the entry, or inferred from the KB's questions: the index knows which).
        subject_of = {it.id: it.subject for it in index.items if it.kind == "faq" and it.subject}
        records = [
            replace(r, extra={**r.extra, "subject": subject_of[r.id]})
            if isinstance(r, Entry) and r.id in subject_of and not r.subject else r
            for r in self.store.published(index.version)
        ]
        subject_by_text = {v: r.subject for r in records
                           if isinstance(r, Entry) and r.subject for v in r.variants()}
        # Two rankings of every case: with the KB's classifier head (its prior weights) and
        # without it. The head is kept only where it ranks the held-out phrasings at least
        # as well as the fused score alone.
        priors = (WITH_CLASSIFIER, GLOBAL) if index.classifier is not None else (GLOBAL,)
        samples: dict[Calibration, list[Sample]] = {p: [] for p in priors}
        for fold_number in range(folds_for(records)):
            kept, answerable, near = heldout_split(records, fold=fold_number)
            if not answerable and not near:
                break
            # The fold's index fits its own classifier head on what it kept.
            fold = SearchIndex.build(kept, self.embedder, version=index.version, previous=index)
            cases = [*answerable, *((q, None) for q in near)]
            vectors = self.embedder.embed_documents([q for q, _ in cases])
            for (query, expected), vec in zip(cases, vectors, strict=True):
                subject = subject_of.get(expected) if expected else subject_by_text.get(query)
                signals = fold.signals(vec, query, 5, subject=subject or None)
                for prior in priors:
                    hits = rank(fold, signals, 1, prior)
                    correct = bool(hits) and hits[0].parent == expected
                    samples[prior].append(_sample(hits, correct, expected is not None))
        generic = list(generic_unanswerable())
        messages = [*generic, *self.unanswerable()]
        vectors = self.embedder.embed_documents(messages)
        for n, (query, vec) in enumerate(zip(messages, vectors, strict=True)):
            signals = index.signals(vec, query, 5)
            if n < len(generic) and max((s.dense for s in signals), default=0.0) >= COVERED_GENERIC:
                continue  # a KB that translates words answers "how do you say thank you in italian"
            for prior in priors:
                samples[prior].append(_sample(rank(index, signals, 1, prior), False, False))
        fits = {prior: fit(cases, prior) for prior, cases in samples.items()}
        plain = fits[GLOBAL]
        chosen = fits[priors[0]]
        if not chosen.fitted or (plain.heldout_top1 or 0.0) > (chosen.heldout_top1 or 0.0):
            chosen = plain
        # Too few cases to judge the head by: it does not count, and raw scores rank.
        if not chosen.fitted:
            return GLOBAL
        return replace(chosen, baseline_top1=plain.heldout_top1)

    # --- search -----------------------------------------------------------------------

    def search(
        self, query: str, k: int = 5, *, context: str | None = None, subject: str | None = None
    ) -> list[Hit]:
        """Hits for ``query``; with ``context`` (the earlier question of a follow-up), the dense
        side searches a blend that leans on the new message, and keywords come from it alone.
        With ``subject``, only that subject's entries and general ones (``SearchIndex.signals``)."""
        query = clean(query)
        if not query:
            return []
        index = self.index()
        speller = index.speller()
        query = speller.correct(query)
        if context:
            context = speller.correct(clean(context))

        def embed() -> np.ndarray:
            vec = self.embedder.embed_query(query)
            if not context:
                return vec
            blend = vec + CONTEXT_WEIGHT * self.embedder.embed_query(context)
            return (blend / max(float(np.linalg.norm(blend)), 1e-9)).astype(np.float32)

        vec, keyword = embed_with_keywords(index, query, k, embed)
        calibration = self.calibration if self._calibrated_version >= 0 else GLOBAL
        if index.classifier is None and calibration.classifier_weight:
            # A new version's head is being fitted: the previous calibration weighed one.
            calibration = GLOBAL
        return rank(index, index.signals(vec, query, k, keyword, subject), k, calibration)
