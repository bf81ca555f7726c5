"""Retrieval latency and recall: query embedding, then search at 10k/100k/1M entries.

(a) query embedding: ``Embedder.embed_query`` with the real bundled all-MiniLM-L6-v2 on
    distinct queries (cache misses), p50/p95.
(b) per size N (``--sizes``): a ``knowledge.index.SearchIndex`` over N synthetic FAQ entries
    (two question variants each) written from templates with random product names and codes,
    so BM25 has a real, growing vocabulary. Embedding 2N texts with the transformer takes
    ~20 ms each on a small CPU, so the variant vectors are *static* embeddings: the mean of
    the bundled model's own input token vectors over each text's WordPiece tokens (computed
    for 2M texts in under a minute). They keep the structure that real text gives (entries
    that share words lie close), which is what an approximate index depends on; random unit
    vectors have none, and no approximate index gets near the exact one on them. Lead vectors
    are random (only ~40 are read per query). The index is ``knowledge.vectors.vector_index``:
    exact up to ``APPROXIMATE_ABOVE`` vectors, IVF above. Reported: the index type, build time
    (vector index, then BM25), memory, recall@10 of the vector index against an exact scan
    for (i) >= 200 perturbed stored variants (a word dropped, a typo, or a filler word added)
    and (ii) customer-style queries (``queries_for``); ties at the 10th similarity count
    as found, and the strict set overlap is printed beside it. Latency per customer-style
    query: the real model embeds the text (timed), then ``signals`` + ``rank`` run on the
    static vector of the same text (timed), in one iteration; full = the sum. From
    ``knowledge.retrieval.OVERLAP_ABOVE`` entries on, BM25 scores the text on another thread
    while the model embeds it, as ``Retriever.search`` does, and the one-thread order is
    timed on the same queries for comparison.
(c) KB edit (``--edit-size``, default 10000 entries): the real ``KnowledgeStore`` and
    ``Retriever`` on SQLite with the embedding cache filled with static vectors, so the
    rebuild embeds only what changed, as in production after the first build. Reported: the
    rebuild from the cache, and the time from publishing one edited entry to the first search
    that returns it, with the server's warm-up thread building the index (its calibration is
    fitted afterwards, and reported too). A cold build embeds every text; its time is
    estimated as the transformer's measured throughput times the text count plus the
    rebuild, and ``--cold-build`` runs it for real, as a first import does: into an empty
    embedding cache, with the calibration timed after the index is built.

It prints figures and never asserts them. ``--sizes 10000 100000`` (the default) takes a few
minutes on 2 cores; 1000000 adds about ten (text generation, BM25 and IVF training).
"""

from __future__ import annotations

