"""The search index: derived data, built from one published knowledge-base version.

Three signals per retrievable item (an FAQ entry or a document passage):
- ``dense``: the best cosine similarity between the query and any of the item's variants
  (an entry's question and each paraphrase is its own FAISS vector pointing to the entry);
- ``lead``: cosine similarity to the question followed by the first sentence of its answer,
  which separates entries whose questions are alike but whose answers are not;
- ``keyword``: BM25 (bm25s, stemmed, English stop words) over question, paraphrases and
  answer, which catches product codes and rare words that embeddings blur;
- ``classifier`` and ``margin``: the probability that a classifier head fitted on this KB's
  own phrasings gives the item, and its lead over the best other item (``knowledge.classifier``).

The dense side is an exact scan up to a size and an inverted-file index above it
(``knowledge.vectors``).

The index is saved under ``<data dir>/index`` stamped with the KB version and embedding model;
a stale stamp means rebuild. A rebuild takes the vectors (and BM25 tokens) of unchanged items
from the index it replaces, and the embedding cache makes it embed only changed text.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import bm25s
import faiss
import numpy as np

from knowledge.chunking import split_document
from knowledge.classifier import MAX_CLASSES, Classifier, margins
from knowledge.embeddings import Embedder, text_hash
from knowledge.normalize import Speller
from knowledge.records import Document, Entry, Record
from knowledge.subjects import SubjectTable, infer_subjects, shared_copies
from knowledge.vectors import search_one, vector_index

try:  # stemming helps BM25 ("refunds" ~ "refund"); optional for lean installs
    import Stemmer

    _STEMMER = Stemmer.Stemmer("english")
except ImportError:  # pragma: no cover
    _STEMMER = None

FORMAT = 3  # 2: the vector index may be IVF; items carry content keys (item_key); 3: classifier

KEEP_TOKENS_UP_TO = 50_000  # items whose BM25 tokens stay in memory for the next build


@dataclass(frozen=True)
class Item:
    id: str  # entry id, or "<document id>#<n>" for a passage
    kind: str  # "faq" | "passage"
    title: str
    text: str  # the entry's answer or the passage's text
    parent: str  # the entry id, or the document id of a passage
    subject: str = ""  # the entry's subject ("" for general entries and passages)


def items_from_records(records: Sequence[Record]) -> tuple[list[Item], list[list[str]], list[str]]:
    """Items, the variant texts of each, and the lead text of each."""
    items: list[Item] = []
    variants: list[list[str]] = []
    leads: list[str] = []
    entries = [r for r in records if isinstance(r, Entry)]
    # A KB that names no subject may still name them in its questions ("Does Acorn Guest
    # House have free parking?" for every guest house): those are its subjects.
    inferred = ({} if any(e.subject for e in entries)
                else infer_subjects({e.id: e.question for e in entries}))
    for record in records:
        if isinstance(record, Entry):
            items.append(Item(record.id, "faq", record.question, record.answer, record.id,
                              record.subject or inferred.get(record.id, "")))
            variants.append(record.variants())
            leads.append(f"{record.question} {first_sentence(record.answer)}")
        elif isinstance(record, Document):
            for passage in split_document(record):
                items.append(Item(passage.id, "passage", passage.title, passage.text, record.id))
                text = f"{passage.title}\n{passage.text}"
                variants.append([text])
                leads.append(text)
    return items, variants, leads


def _head(variant_vecs: np.ndarray, variant_item: np.ndarray, lead_vecs: np.ndarray,
          copies: np.ndarray) -> Classifier | None:
    # Each item's lead (its question and the first sentence of its answer) is one more example
    # of it: the answer's words ("KX-220") are evidence too.
    return Classifier.fit(np.vstack([variant_vecs, lead_vecs]),
                          np.concatenate([variant_item, np.arange(len(lead_vecs))]),
                          len(lead_vecs), copies)


def keyword_text(item: Item, variants: list[str]) -> str:
    return " ".join([*variants, item.text]) if item.kind == "faq" else variants[0]


def item_key(variants: list[str], lead: str) -> str:
    """What an item's vectors depend on: its variant texts and its lead text."""
    return text_hash(json.dumps([variants, lead], ensure_ascii=False))


def first_sentence(text: str) -> str:
    return re.split(r"(?<=[.!?])\s+", text.strip(), maxsplit=1)[0]


def tokenize(texts: list[str]) -> list[list[str]]:
    tokens = bm25s.tokenize(
        texts, stopwords="en", stemmer=_STEMMER, return_ids=False, show_progress=False
    )
    return [list(t) for t in tokens]


