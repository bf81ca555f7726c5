"""Answer-quality metrics on examples worked out by hand."""

from __future__ import annotations

import math

import pytest

from chatbot.metrics import bleu, mean_token_f1, normalize_answer, perplexity, rouge_l, token_f1


def test_normalize_answer_drops_case_punctuation_and_articles():
    assert normalize_answer("The parcel, an order & a refund!") == ["parcel", "order", "refund"]
    assert normalize_answer("It costs £4.95.") == ["it", "costs", "£495"]
    assert normalize_answer("Theme is not an article") == ["theme", "is", "not", "article"]


def test_token_f1_of_known_strings():
    # Articles and punctuation do not count: the same four tokens.
    assert token_f1("The cat sat on the mat.", "a cat sat on a mat") == 1.0
    # 6 predicted tokens, 8 reference tokens, 6 shared: P = 1, R = 6/8, F1 = 2PR/(P+R) = 6/7.
    assert token_f1(
        "Delivery takes 2 to 4 days", "Standard delivery takes 2 to 4 business days"
    ) == pytest.approx(6 / 7)
    # A bag of tokens: "to" is shared once. P = 1/3, R = 1, F1 = 0.5.
    assert token_f1("to to to", "to") == pytest.approx(0.5)
    assert token_f1("PayPal", "Klarna") == 0.0


def test_token_f1_of_empty_answers():
    assert token_f1("", "") == 1.0
    assert token_f1("the", "a!") == 1.0  # both normalise to nothing
    assert token_f1("", "an answer") == 0.0
    assert token_f1("an answer", "") == 0.0


def test_mean_token_f1():
    assert mean_token_f1(["to to to", "PayPal"], ["to", "PayPal"]) == pytest.approx(0.75)
    assert mean_token_f1([], []) is None


def test_bleu_of_identical_strings_is_100():
    texts = ["We accept Visa, Mastercard and PayPal.", "Delivery takes 2 to 4 business days."]
    assert bleu(texts, texts) == pytest.approx(100.0)


def test_bleu_by_hand():
    # Clipped n-gram precisions 5/6, 3/5, 2/4, 1/3; equal lengths, so no brevity penalty.
    score = bleu(["the cat sat on the mat"], ["the cat sat on a mat"])
    assert score == pytest.approx(100 * (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25, abs=1e-6)
    assert bleu(["completely different words here"], ["nothing shared at all"]) == 0.0
    assert bleu([], []) is None


def test_rouge_l_of_known_pairs():
    # LCS "the cat on the mat": 5 of 6 tokens on each side.
    assert rouge_l(["the cat sat on the mat"], ["the cat is on the mat"]) == pytest.approx(5 / 6)
    # Stemming: deliveries/delivery and take/takes and days/day agree.
    assert rouge_l(["deliveries take two days"], ["delivery takes two days"]) == pytest.approx(1.0)
    # The mean of the pairs' F-measures.
    assert rouge_l(
        ["the cat sat on the mat", "deliveries take two days"],
        ["the cat is on the mat", "delivery takes two days"],
    ) == pytest.approx((5 / 6 + 1) / 2)
    assert rouge_l([], []) is None


def test_perplexity_math():
    assert perplexity(0.0, 10) == 1.0
    # Each of 10 tokens at probability 1/4: NLL 10 * ln 4, perplexity 4.
    assert perplexity(10 * math.log(4), 10) == pytest.approx(4.0)
    assert perplexity(3.0, 0) is None
    with pytest.raises(ValueError):
        perplexity(1.0, -1)


def test_corpus_metrics_need_one_reference_per_prediction():
    for metric in (bleu, rouge_l, mean_token_f1):
        with pytest.raises(ValueError, match="1 prediction"):
            metric(["a"], ["a", "b"])
