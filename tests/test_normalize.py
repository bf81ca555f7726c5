"""Customer-style noise: pictographs, repeated punctuation and typos, before retrieval."""

from __future__ import annotations

import pytest

from knowledge.normalize import Speller, clean

KB_TEXTS = [
    "How do I track my order? Use the tracking link in your dispatch email.",
    "How long do I have to return an item? You can return unworn items within 30 days.",
    "Is my camping stove affected by the safety recall? Only the Emberlite KX-220 stove.",
    "Which payment methods do you accept? We accept Visa, Mastercard and American Express.",
]


@pytest.fixture(scope="module")
def speller() -> Speller:
    return Speller.for_texts(KB_TEXTS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("card not arrived yet??", "card not arrived yet?"),
        ("WHERE IS MY ORDER!!!", "WHERE IS MY ORDER!"),
        ("hi, where do you deliver 🙏", "hi, where do you deliver"),
        ("help 😡😡  please ?!?", "help please ?"),
        ("  many   spaces\n", "many spaces"),
        ("Price is 4.95, ok.", "Price is 4.95, ok."),
    ],
)
def test_clean(text, expected):
    assert clean(text) == expected


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("where is my oder trakcing", "where is my oder tracking"),  # "oder" is an English word
        ("can I retrun it", "can I return it"),
        ("is my stvoe part of the recall", "is my stove part of the recall"),
        ("which paymnet methods", "which payment methods"),
        ("emberlyte stove", "emberlite stove"),
    ],
)
def test_typos_are_mended_towards_the_knowledge_base(speller, typed, meant):
    assert speller.correct(typed) == meant


@pytest.mark.parametrize(
    "text",
    [
        "is the KX-220 affected",  # product codes keep their digits and letters
        "order 12345678 never came",
        "do you take amex",  # short words are left alone
        "my parcel was stolen yesterday",  # known English words are never changed
        "Rotterdam warehouse",  # a word that is not close to any KB word
    ],
)
def test_known_words_codes_and_short_words_are_kept(speller, text):
    assert speller.correct(text) == text



def test_an_updated_speller_suggests_like_a_new_one_for_the_changed_texts():
    before = Speller.for_texts(KB_TEXTS)
    before.correct("trakc")  # a table in use
    edited = [*KB_TEXTS[:3], "Do you ship the Zorblax lantern to Iceland? Yes, within days."]
    after = before.updated(removed=[KB_TEXTS[3]], added=[edited[3]])
    fresh = Speller.for_texts(edited)
    assert after.vocabulary == fresh.vocabulary
    probes = ["zorblx", "lanterm", "icelnd", "mastercrad", "amerikan", "trakc", "oredr", "stvoe"]
    assert [after.correct(p) for p in probes] == [fresh.correct(p) for p in probes]
    assert after.correct("zorblx") == "zorblax"
    assert after.correct("mastercrad") == "mastercrad"  # its entry is gone: nothing to mend to
