"""The approximate (IVF) vector index: chosen above a size, saved and loaded, close to exact.

The mechanics run on synthetic clustered vectors with real FAISS and the threshold lowered, so
they take seconds; ``bench/retrieval_latency.py`` measures recall at 100k and 1M entries.
"""

from __future__ import annotations

import json

import faiss
import numpy as np
import pytest

import knowledge.vectors as index_module
from knowledge.index import Item, SearchIndex
from knowledge.records import Entry
from knowledge.vectors import describe, vector_index

DIM = 32


def unit(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def clustered(n: int, seed: int = 0, topics: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around ``topics`` centres (text embeddings cluster by topic), and topics."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((topics, DIM)))
    topic = rng.integers(0, topics, n)
    return unit(centres[topic] + 0.35 * unit(rng.standard_normal((n, DIM)))), topic


def perturbed(vectors: np.ndarray, count: int, seed: int = 1) -> np.ndarray:
    """Queries near stored vectors (cosine ~0.95 to their source), not the stored ones."""
    rng = np.random.default_rng(seed)
    picked = vectors[rng.choice(len(vectors), count, replace=False)]
    return unit(picked + 0.3 * unit(rng.standard_normal((count, DIM))))


@pytest.fixture
def small_threshold(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(index_module, "APPROXIMATE_ABOVE", 1000)
    return 1000


def synthetic_index(vectors: np.ndarray, topic: np.ndarray) -> SearchIndex:
    """Two variant vectors per item, keyword text naming the item and its topic."""
    n_items = len(vectors) // 2
    items = [Item(f"e{i}", "faq", f"question {i}", f"answer {i}", f"e{i}") for i in range(n_items)]
    variant_item = np.repeat(np.arange(n_items, dtype=np.int64), 2)
    leads = unit(np.random.default_rng(7).standard_normal((n_items, DIM)))
    return SearchIndex(
        version=1,
        model="synthetic",
        items=items,
        variant_item=variant_item,
        vectors=vector_index(vectors[: 2 * n_items], DIM),
        leads=leads,
        keyword_texts=[f"item{i} topic{topic[2 * i]} code SKU-{i:04d}" for i in range(n_items)],
    )


def test_small_sets_keep_the_exact_flat_index():
    vectors, _ = clustered(500)
    index = vector_index(vectors, DIM)
    assert isinstance(index, faiss.IndexFlatIP) and describe(index) == "flat"
    exact = faiss.IndexFlatIP(DIM)
    exact.add(vectors)
    queries = perturbed(vectors, 50)
    got, want = index.search(queries, 10), exact.search(queries, 10)
    assert np.array_equal(got[1], want[1]) and np.array_equal(got[0], want[0])


def test_above_the_threshold_an_ivf_index_is_chosen(small_threshold):
    vectors, _ = clustered(4000)
    index = vector_index(vectors, DIM)
    ivf = faiss.try_extract_index_ivf(index)
    assert ivf is not None and index.ntotal == 4000
    lists = index_module.ivf_lists(4000)
    assert (ivf.nlist, ivf.nprobe) == (lists, index_module.ivf_probes(lists))
    assert 1 < ivf.nprobe < ivf.nlist  # it scans a part, not everything
    assert describe(index) == f"ivf{lists},nprobe={ivf.nprobe}"
    # The direct map: any stored vector can be read back, to float16's precision.
    assert np.allclose(index.reconstruct(1234), vectors[1234], rtol=0, atol=2**-11)
    assert not np.array_equal(index.reconstruct(1234), vectors[1234])  # float16 lists
    # At the threshold itself the index is still exact.
    assert describe(vector_index(vectors[:small_threshold], DIM)) == "flat"


def test_ivf_top10_agrees_with_the_exact_index(small_threshold):
    vectors, _ = clustered(5000)
    ivf = vector_index(vectors, DIM)
    exact = faiss.IndexFlatIP(DIM)
    exact.add(vectors)
    queries = perturbed(vectors, 300)
    _, want = exact.search(queries, 10)
    _, got = ivf.search(queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, want, strict=True)])
    assert recall >= 0.99


def test_search_index_with_ivf_saves_loads_and_searches_alike(small_threshold, tmp_path):
    vectors, topic = clustered(4000)
    index = synthetic_index(vectors, topic)
    assert describe(index.vectors).startswith("ivf")
    query = perturbed(vectors, 1, seed=3)[0]
    before = index.signals(query, "SKU-0042 lamp", k=5)

    index.save(tmp_path / "index")
    assert SearchIndex.stamp(tmp_path / "index") == (1, "synthetic")
    loaded = SearchIndex.load(tmp_path / "index")
    assert describe(loaded.vectors) == describe(index.vectors)
    after = loaded.signals(query, "SKU-0042 lamp", k=5)
    assert after == before
    # The keyword side found item 42 by its code; its dense score is the exact best variant,
    # read back through the IVF index's direct map.
    hit = next(s for s in after if s.item == 42)
    assert hit.keyword > 0 and hit.code == 1.0
    assert hit.dense == pytest.approx(float(np.max(vectors[84:86] @ query)), abs=5e-4)


def test_keyword_only_candidates_get_their_best_variant_similarity(small_threshold, monkeypatch):
    vectors, topic = clustered(3000)
    for threshold in (small_threshold, 10**9):  # IVF, then flat
        monkeypatch.setattr(index_module, "APPROXIMATE_ABOVE", threshold)
        index = synthetic_index(vectors, topic)
        query = perturbed(vectors, 1, seed=5)[0]
        for s in index.signals(query, "item17 item999 item1234", k=5):
            best = float(np.max(vectors[2 * s.item : 2 * s.item + 2] @ query))
            # The flat index stores float32, the IVF lists float16: with these 32-dimensional
            # vectors (components ~0.2) that moves a similarity by up to ~2e-4.
            tolerance = 1e-6 if describe(index.vectors) == "flat" else 5e-4
            assert s.dense == pytest.approx(best, abs=tolerance), describe(index.vectors)


def test_an_index_saved_in_the_old_format_is_stale(tmp_path):
    vectors, topic = clustered(200)
    synthetic_index(vectors, topic).save(tmp_path / "index")
    meta_path = tmp_path / "index" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["format"] = 1
    meta_path.write_text(json.dumps(meta))
    assert SearchIndex.stamp(tmp_path / "index") is None


def test_retriever_on_ivf_rebuilds_after_one_edit(
    data_dir, shared_embedding_model, tiny_records, monkeypatch
):
    """The real store, embedder and retriever with an IVF index: build, reload, edit, rebuild."""
    from test_retrieval import build_kb

    monkeypatch.setattr(index_module, "APPROXIMATE_ABOVE", 10)
    monkeypatch.setattr(index_module, "ivf_probes", lambda lists: lists)  # tiny: scan all
    data_dir.mkdir(parents=True, exist_ok=True)
    kb = build_kb(data_dir, tiny_records)
    built = kb.retriever.index()
    assert describe(built.vectors).startswith("ivf")
    assert kb.retriever.search("I forgot my password")[0].id == "reset-password"

    reloaded = type(kb.retriever)(kb.store, kb.embedder, kb.folder).index()
    assert describe(reloaded.vectors) == describe(built.vectors)

    kb.store.save(
        [Entry("opening-hours", "When is your shop open?", "Our showroom is open 10:00-18:00.")],
        publish=True,
    )
    kb.embedder.last_embedded = -1
    rebuilt = kb.retriever.index()
    assert rebuilt.version == 2 and describe(rebuilt.vectors).startswith("ivf")
    assert kb.embedder.last_embedded == 2  # the new question and its lead, nothing else
    assert SearchIndex.stamp(kb.folder) == (2, kb.embedder.name)
    assert kb.retriever.search("what time does the showroom open?")[0].id == "opening-hours"
    assert kb.retriever.search("I forgot my password")[0].id == "reset-password"


def test_an_ivf_index_like_the_last_one_keeps_its_lists(small_threshold):
    vectors, _ = clustered(4000)
    first = vector_index(vectors, DIM)
    edited = vectors.copy()
    edited[:10] = perturbed(vectors, 10, seed=9)  # a few vectors changed
    second = vector_index(edited, DIM, like=first)
    old, new = faiss.try_extract_index_ivf(first), faiss.try_extract_index_ivf(second)
    assert new is not None and new.nlist == old.nlist and new.ntotal == 4000
    assert np.array_equal(
        new.quantizer.reconstruct_n(0, new.nlist), old.quantizer.reconstruct_n(0, old.nlist)
    )
    assert np.allclose(second.reconstruct(3), edited[3], rtol=0, atol=2**-11)  # float16 lists


def same_vectors(a: np.ndarray, b: np.ndarray, embedder) -> None:
    if embedder.dtype == "float32":
        assert np.allclose(a, b, atol=1e-5)
    else:  # bfloat16 rounds a text's vector a little differently in each batch (its padding)
        assert (a * b).sum(axis=1).min() > 0.999


def test_build_after_an_edit_embeds_only_the_edited_item(embedder, tiny_records):
    """Unchanged items take their vectors from the previous index; the result equals a full
    build (the index is derived data)."""
    first = SearchIndex.build(tiny_records, embedder, version=1)
    changed = [
        Entry(r.id, r.question, "We accept Visa and PayPal only.", r.paraphrases, r.tags)
        if r.id == "payment-methods" else r
        for r in tiny_records
    ] + [Entry("opening-hours", "When is your shop open?", "Our showroom opens at 10:00.")]
    edited = next(r for r in changed if r.id == "payment-methods")

    again = SearchIndex.build(changed, embedder, version=2, previous=first)
    # No database cache here: every text handed to the embedder counts as embedded.
    assert embedder.last_embedded == len(edited.variants()) + 1 + 2
    full = SearchIndex.build(changed, embedder, version=2)
    assert [i.id for i in again.items] == [i.id for i in full.items]
    assert np.array_equal(again.variant_item, full.variant_item)
    n = full.vectors.ntotal
    same_vectors(again.vectors.reconstruct_n(0, n), full.vectors.reconstruct_n(0, n), embedder)
    same_vectors(again.leads, full.leads, embedder)
    assert again.keys == full.keys
    assert again._tokens == full._tokens  # BM25 tokens: kept ones plus the edited item's
    for query in ("visa paypal", "when is the shop open", "KX-220"):
        assert again.keyword_scores(query, 10) == full.keyword_scores(query, 10)
