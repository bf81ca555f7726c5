"""The search index: derived data, built from one published knowledge-base version.

Three signals per retrievable item (an FAQ entry or a document passage):
- ``dense``: the best cosine similarity between the query and any of the item's variants
  (an entry's question and each paraphrase is its own FAISS vector pointing to the entry);
- ``lead``: cosine similarity to the question followed by the first sentence of its answer,
  which separates entries whose questions are alike but whose answers are not;
- ``keyword``: BM25 (bm25s, stemmed, English stop words) over question, paraphrases and
  answer, which catches product codes and rare words that embeddings blur.

The index is saved under ``<data dir>/index`` stamped with the KB version and embedding model;
a stale stamp means rebuild, and the embedding cache makes a rebuild embed only changed text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import bm25s
import faiss
import numpy as np

from knowledge.chunking import split_document
from knowledge.embeddings import Embedder
from knowledge.records import Document, Entry, Record

try:  # stemming helps BM25 ("refunds" ~ "refund"); optional for lean installs
    import Stemmer

    _STEMMER = Stemmer.Stemmer("english")
except ImportError:  # pragma: no cover
    _STEMMER = None

FORMAT = 1


@dataclass(frozen=True)
class Item:
    id: str  # entry id, or "<document id>#<n>" for a passage
    kind: str  # "faq" | "passage"
    title: str
    text: str  # the entry's answer or the passage's text
    parent: str  # the entry id, or the document id of a passage


def items_from_records(records: Sequence[Record]) -> tuple[list[Item], list[list[str]], list[str]]:
    """Items, the variant texts of each, and the lead text of each."""
    items: list[Item] = []
    variants: list[list[str]] = []
    leads: list[str] = []
    for record in records:
        if isinstance(record, Entry):
            items.append(Item(record.id, "faq", record.question, record.answer, record.id))
            variants.append(record.variants())
            leads.append(f"{record.question} {first_sentence(record.answer)}")
        elif isinstance(record, Document):
            for passage in split_document(record):
                items.append(Item(passage.id, "passage", passage.title, passage.text, record.id))
                text = f"{passage.title}\n{passage.text}"
                variants.append([text])
                leads.append(text)
    return items, variants, leads


def keyword_text(item: Item, variants: list[str]) -> str:
    return " ".join([*variants, item.text]) if item.kind == "faq" else variants[0]


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


# Tokens with a digit, like "KX-220" or "A1234": embeddings blur them, BM25 splits them.
_CODE = re.compile(r"\b(?=[\w-]*\d)[a-z0-9][\w-]*[a-z0-9]\b", re.IGNORECASE)


def code_tokens(text: str) -> set[str]:
    return {m.lower() for m in _CODE.findall(text) if len(m) >= 3 and any(c.isalpha() for c in m)}


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
    ) -> None:
        self.version = version
        self.model = model
        self.items = items
        self.variant_item = variant_item
        self.vectors = vectors
        self.leads = leads
        self.keyword_texts = keyword_texts
        self._bm25: bm25s.BM25 | None = None
        corpus = tokenize(keyword_texts) if keyword_texts else []
        if any(corpus):
            self._bm25 = bm25s.BM25()
            self._bm25.index(corpus, show_progress=False)

    @classmethod
    def build(
        cls,
        records: Sequence[Record],
        embedder: Embedder,
        *,
        version: int,
        show_progress: bool = False,
    ) -> SearchIndex:
        items, variants, leads = items_from_records(records)
        flat = [v for vs in variants for v in vs]
        variant_item = np.array(
            [i for i, vs in enumerate(variants) for _ in vs], dtype=np.int64
        )
        vecs = embedder.embed_documents(flat + leads, show_progress=show_progress)
        index = faiss.IndexFlatIP(embedder.dim)
        if flat:
            index.add(vecs[: len(flat)])
        return cls(
            version=version,
            model=embedder.name,
            items=items,
            variant_item=variant_item,
            vectors=index,
            leads=vecs[len(flat) :],
            keyword_texts=[keyword_text(it, vs) for it, vs in zip(items, variants, strict=True)],
        )

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
        meta = {
            "format": FORMAT,
            "version": self.version,
            "model": self.model,
            "items": [asdict(i) for i in self.items],
            "keyword_texts": self.keyword_texts,
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
        )

    # --- search -----------------------------------------------------------------------

    def signals(self, query_vec: np.ndarray, query_text: str, k: int) -> list[Signals]:
        """Signals for the union of the best dense and keyword candidates."""
        if not self.items:
            return []
        n_vec = self.vectors.ntotal
        depth = min(n_vec, max(64, k * 8))
        dense: dict[int, float] = {}
        if n_vec:
            scores, ids = self.vectors.search(query_vec.reshape(1, -1).astype(np.float32), depth)
            for score, vid in zip(scores[0], ids[0], strict=True):
                if vid < 0:
                    continue
                item = int(self.variant_item[vid])
                if score > dense.get(item, -1.0):
                    dense[item] = float(score)
        keyword = self._keyword(query_text, max(k * 4, 20))
        candidates = set(sorted(dense, key=dense.__getitem__, reverse=True)[: k * 4]) | set(
            keyword
        )
        missing = [c for c in candidates if c not in dense]
        if missing:
            # Keyword-only candidates still need their exact best-variant similarity.
            mask = np.isin(self.variant_item, missing)
            vids = np.nonzero(mask)[0]
            vecs = np.vstack([self.vectors.reconstruct(int(v)) for v in vids])
            sims = vecs @ query_vec
            for vid, sim in zip(vids, sims, strict=True):
                item = int(self.variant_item[vid])
                dense[item] = max(dense.get(item, -1.0), float(sim))
        order = sorted(candidates)
        lead = self.leads[order] @ query_vec if order else np.zeros(0)
        codes = code_tokens(query_text)
        return [
            Signals(
                item=i,
                dense=dense[i],
                lead=float(lead[j]),
                keyword=keyword.get(i, 0.0),
                code=float(bool(codes) and codes <= code_tokens(self.keyword_texts[i])),
            )
            for j, i in enumerate(order)
        ]

    def _keyword(self, query_text: str, k: int) -> dict[int, float]:
        if self._bm25 is None:
            return {}
        tokens = tokenize([query_text])[0]
        if not tokens:
            return {}
        k = min(k, len(self.items))
        docs, scores = self._bm25.retrieve([tokens], k=k, show_progress=False)
        return {int(d): float(s) for d, s in zip(docs[0], scores[0], strict=True) if s > 0}
