"""The classifier head each index fits on its KB's phrasings, and how the calibration weighs it:
its figures on held-out folds, saved and reloaded with the index."""

from __future__ import annotations

import numpy as np
import pytest
from test_calibration import entries
from test_retrieval import build_kb

from knowledge.calibration import (
    GLOBAL,
    MAX_FOLDS,
    MAX_HELDOUT,
    MIN_HELDOUT,
    WITH_CLASSIFIER,
    Sample,
    fit,
    folds_for,
    heldout_split,
)
from knowledge.classifier import Classifier, _even_share, margins
from knowledge.index import SearchIndex
from knowledge.records import Entry


def blobs(n_classes: int, per: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, 16))
    x = np.repeat(centres, per, axis=0) + 0.3 * rng.normal(size=(n_classes * per, 16))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), np.repeat(
        np.arange(n_classes), per)


def test_the_head_tells_the_items_apart_and_sums_to_one_over_them():
    x, y = blobs(5, 8)
    head = Classifier.fit(x, y, n_items=6)  # item 5 has no phrasing: probability 0
    probs = head.probabilities(x[9])
    assert probs.shape == (6,) and probs[5] == 0.0
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert int(np.argmax(probs)) == 1
    best, second = margins(probs)
    assert best == pytest.approx(probs.max()) and second < best


def test_two_items_are_told_apart_and_one_is_not_a_classifier():
    x, y = blobs(2, 6)
    head = Classifier.fit(x, y, n_items=2)
    assert head.weights.shape[0] == 2
    assert int(np.argmax(head.probabilities(x[0]))) == 0
    assert int(np.argmax(head.probabilities(x[-1]))) == 1
    assert Classifier.fit(x[:6], y[:6], n_items=1) is None


def test_a_busy_item_keeps_an_even_share_of_the_rows():
    labels = np.array([0] * 10 + [1] * 2 + [2] * 5)
    kept = _even_share(labels, 3)
    assert np.bincount(labels[kept]).tolist() == [3, 2, 3]
    assert np.all(np.diff(kept) > 0)


def test_about_one_subject_a_shared_question_is_that_subjects_alone():
    head = Classifier(np.zeros((4, 2)), np.zeros(4), np.arange(4), 4,
                      copies=np.array([3, 3, 3, 1]))
    # "how much is it?": split among the price entries of three products (0, 1, 2) and one
    # general entry (3).
    probs = np.array([0.25, 0.25, 0.25, 0.25], dtype=np.float32)
    within = head.within(probs, own=np.array([0]), others=np.array([1, 2]))
    assert within.tolist() == pytest.approx([0.75, 0.0, 0.0, 0.25])


def test_the_head_is_saved_and_read_back_with_the_index(data_dir, shared_embedding_model,
                                                          tiny_records):
    kb = build_kb(data_dir, tiny_records)
    index = kb.retriever.index()
    assert index.classifier is not None
    loaded = SearchIndex.load(kb.folder)
    vector = kb.embedder.embed_query("when does my parcel arrive?")
    assert np.allclose(loaded.classifier.probabilities(vector),
                       index.classifier.probabilities(vector), atol=1e-6)
    signals = {index.items[s.item].id: s for s in index.signals(vector, "parcel", 5)}
    assert max(signals, key=lambda i: signals[i].classifier) == "delivery-time"


def test_small_kbs_are_split_several_times_large_ones_once():
    assert folds_for(entries(30)) == MAX_FOLDS
    assert folds_for(entries(MAX_HELDOUT)) == 1
    assert folds_for(entries(10, paraphrases=0)) == 1


def test_each_fold_holds_out_another_phrasing_and_other_entries():
    records = [*entries(20), Entry("s", "Is it light?", "It is.", ("weight?",),
                                   extra={"subject": "Tent"})]
    splits = [heldout_split(records, fold=f) for f in range(3)]
    held = [{q for q, _ in answerable} for _, answerable, _ in splits]
    assert held[0] != held[1] != held[2]
    removed = [{r.id for r in records} - {r.id for r in kept} for kept, _, _ in splits]
    assert removed[0] and removed[0].isdisjoint(removed[1])
    kept_subject = [r for kept, _, _ in splits for r in kept if r.id == "s"]
    assert all(r.subject == "Tent" for r in kept_subject)  # the subject stays with the entry