@dataclass
class Signals:
    item: int
    dense: float
    lead: float
    keyword: float
    code: float = 0.0  # 1 when a code-like query token (SKU, order number) occurs verbatim
    classifier: float = 0.0  # the KB's classifier head's probability (0 without a head)
    margin: float = 0.0  # that probability less the best other item's


# Tokens with a digit, like "KX-220" or "A1234": embeddings blur them, BM25 splits them.
_CODE = re.compile(r"\b(?=[\w-]*\d)[a-z0-9][\w-]*[a-z0-9]\b", re.IGNORECASE)


def keyword_depth(k: int) -> int:
    """How many BM25 candidates a search for ``k`` hits takes."""
    return max(k * 4, 20)


def code_tokens(text: str) -> set[str]:
    return {m.lower() for m in _CODE.findall(text) if len(m) >= 3 and any(c.isalpha() for c in m)}


def quotes_codes(text: str, codes: set[str]) -> bool:
    """Whether every code token occurs in ``text`` (a substring test first: it is cheaper)."""
    lower = text.lower()
    return all(c in lower for c in codes) and codes <= code_tokens(text)


class SearchIndex:
    def __init__(
        self,
        *,
        version: int,
        model: str,
        items: list[Item],
        variant_item: np.ndarray,
        vectors: faiss.Index,
        leads: np.ndarray,
        keyword_texts: list[str],
        keys: list[str] | None = None,
        tokens: list[list[str]] | None = None,
        classifier: Classifier | None = None,
        copies: np.ndarray | None = None,
    ) -> None:
        self.version = version
        self.model = model
        self.items = items
        self.variant_item = variant_item
        self.vectors = vectors
        self.leads = leads
        self.keyword_texts = keyword_texts
        self.keys = keys  # per item, a hash of its variant and lead texts (item_key)
        self.classifier = classifier
        # Per item, how many subjects share one of its phrasings (``shared_copies``), kept for
        # a head fitted after the build (``fit_head``).
        self.copies = copies if copies is not None else np.ones(len(items), dtype=np.float32)
        # The variants of item i are vector ids _by_item[_bounds[i]:_bounds[i + 1]].
        self._by_item = np.argsort(variant_item, kind="stable")
        self._bounds = np.searchsorted(variant_item[self._by_item], np.arange(len(items) + 1))
        self._bm25: bm25s.BM25 | None = None
        corpus = tokens if tokens is not None else tokenize(keyword_texts) if keyword_texts else []
        if any(corpus):
            self._bm25 = bm25s.BM25()
            self._bm25.index(corpus, show_progress=False)
        # Kept for the next build, which then tokenises only changed items (~0.4 KB an item).
        self._tokens = corpus if len(items) <= KEEP_TOKENS_UP_TO else None
        self._speller: Speller | None = None
        self._subjects: SubjectTable | None = None

    def subjects(self) -> SubjectTable:
        """The KB's subjects: each one's items, and where a text names one (built on first
        use; derived data)."""
        if self._subjects is None:
            self._subjects = SubjectTable.for_items(
                [it.subject for it in self.items],
                [(it.subject, it.title) for it in self.items if it.kind == "faq"],
            )
        return self._subjects

    def speller(self) -> Speller:
        """Typo correction towards this index's words (built on first use; derived data)."""
        if self._speller is None:
            self._speller = Speller.for_texts(self.keyword_texts)
        return self._speller

    def take_speller(self, previous: SearchIndex) -> None:
        """Make this index's speller by changing ``previous``'s for the texts that differ (an
        edit changes a few words; a new speller costs most of a second at 10k entries).
        ``previous`` is being replaced: its speller suggests from the new table too."""
        if previous._speller is None or self._speller is not None:
            return
        old, new = Counter(previous.keyword_texts), Counter(self.keyword_texts)
        self._speller = previous._speller.updated(removed=(old - new).elements(),
                                                  added=(new - old).elements())

    @classmethod
    def build(
        cls,
        records: Sequence[Record],
        embedder: Embedder,
        *,
        version: int,
        show_progress: bool = False,
        previous: SearchIndex | None = None,
        head: bool = True,
    ) -> SearchIndex:
        """Embed and index ``records``; items unchanged since ``previous`` reuse its vectors.

        An edit then embeds (or reads from the embedding cache) only the items it changed, and
        an IVF index of about the same size keeps its trained lists. ``head=False`` leaves the
        classifier head to ``fit_head`` (seconds for a few thousand phrasings: the serving
        index fits it after searches have moved to the new version).
        """
        items, variants, leads = items_from_records(records)
        keys = [item_key(vs, lead) for vs, lead in zip(variants, leads, strict=True)]
        flat = [v for vs in variants for v in vs]
        variant_item = np.array(
            [i for i, vs in enumerate(variants) for _ in vs], dtype=np.int64
        )
        reuse = previous._reusable(keys, embedder) if previous is not None else {}
        fresh = [i for i in range(len(items)) if i not in reuse]
        vecs = embedder.embed_documents(
            [v for i in fresh for v in variants[i]] + [leads[i] for i in fresh],
            show_progress=show_progress,
        )
        variant_vecs = np.empty((len(flat), embedder.dim), dtype=np.float32)
        lead_vecs = np.empty((len(items), embedder.dim), dtype=np.float32)
        starts = np.concatenate([[0], np.cumsum([len(vs) for vs in variants])]).astype(np.int64)
        fresh_rows = [r for i in fresh for r in range(starts[i], starts[i + 1])]
        variant_vecs[fresh_rows] = vecs[: len(fresh_rows)]
        lead_vecs[fresh] = vecs[len(fresh_rows) :]
        if reuse and previous is not None:
            new, old = list(reuse), list(reuse.values())
            rows = [r for i in new for r in range(starts[i], starts[i + 1])]
            variant_vecs[rows] = previous.vectors.reconstruct_batch(previous._variants_of(old))
            lead_vecs[new] = previous.leads[old]
        like = previous.vectors if previous is not None and len(reuse) >= 0.9 * len(items) else None
        texts = [keyword_text(it, vs) for it, vs in zip(items, variants, strict=True)]
        copies = shared_copies([it.subject for it in items], variants)
        return cls(
            version=version,
            model=embedder.name,
            items=items,
            variant_item=variant_item,
            vectors=vector_index(variant_vecs, embedder.dim, like=like),
            leads=lead_vecs,
            keyword_texts=texts,
            keys=keys,
            tokens=previous._tokens_for(texts, reuse) if previous is not None else None,
            classifier=_head(variant_vecs, variant_item, lead_vecs, copies) if head else None,
            copies=copies,
        )

    def fit_head(self) -> None:
        """Fit the classifier head from the vectors the index holds (no-op when it has one,
        or has too many items for one)."""
        if self.classifier is not None or not 2 <= len(self.items) <= MAX_CLASSES:
            return
        try:
            variant_vecs = self.vectors.reconstruct_n(0, self.vectors.ntotal)
        except RuntimeError:  # an index kind that cannot give its vectors back: no head
            return
        self.classifier = _head(variant_vecs, self.variant_item, self.leads, self.copies)

    def _reusable(self, keys: list[str], embedder: Embedder) -> dict[int, int]:
        """New item position -> position here, for items whose texts are unchanged."""
        if self.keys is None or self.model != embedder.name or self.vectors.d != embedder.dim:
            return {}
        here = {key: i for i, key in enumerate(self.keys)}
        return {i: here[key] for i, key in enumerate(keys) if key in here}

    def _tokens_for(self, texts: list[str], reuse: dict[int, int]) -> list[list[str]] | None:
        """BM25 tokens of ``texts``: kept ones for unchanged items, the rest tokenised now."""
        if self._tokens is None:
            return None
        old = self._tokens
        kept = {i: j for i, j in reuse.items() if self.keyword_texts[j] == texts[i]}
        todo = [i for i in range(len(texts)) if i not in kept]
        fresh = dict(zip(todo, tokenize([texts[i] for i in todo]) if todo else [], strict=True))
        return [old[kept[i]] if i in kept else fresh[i] for i in range(len(texts))]

    def _variants_of(self, items: Sequence[int]) -> np.ndarray:
        """Vector ids of the variants of ``items``, item by item, in stored order."""
        if not len(items):
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([self._by_item[self._bounds[i] : self._bounds[i + 1]] for i in items])

    # --- persistence ------------------------------------------------------------------

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / "index.faiss.tmp"
        faiss.write_index(self.vectors, str(tmp))
        tmp.replace(folder / "index.faiss")
        np.save(folder / "arrays.npy.tmp.npy", self.leads)
        (folder / "arrays.npy.tmp.npy").replace(folder / "leads.npy")
        np.save(folder / "variant_item.tmp.npy", self.variant_item)
        (folder / "variant_item.tmp.npy").replace(folder / "variant_item.npy")
        if self.classifier is not None:
            self.classifier.save(folder)
        else:
            Classifier.remove(folder)
        meta = {
            "format": FORMAT,
            "version": self.version,
            "model": self.model,
            "items": [vars(i) for i in self.items],  # asdict is 10x slower
            "keyword_texts": self.keyword_texts,
            "keys": self.keys,
            "copies": self.copies.tolist() if np.any(self.copies != 1) else None,
        }
        # The stamp is written last: a crash mid-save leaves an old stamp, so a rebuild follows.
        tmp_meta = folder / "meta.json.tmp"
        tmp_meta.write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        tmp_meta.replace(folder / "meta.json")

    @staticmethod
    def stamp(folder: Path) -> tuple[int, str] | None:
        """(KB version, embedding model) of the saved index, or None if there is none."""
        try:
            meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if meta.get("format") != FORMAT:
            return None
        return int(meta["version"]), str(meta["model"])

    @classmethod
    def load(cls, folder: Path) -> SearchIndex:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        return cls(
            version=int(meta["version"]),
            model=meta["model"],
            items=[Item(**i) for i in meta["items"]],
            variant_item=np.load(folder / "variant_item.npy"),
            vectors=faiss.read_index(str(folder / "index.faiss")),
            leads=np.load(folder / "leads.npy"),
            keyword_texts=meta["keyword_texts"],
            keys=meta.get("keys"),
            classifier=Classifier.load(folder),
            copies=np.array(meta["copies"], dtype=np.float32) if meta.get("copies") else None,
        )

    # --- search -----------------------------------------------------------------------

    def signals(
        self,
        query_vec: np.ndarray,
        query_text: str,
        k: int,
        keyword: dict[int, float] | None = None,
        subject: str | None = None,
    ) -> list[Signals]:
        """Signals for the union of the best dense and keyword candidates; ``keyword`` is
        ``keyword_scores(query_text, keyword_depth(k))`` where the caller has it already.

        With ``subject`` (one of ``subjects()``), the items of that subject are candidates
        whatever their rank (a question asked of thousands of subjects alike would otherwise
        find some other subject's copies first), and other subjects' items are none."""
        if not self.items:
            return []
        n_vec = self.vectors.ntotal
        depth = min(n_vec, max(64, k * 8))
        dense: dict[int, float] = {}
        if n_vec:
            scores, ids = search_one(self.vectors, query_vec, depth)
            for score, vid in zip(scores[0], ids[0], strict=True):
                if vid < 0:
                    continue
                item = int(self.variant_item[vid])
                if score > dense.get(item, -1.0):
                    dense[item] = float(score)
        if keyword is None:
            keyword = self.keyword_scores(query_text, keyword_depth(k))
        candidates = set(sorted(dense, key=dense.__getitem__, reverse=True)[: k * 4]) | set(
            keyword
        )
        codes = code_tokens(query_text)
        quoted = {i for i in candidates if codes and quotes_codes(self.keyword_texts[i], codes)}
        # Embeddings blur product codes, and so does a head fitted on them: a query that
        # quotes a code the KB holds is matched on the code, not by the head.
        probs = None
        if self.classifier is not None and not quoted:
            probs = self.classifier.probabilities(query_vec)
        table = self.subjects()
        if subject is not None and subject in table.number:
            own = table.positions[subject]
            others = (table.of_item >= 0) & (table.of_item != table.number[subject])
            candidates = {c for c in candidates | set(own.tolist()) if not others[c]}
            if probs is not None and self.classifier is not None:
                probs = self.classifier.within(probs, own, others)
        best = second = 0.0
        if probs is not None:
            # The head may favour an item none of whose phrasings is among the nearest.
            candidates |= {int(i) for i in np.argsort(-probs)[:k] if probs[i] > 0}
            best, second = margins(probs)
        missing = sorted(c for c in candidates if c not in dense)
        if missing:
            # Keyword-only candidates still need their exact best-variant similarity.
            vids = np.sort(self._variants_of(missing))
            sims = self.vectors.reconstruct_batch(vids) @ query_vec
            for vid, sim in zip(vids, sims, strict=True):
                item = int(self.variant_item[vid])
                dense[item] = max(dense.get(item, -1.0), float(sim))
        order = sorted(candidates)
        lead = self.leads[order] @ query_vec if order else np.zeros(0)
        return [
            Signals(
                item=i,
                dense=dense[i],
                lead=float(lead[j]),
                keyword=keyword.get(i, 0.0),
                code=float(i in quoted),
                classifier=float(probs[i]) if probs is not None else 0.0,
                margin=(float(probs[i]) - (second if probs[i] >= best else best))
                if probs is not None else 0.0,
            )
            for j, i in enumerate(order)
        ]

    def keyword_scores(self, query_text: str, k: int) -> dict[int, float]:
        """The ``k`` best BM25 scores above zero, selected among the matching documents only
        (a selection over every document's score took ~10 ms at 1M documents)."""
        if self._bm25 is None:
            return {}
        tokens = tokenize([query_text])[0]
        if not tokens:
            return {}
        scores = self._bm25.get_scores(tokens)
        found = np.flatnonzero(scores > 0)
        if len(found) > k:
            found = found[np.argpartition(-scores[found], k - 1)[:k]]
        return {int(d): float(scores[d]) for d in found}
