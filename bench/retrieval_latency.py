"""Retrieval latency: query embedding with the bundled model, and search at 10k/100k entries.

(a) query embedding: ``Embedder.embed_query`` with the real bundled all-MiniLM-L6-v2 on
    distinct queries (cache misses), p50/p95.
(b) per size N (``--sizes``): a ``knowledge.index.SearchIndex`` over N synthetic FAQ entries
    written from templates with random product names and codes (so BM25 has a real, growing
    vocabulary). Embedding N texts on a small CPU takes too long, so the index vectors (one
    per question variant, two variants per entry) and the lead vectors are random unit
    vectors of the model's dimension put straight into a ``faiss.IndexFlatIP``; the queries
    use real embeddings. Reported: index build time (FAISS add + SearchIndex construction,
    i.e. BM25 tokenising and indexing; no embedding), ``index.signals`` + ``retrieval.rank``
    p50/p95, and the full query (embed + signals + rank) p50/p95.

Random index vectors make dense and keyword candidates disjoint, so each query also pays for
exact similarities of its keyword-only candidates (``SearchIndex.signals``' slow path): the
search figures are on the pessimistic side of a real knowledge base of the same size.
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np
from _common import footer, header, p50_p95

BRANDS = ["Northwind", "Fjellrev", "Alpina", "Trailhead", "Kestrel", "Boreal", "Summit",
          "Ridgeback", "Cascade", "Lynx", "Tundra", "Pinecrest"]
PRODUCTS = ["tent", "sleeping bag", "rain jacket", "hiking boots", "backpack", "camping stove",
            "headlamp", "trekking poles", "sleeping mat", "water filter", "e-bike", "kayak",
            "down vest", "gaiters", "hammock", "cooler box", "tarp", "climbing harness"]
FEATURES = ["waterproof", "machine washable", "repairable", "covered by the warranty",
            "available in size XL", "suitable for winter", "compatible with the old model",
            "sold with spare parts", "allowed on flights", "made from recycled material"]
QUESTIONS = [
    "Is the {brand} {name} {product} ({code}) {feature}?",
    "How long is the warranty on the {brand} {name} {product}?",
    "How do I clean my {name} {product} {code}?",
    "Where can I buy replacement parts for the {brand} {product} {code}?",
    "What is the weight of the {name} {product} in size {size}?",
    "Can I rent the {brand} {name} {product} for a week?",
    "Why is my {product} {code} leaking after a {activity} trip?",
    "When will the {brand} {name} {product} be back in stock?",
]
PARAPHRASES = [
    "{name} {product} {code}: {feature}?",
    "question about the {brand} {product} {code}",
    "does the {name} {product} come {feature}",
]
ANSWERS = [
    "The {brand} {name} {product} ({code}) is {feature}. It weighs {weight} g in size {size} "
    "and comes with a {years}-year warranty. Store it dry after every {activity} trip.",
    "Yes: order spare parts for the {product} {code} from the {brand} service page. Shipping "
    "takes {days} working days; parts for the {name} series cost from {price} euros.",
    "Clean the {name} {product} with lukewarm water and a mild soap, then air-dry it. Do not "
    "tumble-dry it. Article {code} is {feature}.",
    "The {brand} {name} {product} is back in stock in {days} days. Rentals cost {price} euros "
    "a day, or {weekly} euros a week, deposit {deposit} euros.",
]
ACTIVITIES = ["hiking", "camping", "kayaking", "skiing", "cycling", "climbing", "fishing"]
SIZES = ["XS", "S", "M", "L", "XL", "XXL"]
QUERY_TEMPLATES = [
    "is the {name} {product} {feature}",
    "{code} warranty",
    "how do I wash my {brand} {product}?",
    "my {product} {code} leaks after {activity}, can I get it repaired?",
    "can I rent a {product} for a week and how much is the deposit",
    "when is the {name} {product} back in stock",
    "spare parts for {code}",
    "what does the {brand} {name} weigh in size {size}",
]
SYLLABLES = ["ka", "lo", "ri", "ven", "tor", "mi", "sa", "dun", "el", "fa", "gro", "ne", "sko",
             "ta", "vik", "ur", "bel", "cor", "dra", "zen", "pol", "quin", "har", "ost"]


def fill(template: str, rng: random.Random, name: str, code: str, product: str) -> str:
    return template.format(
        brand=rng.choice(BRANDS), name=name, product=product, code=code,
        feature=rng.choice(FEATURES), size=rng.choice(SIZES), activity=rng.choice(ACTIVITIES),
        weight=rng.randint(80, 4800), years=rng.choice([2, 3, 5, 10]),
        days=rng.randint(2, 21), price=rng.randint(5, 400), weekly=rng.randint(40, 900),
        deposit=rng.choice([50, 100, 150, 200, 300]),
    )


def product_name(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


def product_code(rng: random.Random) -> str:
    letters = "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXZ") for _ in range(2))
    return f"{letters}-{rng.randint(1000, 99999)}"


def synthetic_entries(n: int, seed: int) -> list[tuple[str, list[str], str, str, str, str]]:
    """(id, variants, answer, name, code, product) per entry."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        name, code, product = product_name(rng), product_code(rng), rng.choice(PRODUCTS)
        question = fill(rng.choice(QUESTIONS), rng, name, code, product)
        paraphrase = fill(rng.choice(PARAPHRASES), rng, name, code, product)
        answer = fill(rng.choice(ANSWERS), rng, name, code, product)
        out.append((f"p{i:06d}", [question, paraphrase], answer, name, code, product))
    return out


