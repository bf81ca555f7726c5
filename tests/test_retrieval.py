"""Hybrid retrieval on the tiny shop KB: paraphrases, keywords, passages, the persisted index."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from chatbot.db import make_engine, upgrade
from knowledge.embeddings import Embedder
from knowledge.index import SearchIndex
from knowledge.normalize import Speller
from knowledge.records import Entry
from knowledge.retrieval import Retriever
from knowledge.store import KnowledgeStore


@dataclass
class KB:
    store: KnowledgeStore
    embedder: Embedder
    retriever: Retriever
    folder: Path


def build_kb(folder: Path, records) -> KB:
    engine = make_engine(f"sqlite:///{folder / 'chatbot.db'}")
    upgrade(engine)
    store = KnowledgeStore(engine)
    store.save(records, publish=True)
    embedder = Embedder(engine=engine)
    retriever = Retriever(store, embedder, folder / "index")
    return KB(store, embedder, retriever, folder / "index")


@pytest.fixture(scope="module")
def shared_kb(tmp_path_factory, shared_embedding_model, tiny_records) -> KB:
    """Read-only: one indexed tiny KB for the ranking tests of this module."""
    kb = build_kb(tmp_path_factory.mktemp("retrieval"), tiny_records)
    kb.retriever.index()
    return kb


@pytest.fixture
def kb(data_dir, shared_embedding_model, tiny_records) -> KB:
    return build_kb(data_dir, tiny_records)


PARAPHRASES = [
    ("when does my parcel get here?", "delivery-time"),
    ("what's the deadline for sending back a purchase", "returns-window"),
    ("do you take credit cards?", "payment-methods"),
    ("my login isn't working, I need a new password", "reset-password"),
    ("how much time to get my money back after returning", "refund-time"),
    ("what number can I ring?", "contact-phone"),
    ("track package", "order-tracking"),
    ("how should I wash my rain jacket?", "care-guide#1"),
    ("how to store a down sleeping bag", "care-guide#2"),
]


@pytest.mark.parametrize(("query", "expected"), PARAPHRASES)
def test_paraphrase_retrieves_the_right_item_first(shared_kb, query, expected):
    hits = shared_kb.retriever.search(query, k=5)
    assert hits[0].id == expected, [(h.id, round(h.score, 3)) for h in hits]


@pytest.mark.parametrize("query", ["KX-220", "is the KX-220 safe?", "Emberlite", "emberlite stove"])
def test_product_code_or_rare_word_found_by_keyword_side(shared_kb, query):
    """Only the recall entry contains the code; BM25 knows it even where embeddings blur it."""
    hits = shared_kb.retriever.search(query, k=5)
    assert hits[0].id == "stove-recall", [(h.id, round(h.score, 4), h.keyword) for h in hits]
    assert hits[0].keyword > 0
    assert all(h.keyword == 0 for h in hits[1:])


def test_document_passages_have_stem_ids(shared_kb):
    index = shared_kb.retriever.index()
    passages = [item for item in index.items if item.kind == "passage"]
    assert [p.id for p in passages] == ["care-guide#1", "care-guide#2"]
    assert all(p.parent == "care-guide" for p in passages)
    hits = shared_kb.retriever.search("tumble dry my waterproof jacket", k=5)
    top = hits[0]
    assert (top.id, top.kind, top.parent) == ("care-guide#1", "passage", "care-guide")
    assert "Tumble dry" in top.text


@pytest.mark.parametrize(
    "query", ["How long does shipping take?", "refund", "who won the 1998 world cup?", "KX-220"]
)
def test_scores_are_probabilities_sorted_best_first(shared_kb, query):
    hits = shared_kb.retriever.search(query, k=8)
    assert 1 <= len(hits) <= 8
    scores = [h.score for h in hits]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores == sorted(scores, reverse=True)
    assert len({h.id for h in hits}) == len(hits)


def test_exact_question_scores_high_and_unrelated_low(shared_kb):
    assert shared_kb.retriever.search("How do I reset my password?")[0].score >= 0.75
    assert shared_kb.retriever.search("who won the 1998 world cup?")[0].score < 0.3


def test_blank_query_returns_nothing(shared_kb):
    assert shared_kb.retriever.search("   \n ") == []


def test_index_is_persisted_with_version_stamp_and_reused(kb, tiny_records):
    built = kb.retriever.index()
    version = kb.store.current_version()
    assert built.version == version == 1
    assert SearchIndex.stamp(kb.folder) == (version, kb.embedder.name)
    assert (kb.folder / "index.faiss").is_file()
    expected = [(h.id, h.score) for h in kb.retriever.search("can I pay with PayPal")]

    # A new process (new Retriever) loads the saved index instead of embedding anything.
    kb.embedder.last_embedded = -1
    reloaded = Retriever(kb.store, kb.embedder, kb.folder)
    assert reloaded.index().version == version
    assert kb.embedder.last_embedded == -1
    got = [(h.id, h.score) for h in reloaded.search("can I pay with PayPal")]
    assert [i for i, _ in got] == [i for i, _ in expected]
    assert [s for _, s in got] == pytest.approx([s for _, s in expected], abs=1e-5)


def test_new_version_makes_the_index_stale(kb):
    kb.retriever.index()
    kb.store.save(
        [Entry("opening-hours", "When is your shop open?", "Our showroom is open 10:00-18:00.")],
        publish=True,
    )
    index = kb.retriever.index()
    assert index.version == 2
    assert SearchIndex.stamp(kb.folder)[0] == 2
    assert kb.retriever.search("what time does the showroom open?")[0].id == "opening-hours"


def test_rebuild_after_unchanged_republish_embeds_nothing(kb, tiny_records):
    kb.retriever.index()
    assert kb.embedder.last_embedded > 0
    kb.store.save(tiny_records, publish=True)
    assert kb.store.current_version() == 2
    rebuilt = kb.retriever.rebuild()
    assert rebuilt.version == 2
    assert kb.embedder.last_embedded == 0


def test_rebuild_embeds_only_changed_text(kb, tiny_records):
    kb.retriever.index()
    changed = [
        Entry(r.id, r.question, "We accept Visa and PayPal only.", r.paraphrases, r.tags)
        if r.id == "payment-methods" else r
        for r in tiny_records
    ]
    kb.store.save(changed, publish=True)
    kb.retriever.rebuild()
    # Variants are unchanged; only the entry's lead (question + first answer sentence) is new.
    assert kb.embedder.last_embedded == 1


def test_an_edit_changes_the_speller_of_the_previous_version(kb):
    kb.retriever.search("I forgott my pasword")  # builds version 1's speller
    kb.store.save([Entry("lantern", "Do you ship the Zorblax lantern abroad?",
                         "Yes, the Zorblax lantern ships to 30 countries.")], publish=True)
    index = kb.retriever.index()
    assert index.version == 2 and index._speller is not None  # made before the first search
    assert index.speller().vocabulary == Speller.for_texts(index.keyword_texts).vocabulary
    assert kb.retriever.search("do you ship the zorblx lantren abroad")[0].id == "lantern"


def test_a_search_waiting_for_a_build_does_not_wait_for_its_calibration(kb):
    kb.retriever.index()
    kb.store.save([Entry("opening-hours", "When is your shop open?",
                         "Our showroom is open 10:00-18:00.")], publish=True)
    answered: list[str] = []

    def search() -> None:
        answered.append(kb.retriever.search("when does the showroom open")[0].id)

    customers = [threading.Thread(target=search, daemon=True) for _ in range(2)]
    with kb.retriever._calibration_lock:  # the fit of version 2 cannot finish
        with kb.retriever._lock:  # both customers arrive while version 1 is live
            for customer in customers:
                customer.start()
            time.sleep(0.2)
        # One builds version 2 and then waits to fit it; the other waited for the build only.
        deadline = time.monotonic() + 30
        while not answered and time.monotonic() < deadline:
            time.sleep(0.01)
        assert answered == ["opening-hours"], "the search waited for the calibration"
        assert kb.retriever._calibrated_version == 1  # it ranked with version 1's
    for customer in customers:
        customer.join(30)
    assert answered == ["opening-hours"] * 2
    assert kb.retriever._calibrated_version == 2


def test_damaged_index_is_rebuilt(kb):
    kb.retriever.index()
    (kb.folder / "index.faiss").write_bytes(b"not an index")
    fresh = Retriever(kb.store, kb.embedder, kb.folder)
    assert fresh.search("I forgot my password")[0].id == "reset-password"


def test_a_small_knowledge_base_keeps_the_exact_flat_index(shared_kb):
    """The approximate index starts far above this size (tests/test_ann_index.py)."""
    from knowledge.vectors import describe

    assert describe(shared_kb.retriever.index().vectors) == "flat"


def test_typos_retrieve_the_right_entry(shared_kb):
    for typed, expected in [
        ("how do I trakc my oredr", "order-tracking"),
        ("I forgott my pasword", "reset-password"),
        ("WHICH PAYMNET METHODS DO YOU ACCEPT??", "payment-methods"),
        ("hi!! when will i get my refnud 😡", "refund-time"),
    ]:
        assert shared_kb.retriever.search(typed)[0].id == expected, typed


@pytest.mark.parametrize(
    ("query", "context"),
    [("KX-220", None), ("when does my parcel get here?", None), ("and to norway?", "delivery time")],
)
def test_keywords_scored_beside_the_embedding_rank_as_scored_after_it(
    shared_kb, monkeypatch, query, context
):
    """On a large index BM25 scores the query on another thread while it is embedded: the hits
    must be the ones the one-thread path gives."""
    import knowledge.retrieval as retrieval

    serial = shared_kb.retriever.search(query, k=5, context=context)
    index = shared_kb.retriever.index()
    threads: list[str] = []
    scores = index.keyword_scores

    def recorded(*args):
        threads.append(threading.current_thread().name)
        return scores(*args)

    monkeypatch.setattr(index, "keyword_scores", recorded)
    monkeypatch.setattr(retrieval, "OVERLAP_ABOVE", 1)
    shared_kb.embedder._queries.clear()  # the embedding runs again, as on a first query
    assert shared_kb.retriever.search(query, k=5, context=context) == serial
    assert len(threads) == 1 and threads[0].startswith("keyword"), threads
    monkeypatch.setattr(retrieval, "OVERLAP_ABOVE", 10**9)
    threads.clear()
    assert shared_kb.retriever.search(query, k=5, context=context) == serial
    assert threads == [threading.current_thread().name]


def test_a_failed_embedding_fails_the_search_with_keywords_beside_it(shared_kb, monkeypatch):
    import knowledge.retrieval as retrieval

    monkeypatch.setattr(retrieval, "OVERLAP_ABOVE", 1)

    def broken(text):
        raise RuntimeError("embedding model gone")

    monkeypatch.setattr(shared_kb.embedder, "embed_query", broken)
    with pytest.raises(RuntimeError, match="embedding model gone"):
        shared_kb.retriever.search("a question nobody asked before", k=5)