def test_the_fit_weighs_the_head_by_what_it_gets_right():
    right = [Sample(0.6, True, True, classifier=0.8, margin=0.6) for _ in range(20)]
    wrong = [Sample(0.6, False, True, classifier=0.2, margin=-0.1) for _ in range(10)]
    out = [Sample(0.5, False, False, classifier=0.1, margin=-0.2) for _ in range(20)]
    cal = fit(right + wrong + out, WITH_CLASSIFIER)
    assert cal.fitted and cal.classifier_weight + cal.margin_weight > 0
    # Same raw score: the head's confidence decides.
    assert cal.score(0.6, 0.8, 0.6) > 0.5 > cal.score(0.6, 0.2, -0.1)
    # Without a head only slope and intercept are fitted.
    plain = fit(right + wrong + out, GLOBAL)
    assert plain.classifier_weight == plain.margin_weight == 0.0


def test_a_kb_whose_head_cannot_be_judged_keeps_the_global_calibration(
        data_dir, shared_embedding_model):
    kb = build_kb(data_dir, entries(12, paraphrases=0))
    kb.retriever.index()
    assert kb.retriever.index().classifier is not None
    assert kb.retriever.calibration is GLOBAL  # no held-out phrasings: the head does not count
    hit = kb.retriever.search("question 3?")[0]
    assert hit.score == pytest.approx(GLOBAL.score(hit.raw))


def test_the_head_counts_only_where_it_ranks_held_out_phrasings_better(
        data_dir, shared_embedding_model, tiny_records):
    kb = build_kb(data_dir, tiny_records)
    kb.retriever.index()
    cal = kb.retriever.calibration
    assert cal.fitted and cal.answerable >= MIN_HELDOUT
    # On the tiny shop the fused score alone ranks every held-out phrasing right and the head
    # misses one: the head is left out (the kept figures are the fused score's), and scores
    # are the fused score's alone.
    assert cal.heldout_top1 == cal.baseline_top1 == 1.0
    assert cal.classifier_weight == cal.margin_weight == 0.0
    hit = kb.retriever.search("when does my parcel get here?")[0]
    assert hit.classifier > 0 and hit.score == pytest.approx(cal.score(hit.raw))


def test_generic_messages_the_kb_answers_are_not_unanswerable_for_it(
        data_dir, shared_embedding_model):
    from knowledge.calibration import generic_unanswerable

    translate = Entry("translate", "how do you say thank you in italian",
                      "Ask me for any word and the language you want it in.",
                      ("how do I say hello in spanish", "what is the french word for cat",
                       "translate good morning into german"))
    gifts = Entry("gifts", "Do you gift wrap?", "Yes, for 3 euros an item.",
                  ("can you wrap a present", "gift packaging", "is gift wrapping available"))
    counts = []
    for name, extra in (("plain", gifts), ("covered", translate)):
        (data_dir / name).mkdir(parents=True)
        kb = build_kb(data_dir / name, [*entries(12), extra])
        kb.retriever.index()
        counts.append(kb.retriever.calibration.unanswerable)
    # Same number of entries and held-out cases: the translation KB only drops the generic
    # translation requests, and keeps the rest of the generic messages.
    dropped = counts[0] - counts[1]
    assert 1 <= dropped <= len(generic_unanswerable()) // 10


def test_the_serving_index_fits_its_head_after_the_build_from_the_vectors_it_holds(
        data_dir, shared_embedding_model, tiny_records):
    kb = build_kb(data_dir, tiny_records)
    served = kb.retriever.index()
    assert served.classifier is not None and (kb.folder / "classifier.npz").is_file()
    bare = SearchIndex.build(tiny_records, kb.embedder, version=1, head=False)
    assert bare.classifier is None
    bare.fit_head()
    whole = SearchIndex.build(tiny_records, kb.embedder, version=1)
    vector = kb.embedder.embed_query("can I send it back?")
    assert np.allclose(bare.classifier.probabilities(vector), whole.classifier.probabilities(vector),
                       atol=1e-4)
