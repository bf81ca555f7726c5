"""Per-KB calibration: the held-out split, the fit, the operating point, and the retriever
fitting, saving and reusing each published version's calibration."""

from __future__ import annotations

import json
import math

import pytest
from test_retrieval import build_kb

from knowledge.calibration import (
    GLOBAL,
    MAX_HELDOUT,
    MAX_REMOVED,
    MIN_HELDOUT,
    REMOVED_EVERY,
    Calibration,
    Sample,
    fit,
    generic_unanswerable,
    heldout_split,
    operating_point,
    threshold_for_precision,
)
from knowledge.records import Document, Entry


def entries(n: int, paraphrases: int = 3) -> list[Entry]:
    return [
        Entry(f"e{i}", f"question {i}?", f"answer {i}.",
              tuple(f"paraphrase {j} of {i}" for j in range(paraphrases)))
        for i in range(n)
    ]


def test_heldout_split_leaves_out_one_phrasing_or_a_whole_entry():
    records = [*entries(20), Document("guide", "Guide", "# A\ntext")]
    kept, answerable, unanswerable = heldout_split(records)
    by_id = {r.id: r for r in kept}
    removed = {r.id for r in records if isinstance(r, Entry)} - set(by_id)
    assert len(removed) == 20 // REMOVED_EVERY
    assert "guide" in by_id  # documents stay
    assert len(unanswerable) == 2 * len(removed)  # two phrasings of each removed entry
    assert len(answerable) == 20 - len(removed)
    for phrasing, entry_id in answerable:
        assert entry_id not in removed
        assert phrasing not in by_id[entry_id].variants()  # really held out
        assert len(by_id[entry_id].variants()) == 3
    assert heldout_split(records) == (kept, answerable, unanswerable)  # deterministic


def test_a_large_kb_gives_a_bounded_number_of_cases():
    n = REMOVED_EVERY * MAX_REMOVED * 2
    kept, answerable, unanswerable = heldout_split(entries(n))
    assert len(unanswerable) == 2 * MAX_REMOVED  # not one entry in five of all of them
    assert len(answerable) == MAX_HELDOUT
    assert len(kept) == n - MAX_REMOVED


def test_a_kb_without_paraphrases_has_no_answerable_cases():
    _, answerable, unanswerable = heldout_split(entries(10, paraphrases=0))
    assert answerable == [] and len(unanswerable) == 10 // REMOVED_EVERY


def test_the_generic_unanswerable_messages_ship_with_the_package():
    messages = generic_unanswerable()
    assert len(messages) >= 80 and not any(m.startswith("#") for m in messages)


def samples(right: list[float], wrong: list[float], unanswerable: list[float]) -> list[Sample]:
    return ([Sample(r, True, True) for r in right] + [Sample(r, False, True) for r in wrong]
            + [Sample(r, False, False) for r in unanswerable])


def test_fit_separates_right_from_unanswerable_and_stays_a_probability():
    cal = fit(samples([1.2, 1.1, 1.3, 1.0, 1.15, 1.25, 1.05, 1.2, 1.1], [0.7], [0.3, 0.4, 0.5, 0.6]))
    assert cal.fitted and cal.answerable == 10 and cal.unanswerable == 4
    assert cal.slope > 0
    assert cal.score(1.2) > 0.5 > cal.score(0.4)
    assert all(0.0 <= cal.score(x) <= 1.0 for x in (-50, 0, 1, 50))
    assert cal.heldout_top1 == pytest.approx(0.9)


def test_too_few_answerable_cases_keep_the_global_constants():
    few = samples([1.0] * (MIN_HELDOUT - 1), [], [0.2] * 20)
    assert fit(few) is GLOBAL
    assert fit(samples([1.0] * 20, [], [])) is GLOBAL  # nothing unanswerable


def test_the_prior_holds_a_small_kb_near_the_global_constants():
    small = fit(samples([0.6] * 8, [], [0.55] * 8))
    large = fit(samples([0.6] * 400, [], [0.55] * 400))
    distance = lambda c: math.hypot(c.slope - GLOBAL.slope, c.intercept - GLOBAL.intercept)  # noqa: E731
    assert distance(small) < distance(large)


def test_operating_point_by_hand():
    # Identity-like calibration: score(raw) = sigmoid(10 * raw - 5), so raw 0.5 -> 0.5.
    cal = Calibration(10.0, -5.0, True, 4, 4, 0.75,
                      tuple(samples([0.9, 0.8, 0.7], [0.6], [0.55, 0.4, 0.3, 0.2])))
    point = operating_point(cal, answer=0.5, clarify=0.3)
    # Answered: all 4 answerable (3 right, 1 wrong) and 1 of 4 unanswerable. Weighted by share
    # (0.75 answerable, 0.25 unanswerable): right 0.75*3/4, wrong 0.75*1/4 + 0.25*1/4.
    assert point["answer_rate"] == 1.0
    assert point["oos_recall"] == 0.75
    assert point["answer_precision"] == pytest.approx(0.5625 / (0.5625 + 0.25), abs=1e-4)
    # Raising the bar above raw 0.6 answers only the three right ones.
    assert operating_point(cal, answer=cal.score(0.65), clarify=0.3)["answer_precision"] == 1.0