import argparse
import gc
import shutil
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
from _common import footer, header, load_line, p50_p95
from synthetic_catalogue import queries_for, synthetic_entries
from vector_recall import StaticVectors, exact_top, index_mb, perturbed, random_unit, recall_at


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def measure_size(n: int, args, embedder, static: StaticVectors) -> None:
    import faiss

    from knowledge.index import Item, SearchIndex, keyword_text
    from knowledge.vectors import describe, vector_index

    threads = faiss.omp_get_max_threads()
    from knowledge.retrieval import OVERLAP_ABOVE, embed_with_keywords, rank

    print(f"\n(b) SearchIndex with {n:,} synthetic entries", flush=True)
    t0 = time.perf_counter()
    entries = synthetic_entries(n, args.seed + n)
    items = [Item(eid, "faq", vs[0], answer, eid) for eid, vs, answer, *_ in entries]
    variants = [vs for _eid, vs, *_ in entries]
    variant_item = np.array([i for i, vs in enumerate(variants) for _ in vs], dtype=np.int64)
    keyword_texts = [keyword_text(it, vs) for it, vs in zip(items, variants, strict=True)]
    flat_texts = [v for vs in variants for v in vs]
    t1 = time.perf_counter()
    vectors = static(flat_texts)
    leads = random_unit(np.random.default_rng(args.seed + n), n, embedder.dim)
    print(f"    text generated in {t1 - t0:.1f} s; {len(vectors):,} static variant vectors "
          f"(mean input-token vectors, not the transformer) in {time.perf_counter() - t1:.1f} s; "
          "lead vectors random")

    customer = queries_for(entries, args.queries + 5, args.seed + n + 7)
    changed = perturbed(flat_texts, args.queries, args.seed + n + 9)
    q_changed, q_customer = static(changed), static(customer[5:])
    exact = {"perturbed stored variants": (q_changed, exact_top(q_changed, vectors, 10)),
             "customer-style queries": (q_customer, exact_top(q_customer, vectors, 10))}
    exact_ms = []
    faiss.omp_set_num_threads(1)  # as SearchIndex.signals searches (knowledge.vectors.search_one)
    for q in q_customer[:30]:
        t0 = time.perf_counter()
        faiss.knn(q[None, :], vectors, 64, metric=faiss.METRIC_INNER_PRODUCT)
        exact_ms.append((time.perf_counter() - t0) * 1000)
    faiss.omp_set_num_threads(threads)

    rss0 = rss_mb()
    t0 = time.perf_counter()
    vector_side = vector_index(vectors, embedder.dim)
    t_vec = time.perf_counter() - t0
    recalls = {name: (len(queries), *recall_at(vector_side, queries, truth, vectors))
               for name, (queries, truth) in exact.items()}
    del vectors, flat_texts
    gc.collect()
    t0 = time.perf_counter()
    index = SearchIndex(
        version=1, model=embedder.name, items=items, variant_item=variant_item,
        vectors=vector_side, leads=leads, keyword_texts=keyword_texts,
    )
    t_init = time.perf_counter() - t0
    kind = describe(vector_side)
    print(f"    vector index: {kind} over {vector_side.ntotal:,} vectors")
    print(f"    build (no embedding): {t_vec + t_init:.1f} s = vector index {t_vec:.1f} s "
          f"+ SearchIndex() (BM25 tokenise/index) {t_init:.1f} s")
    print(f"    memory: vector index ~{index_mb(vector_side):,.0f} MB, leads "
          f"{leads.nbytes / 2**20:,.0f} MB; process RSS {rss_mb():,.0f} MB "
          f"(+{rss_mb() - rss0:,.0f} MB for the index and BM25)")
    for name, (count, tied, strict) in recalls.items():
        print(f"    recall@10 vs exact, {count} {name}: {tied:.4f} (strict overlap "
              f"{strict:.4f})" + ("  [exact index]" if kind == "flat" else ""))
    print(f"    exact scan for comparison (one thread, depth 64): {p50_p95(exact_ms)}")

    for q, v in zip(customer[:5], static(customer[:5]), strict=True):  # warm-up
        embedder.embed_query(q)
        rank(index, index.signals(v, q, args.k), args.k)
    embedder._queries.clear()
    overlap = len(index.items) >= OVERLAP_ABOVE
    embed_part, search_ms, full_ms = [], [], []
    for q, v in zip(customer[5:], q_customer, strict=True):
        # As Retriever.search: on a large index BM25 scores the text while the model embeds it.
        t0 = time.perf_counter()
        _, keyword = embed_with_keywords(index, q, args.k, partial(embedder.embed_query, q))
        t1 = time.perf_counter()
        rank(index, index.signals(v, q, args.k, keyword), args.k)
        t2 = time.perf_counter()
        embed_part.append((t1 - t0) * 1000)
        search_ms.append((t2 - t1) * 1000)
        full_ms.append((t2 - t0) * 1000)
    print(f"    signals + rank:            {p50_p95(search_ms)}"
          + ("  (BM25 already scored)" if overlap else ""))
    print(f"    full query (embed+search): {p50_p95(full_ms)}")
    print(f"      (embedding part:         {p50_p95(embed_part)})"
          + ("  with BM25 scored meanwhile on another thread" if overlap else ""))
    if overlap:  # the same queries one after the other, for the comparison
        embedder._queries.clear()
        serial = []
        for q, v in zip(customer[5:], q_customer, strict=True):
            t0 = time.perf_counter()
            embedder.embed_query(q)
            rank(index, index.signals(v, q, args.k), args.k)
            serial.append((time.perf_counter() - t0) * 1000)
        print(f"    full query, BM25 after the embedding: {p50_p95(serial)}")
    print(f"    load now: {load_line()}", flush=True)


