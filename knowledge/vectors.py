"""The dense vector index: an exact scan for small knowledge bases, IVF above a size.

An exact inner-product scan (``IndexFlatIP``) up to ``APPROXIMATE_ABOVE`` vectors and an
inverted-file index (k-means lists, ``nprobe`` of them scanned per query) above it, where a scan
of every vector costs tens of milliseconds; ``bench/retrieval_latency.py`` measures its
recall@10 against the exact scan. The inverted lists hold the vectors in float16
(``IndexIVFScalarQuantizer``, ``QT_fp16``): a probe reads half the bytes, so a query at 2M
vectors scans in 6.6 ms instead of 9.4, the index takes half the memory, and a similarity moves
by about 1e-5 (a component's rounding is at most 2^-11 of it).
"""

from __future__ import annotations

import math

import faiss
import numpy as np

# Vectors (one per question, paraphrase and passage) up to which the dense side is an exact scan:
# 50k x 384 floats take a few milliseconds, and small knowledge bases keep exact results. Above
# it an IVF index scans 2/sqrt(lists) of the vectors: at 200k vectors 6%, 2.5 ms instead of 50
# (bench/retrieval_latency.py, which also measures its recall@10 against the exact scan).
APPROXIMATE_ABOVE = 50_000
IVF_TRAIN_PER_LIST = 40  # k-means sample per list (FAISS asks for at least 39)
IVF_MAX_LISTS = 4096  # k-means over more lists takes minutes on a small CPU


def ivf_lists(n: int) -> int:
    """Inverted lists for ``n`` vectors: the power of two nearest 3*sqrt(n) (1024 at 200k)."""
    return int(min(IVF_MAX_LISTS, 2 ** round(math.log2(max(3.0 * math.sqrt(n), 16.0)))))


def ivf_probes(lists: int) -> int:
    """Lists scanned per query, 2*sqrt(lists): 64 of 1024, 128 of 4096.

    With these, recall@10 against the exact scan stayed >= 0.99 on customer-style queries at
    200k and 2M vectors (bench/retrieval_latency.py); fewer lists per probe lost recall first.
    """
    return min(lists, max(8, round(2.0 * math.sqrt(lists))))


def vector_index(
    vectors: np.ndarray, dim: int, *, like: faiss.Index | None = None, seed: int = 0
) -> faiss.Index:
    """An exact inner-product index, or an IVF one above ``APPROXIMATE_ABOVE`` vectors.

    The IVF index keeps a direct map, so ``reconstruct`` works as on the flat index. With
    ``like`` (the index this one replaces, holding mostly the same vectors), an IVF index with
    the same number of lists takes its centroids instead of running k-means again.
    """
    n = len(vectors)
    if n <= APPROXIMATE_ABOVE:
        flat = faiss.IndexFlatIP(dim)
        if n:
            flat.add(vectors)
        return flat
    lists = min(ivf_lists(n), n)
    quantizer = faiss.IndexFlatIP(dim)
    ivf = faiss.IndexIVFScalarQuantizer(
        quantizer, dim, lists, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
    )
    ivf.by_residual = False  # the vector itself in float16, not its offset from the centroid
    ivf.cp.spherical = True  # centroids on the unit sphere, like the vectors
    ivf.cp.niter = 10
    ivf.cp.seed = seed
    old = faiss.try_extract_index_ivf(like) if like is not None else None
    if old is not None and old.nlist == lists and old.d == dim:
        quantizer.add(old.quantizer.reconstruct_n(0, lists))
        ivf.is_trained = True  # float16 codes have nothing to train beside the centroids
    else:
        rng = np.random.default_rng(seed)
        sample = rng.choice(n, min(n, IVF_TRAIN_PER_LIST * lists), replace=False)
        ivf.train(vectors[np.sort(sample)])
    ivf.add(vectors)
    ivf.make_direct_map()
    ivf.nprobe = ivf_probes(lists)
    return ivf


def describe(index: faiss.Index) -> str:
    """"flat" or "ivf<lists>,nprobe=<n>", for logs and benchmarks."""
    ivf = faiss.try_extract_index_ivf(index)
    return "flat" if ivf is None else f"ivf{ivf.nlist},nprobe={ivf.nprobe}"


def search_one(index: faiss.Index, query_vec: np.ndarray, depth: int) -> tuple[np.ndarray, ...]:
    """Search one query on one OpenMP thread (this thread's setting only, restored after).

    Splitting one query's scan over both cores of a small, busy machine made it 3-5x slower
    (20k vectors: 4 ms on one thread, 13-24 ms on two), and an IVF probe is sequential anyway.
    """
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        return index.search(query_vec.reshape(1, -1).astype(np.float32), depth)
    finally:
        faiss.omp_set_num_threads(threads)