def test_threshold_for_precision_is_the_lowest_that_reaches_the_target():
    cal = Calibration(10.0, -5.0, True, 4, 4, 0.75,
                      tuple(samples([0.9, 0.8, 0.7], [0.6], [0.55, 0.4, 0.3, 0.2])))
    assert threshold_for_precision(cal, 0.5, floor=0.3) == 0.3
    high = threshold_for_precision(cal, 0.99, floor=0.3)
    assert cal.score(0.6) < high <= cal.score(0.7)  # only the right answers remain
    assert threshold_for_precision(cal, 1.01, floor=0.3, ceiling=0.6) == 0.6  # unreachable
    assert threshold_for_precision(GLOBAL, 0.99, floor=0.3) == 0.3  # nothing fitted


def test_calibration_round_trips_through_json():
    cal = fit(samples([1.0] * 10, [0.8], [0.3] * 5))
    again = Calibration.from_json(cal.to_json())
    assert again == cal and again.samples == cal.samples


@pytest.fixture
def many(data_dir, shared_embedding_model):
    """A KB of shop questions with paraphrases: enough answerable cases to fit."""
    topics = [
        ("delivery", "How long does delivery take?", ["when will my parcel arrive", "shipping time?"]),
        ("returns", "How do I return an item?", ["send something back", "return process"]),
        ("refund", "When will I get my refund?", ["where is my money", "refund status"]),
        ("password", "How do I reset my password?", ["forgot my password", "can't log in"]),
        ("payment", "Which payment methods do you accept?", ["can I pay with paypal", "credit card?"]),
        ("tracking", "How can I track my order?", ["where is my package", "tracking number"]),
        ("cancel", "How do I cancel my order?", ["cancel order please", "I don't want it anymore"]),
        ("invoice", "How do I get an invoice?", ["I need a receipt", "VAT invoice"]),
        ("warranty", "How long is the warranty?", ["guarantee period", "is it covered"]),
        ("sizes", "How do I find my size?", ["size chart", "do boots run small"]),
        ("phone", "What is your phone number?", ["can I call you", "hotline"]),
        ("gift", "Do you sell gift cards?", ["gift voucher", "present card"]),
        ("account", "How do I delete my account?", ["remove my account", "close account"]),
        ("express", "Do you offer express delivery?", ["next day delivery", "tomorrow?"]),
    ]
    records = [Entry(i, q, f"The answer about {i}.", tuple(p)) for i, q, p in topics]
    return build_kb(data_dir, records)


def test_the_retriever_fits_saves_and_reuses_each_versions_calibration(many, monkeypatch):
    many.retriever.index()
    cal = many.retriever.calibration
    assert cal.fitted and cal.answerable >= MIN_HELDOUT
    saved = json.loads((many.folder / "calibration.json").read_text())
    assert saved["stamp"].startswith("1 ")
    # A fresh retriever over the same folder reads it instead of fitting again.
    from knowledge.retrieval import Retriever

    fresh = Retriever(many.store, many.embedder, many.folder)
    monkeypatch.setattr(Retriever, "fit_calibration", lambda *a: pytest.fail("fitted again"))
    fresh.index()
    assert fresh.calibration == cal
    # Hits are scored with it.
    hit = fresh.search("How long does delivery take?")[0]
    assert hit.score == pytest.approx(cal.score(hit.raw, hit.classifier, hit.margin), abs=1e-9)
    assert fresh.index().classifier is not None and hit.classifier > 0.5  # the head was saved


def test_a_new_version_is_calibrated_anew(many):
    many.retriever.index()
    first = many.retriever.calibration
    records = many.store.published(1)
    many.store.save([*records, Entry("newsletter", "How do I unsubscribe?", "Use the link.",
                                     ("stop emails", "too many emails"))], publish=True)
    many.retriever.index()
    assert many.retriever.calibration is not first
    assert json.loads((many.folder / "calibration.json").read_text())["stamp"].startswith("2 ")


def test_calibration_off_keeps_the_global_constants(data_dir, shared_embedding_model):
    from knowledge.retrieval import Retriever

    kb = build_kb(data_dir, entries(12))
    retriever = Retriever(kb.store, kb.embedder, kb.folder, calibrate=False)
    retriever.index()
    assert retriever.calibration is GLOBAL
    assert not (kb.folder / "calibration.json").exists()