INVENTED = ["Zorblax", "Quillmoor", "Vantreck", "Plumbrisk", "Grentoll"]  # words the KB lacks


def measure_edit(n: int, args, embedder, static: StaticVectors) -> None:
    from chatbot.db import make_engine, upgrade
    from knowledge.embeddings import Embedder, text_hash
    from knowledge.index import items_from_records
    from knowledge.models import EmbeddingRow
    from knowledge.records import Entry
    from knowledge.retrieval import Retriever
    from knowledge.store import KnowledgeStore

    print(f"\n(c) KB edit with {n:,} entries (SQLite store, embedding cache)", flush=True)
    folder = Path(tempfile.mkdtemp(prefix="retrieval-bench-"))
    engine = make_engine(f"sqlite:///{folder / 'chatbot.db'}")
    upgrade(engine)
    store = KnowledgeStore(engine)
    records = [Entry(eid, vs[0], answer, tuple(vs[1:]))
               for eid, vs, answer, *_ in synthetic_entries(n, args.seed + 3)]
    t0 = time.perf_counter()
    store.save(records, publish=True)
    print(f"    {n:,} entries saved and published in {time.perf_counter() - t0:.1f} s")
    cached = Embedder(engine=engine)
    cached._model = embedder._model  # one loaded model
    _items, variants, leads = items_from_records(records)
    texts = list(dict.fromkeys([v for vs in variants for v in vs] + leads))
    with cached._sessions.begin() as session:
        session.add_all(
            EmbeddingRow(model=cached.name, content_hash=text_hash(t), vector=v.tobytes())
            for t, v in zip(texts, static(texts), strict=True)
        )
    retriever = Retriever(store, cached, folder / "index")
    t0 = time.perf_counter()
    retriever.rebuild()
    warm = time.perf_counter() - t0
    print(f"    rebuild with every text in the embedding cache: {warm:.2f} s "
          f"({len(texts):,} texts)")

    sample = texts[:512]
    t0 = time.perf_counter()
    embedder.embed_documents(sample)
    rate = len(sample) / (time.perf_counter() - t0)
    print(f"    transformer throughput: {rate:.0f} texts/s -> cold build estimate "
          f"{len(texts) / rate + warm:.0f} s (embedding {len(texts) / rate:.0f} s)")
    if args.cold_build:
        # A first import: every text embedded and written to an empty embedding cache, the
        # index saved; then its calibration, which the server fits once the index answers.
        cold_engine = make_engine(f"sqlite:///{folder / 'cold.db'}")
        upgrade(cold_engine)
        cold = Embedder(engine=cold_engine)
        cold._model = embedder._model
        retriever_cold = Retriever(store, cold, folder / "index-cold", calibrate=False)
        t0 = time.perf_counter()
        built = retriever_cold.rebuild(show_progress=True)
        t1 = time.perf_counter()
        retriever_cold.fit_calibration(built)
        t2 = time.perf_counter()
        print(f"    cold build, measured: index built and saved in {t1 - t0:.1f} s "
              f"({cold.last_embedded:,} texts embedded and cached); its calibration "
              f"{t2 - t1:.1f} s more ({t2 - t0:.1f} s in all)")

    # As in the server: the publish starts the index warm-up (chatbot.staff.kb_live), and
    # customers are answered from the new version as soon as its index is swapped in; its
    # calibration is fitted after that, in the same background thread.
    from chatbot.staff.kb_live import IndexWarmer

    retriever.search("warm-up: build the speller", k=3)
    warmer = IndexWarmer(retriever)
    for round_ in range(args.edits):
        name = INVENTED[round_ % len(INVENTED)]
        edited = Entry(f"edit-{round_}", f"Do you ship the {name} lantern to Iceland?",
                       f"Yes: the {name} lantern ships to Iceland within five days.")
        t0 = time.perf_counter()
        _summary, version = store.save([edited], publish=True)
        warmer.start()
        t1 = time.perf_counter()
        while retriever.version != version:
            time.sleep(0.002)
        t2 = time.perf_counter()
        hits = retriever.search(f"{name.lower()} lantern shipping to iceland", k=3)
        t3 = time.perf_counter()
        found = bool(hits) and hits[0].id == edited.id
        while warmer.running:  # the calibration fit, after the swap
            time.sleep(0.01)
        t4 = time.perf_counter()
        print(f"    edit {round_ + 1}: publish {(t1 - t0) * 1000:.0f} ms, index swapped in "
              f"{(t2 - t1) * 1000:.0f} ms later, first search {(t3 - t2) * 1000:.0f} ms -> "
              f"searchable after {(t3 - t0):.2f} s (top hit is the edit: {found}); "
              f"calibrated after {(t4 - t0):.2f} s")
    engine.dispose()
    shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=int, nargs="*", default=[10000, 100000],
        help="knowledge-base sizes in entries (default 10000 100000; 1000000 adds ~10 min)",
    )
    parser.add_argument("--queries", type=int, default=200, help="queries per measurement")
    parser.add_argument("--k", type=int, default=5, help="hits per query (default 5)")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads of the compute thread (index batches)")
    parser.add_argument("--edit-size", type=int, default=10000,
                        help="entries for the KB-edit measurement (0: skip it)")
    parser.add_argument("--edits", type=int, default=3, help="single-entry edits to time")
    parser.add_argument("--cold-build", action="store_true",
                        help="also build the --edit-size index embedding every text (slow)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import faiss
    import torch

    from knowledge import compute

    # As in the server: batches embed on the compute thread with --threads, and this thread,
    # which embeds the queries, stays on one core from the start (chatbot.services).
    torch.set_num_threads(args.threads)  # what the header reports
    header("retrieval latency")
    compute.configure(args.threads)
    compute.single_threaded()
    print(f"faiss {faiss.__version__}, omp threads {faiss.omp_get_max_threads()}")

    from knowledge.embeddings import Embedder
    from knowledge.vectors import APPROXIMATE_ABOVE

    t0 = time.perf_counter()
    embedder = Embedder("bundled")
    print(f"embedder: {embedder.name} (dim {embedder.dim}) loaded in "
          f"{time.perf_counter() - t0:.1f} s; approximate index above {APPROXIMATE_ABOVE:,} "
          "vectors")
    static = StaticVectors(embedder)

    # (a) query embedding ----------------------------------------------------------------
    probe = synthetic_entries(2000, args.seed + 1)
    queries = queries_for(probe, args.queries + 10, args.seed + 2)
    for q in queries[:10]:  # warm-up
        embedder.embed_query(q)
    embed_ms = []
    for q in queries[10:]:
        t0 = time.perf_counter()
        embedder.embed_query(q)
        embed_ms.append((time.perf_counter() - t0) * 1000)
    print(f"\n(a) query embedding (embed_query, cache misses): {p50_p95(embed_ms)}")

    for n in args.sizes:
        measure_size(n, args, embedder, static)
        gc.collect()
    if args.edit_size:
        measure_edit(args.edit_size, args, embedder, static)
    footer()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
