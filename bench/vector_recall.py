"""Vectors and recall for ``bench/retrieval_latency.py``: text-shaped vectors that need no
transformer (``StaticVectors``), perturbed queries, the exact top-k by brute force, and an
index's recall@k against it, with ties at the k-th similarity counted as found."""

from __future__ import annotations

import random
import re

import numpy as np


def random_unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    vecs = rng.standard_normal((n, dim), dtype=np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return vecs


WORD = re.compile(r"\w+|[^\w\s]")  # BERT's basic split for ASCII text (words, punctuation)


class StaticVectors:
    """Mean of the embedding model's input token vectors: text-shaped vectors at ~10 µs each."""

    def __init__(self, embedder) -> None:
        model = embedder._model
        self.tokenizer = model.tokenizer
        self.table = model[0].auto_model.get_input_embeddings().weight.detach().float().numpy()

    def __call__(self, texts: list[str]) -> np.ndarray:
        import scipy.sparse as sp

        words: dict[str, int] = {}
        rows = [[words.setdefault(w, len(words)) for w in WORD.findall(t.lower())] for t in texts]
        pieces = self.tokenizer(list(words), add_special_tokens=False)["input_ids"]
        word_vecs = np.asarray(_rows(sp, pieces, self.table.shape[0]) @ self.table, np.float32)
        vecs = np.asarray(_rows(sp, rows, len(words)) @ word_vecs, dtype=np.float32)
        vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-9)
        return vecs


def _rows(sp, rows: list[list[int]], width: int):
    """A sparse count matrix with one row per list of column ids."""
    lengths = np.fromiter(map(len, rows), np.int64, len(rows))
    cols = np.fromiter((c for r in rows for c in r), np.int64, int(lengths.sum()))
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    return sp.csr_matrix((np.ones(len(cols), np.float32), cols, indptr), shape=(len(rows), width))


def perturbed(texts: list[str], count: int, seed: int) -> list[str]:
    """Stored texts with one word dropped, a typo (a letter dropped), or a word added; each
    changes the tokens, so no query equals a stored vector (word order alone would not)."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        words = rng.choice(texts).split()
        op = rng.randrange(3)
        long = [i for i, w in enumerate(words) if len(w) > 3]
        if op == 0 and len(words) > 3:
            del words[rng.randrange(len(words))]
        elif op == 1 and long:
            i = rng.choice(long)
            cut = rng.randrange(len(words[i]))
            words[i] = words[i][:cut] + words[i][cut + 1 :]
        else:
            words.insert(rng.randrange(len(words) + 1), rng.choice(["please", "hi", "urgent"]))
        out.append(" ".join(words))
    return out


def exact_top(queries: np.ndarray, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k inner products (brute force in chunks): (similarities, ids), best first."""
    best_s = np.full((len(queries), k), -np.inf, np.float32)
    best_i = np.zeros((len(queries), k), np.int64)
    for start in range(0, len(vectors), 100_000):
        sims = queries @ vectors[start : start + 100_000].T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        s = np.concatenate([best_s, np.take_along_axis(sims, top, 1)], axis=1)
        i = np.concatenate([best_i, top + start], axis=1)
        keep = np.argsort(-s, axis=1, kind="stable")[:, :k]
        best_s, best_i = np.take_along_axis(s, keep, 1), np.take_along_axis(i, keep, 1)
    return best_s, best_i


def recall_at(index, queries: np.ndarray, exact: tuple[np.ndarray, np.ndarray],
              vectors: np.ndarray, k: int = 10):
    """(recall@k with ties at the k-th similarity counted as found, strict id overlap). A found
    id's similarity is recomputed from the float32 ``vectors``: the index's own score is from
    its float16 copy, ~1e-5 off, which would break exact ties."""
    _, ids = index.search(queries, k)
    sims = np.einsum("qd,qkd->qk", queries, vectors[np.maximum(ids, 0)])
    exact_s, exact_i = exact
    tied = np.minimum(k, (sims >= exact_s[:, -1:] - 1e-5).sum(1)) / k
    strict = [len(set(a) & set(b)) / k for a, b in zip(ids, exact_i, strict=True)]
    return float(np.mean(tied)), float(np.mean(strict))


def index_mb(index) -> float:
    import faiss

    ivf = faiss.try_extract_index_ivf(index)
    # IVF: float16 codes, an id and a direct-map entry per vector
    per = index.d * 4 if ivf is None else index.sa_code_size() + 16
    extra = ivf.nlist * index.d * 4 if ivf is not None else 0
    return (index.ntotal * per + extra) / 2**20