def queries_for(entries: list, count: int, seed: int) -> list[str]:
    """Distinct customer-style queries; most name a product or code from the entries."""
    rng = random.Random(seed)
    seen: dict[str, None] = {}
    while len(seen) < count:
        _id, _variants, _answer, name, code, product = rng.choice(entries)
        if rng.random() < 0.2:  # some name nothing in the catalogue
            name, code = product_name(rng), product_code(rng)
        seen.setdefault(fill(rng.choice(QUERY_TEMPLATES), rng, name, code, product), None)
    return list(seen)


def random_unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    vecs = rng.standard_normal((n, dim), dtype=np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return vecs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10000, 100000],
        help="knowledge-base sizes in entries (default 10000 100000)",
    )
    parser.add_argument("--queries", type=int, default=200, help="queries per measurement")
    parser.add_argument("--k", type=int, default=5, help="hits per query (default 5)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import faiss
    import torch

    torch.set_num_threads(args.threads)
    header("retrieval latency")
    print(f"faiss {faiss.__version__}, omp threads {faiss.omp_get_max_threads()}")

    from knowledge.embeddings import Embedder
    from knowledge.index import Item, SearchIndex, keyword_text
    from knowledge.retrieval import rank

    t0 = time.perf_counter()
    embedder = Embedder("bundled")
    print(f"embedder: {embedder.name} (dim {embedder.dim}) loaded in "
          f"{time.perf_counter() - t0:.1f} s")

    # (a) query embedding ----------------------------------------------------------------
    probe = synthetic_entries(2000, args.seed + 1)
    queries = queries_for(probe, args.queries + 10, args.seed + 2)
    for q in queries[:10]:  # warm-up
        embedder.embed_query(q)
    queries = queries[10:]
    embed_ms = []
    for q in queries:
        t0 = time.perf_counter()
        embedder.embed_query(q)
        embed_ms.append((time.perf_counter() - t0) * 1000)
    print(f"\n(a) query embedding (embed_query, cache misses): {p50_p95(embed_ms)}")

    # (b) search at each size --------------------------------------------------------------
    nprng = np.random.default_rng(args.seed)
    for n in args.sizes:
        print(f"\n(b) SearchIndex with {n:,} synthetic entries", flush=True)
        t0 = time.perf_counter()
        entries = synthetic_entries(n, args.seed + n)
        items = [Item(eid, "faq", vs[0], answer, eid) for eid, vs, answer, *_ in entries]
        variants = [vs for _eid, vs, *_ in entries]
        variant_item = np.array([i for i, vs in enumerate(variants) for _ in vs], dtype=np.int64)
        keyword_texts = [keyword_text(it, vs) for it, vs in zip(items, variants, strict=True)]
        vectors = random_unit(nprng, len(variant_item), embedder.dim)
        leads = random_unit(nprng, n, embedder.dim)
        print(f"    synthetic text + random vectors generated in {time.perf_counter() - t0:.1f} s "
              f"({len(variant_item):,} variant vectors)")
        t0 = time.perf_counter()
        flat = faiss.IndexFlatIP(embedder.dim)
        flat.add(vectors)
        t_faiss = time.perf_counter() - t0
        t0 = time.perf_counter()
        index = SearchIndex(
            version=1, model=embedder.name, items=items, variant_item=variant_item,
            vectors=flat, leads=leads, keyword_texts=keyword_texts,
        )
        t_init = time.perf_counter() - t0
        vocab = len(index._bm25.vocab_dict) if index._bm25 is not None else 0
        print(f"    build (no embedding): {t_faiss + t_init:.1f} s = FAISS add {t_faiss:.2f} s "
              f"+ SearchIndex() (BM25 tokenise/index, vocabulary {vocab:,}) {t_init:.1f} s")
        del vectors

        # Each query: embed (distinct, uncached, as Retriever.search does), then signals +
        # rank; both parts timed in the same iteration so load spikes hit them alike.
        size_queries = queries_for(entries, args.queries + 5, args.seed + n + 7)
        for q in size_queries[:5]:  # warm-up
            v = embedder.embed_query(q)
            rank(index, index.signals(v, q, args.k), args.k)
        embedder._queries.clear()
        embed_part, search_ms, full_ms = [], [], []
        for q in size_queries[5:]:
            t0 = time.perf_counter()
            v = embedder.embed_query(q)
            t1 = time.perf_counter()
            rank(index, index.signals(v, q, args.k), args.k)
            t2 = time.perf_counter()
            embed_part.append((t1 - t0) * 1000)
            search_ms.append((t2 - t1) * 1000)
            full_ms.append((t2 - t0) * 1000)
        print(f"    signals + rank:            {p50_p95(search_ms)}")
        print(f"    full query (embed+search): {p50_p95(full_ms)}")
        print(f"      (embedding part:         {p50_p95(embed_part)})")
        del index, flat, leads, entries, items, variants, keyword_texts
    footer()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
