"""Answer-quality metrics: pure functions of texts and numbers, checked by hand in
``tests/test_metrics.py``.

- ``token_f1``: SQuAD's answer F1 — lowercase, delete punctuation (any Unicode punctuation,
  so "£4.95" is one token "£495" on both sides), drop the articles a/an/the, split on
  whitespace, then F1 of the two bags of tokens (0..1).
- ``bleu``: sacrebleu's corpus BLEU with its default 13a tokenizer (0..100).
- ``rouge_l``: mean ROUGE-L F-measure of each pair, rouge-score with Porter stemming (0..1).
- ``perplexity``: ``exp(total negative log-likelihood / tokens)``.

Each corpus metric returns ``None`` for no pairs, so an empty set is never reported as 0.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> list[str]:
    """SQuAD normalisation: lowercase, punctuation removed, articles removed, whitespace split."""
    text = "".join(c for c in text.lower() if not unicodedata.category(c).startswith("P"))
    return _ARTICLES.sub(" ", text).split()


def token_f1(prediction: str, reference: str) -> float:
    """Bag-of-tokens F1 of one prediction against one reference (both empty: 1.0)."""
    pred, ref = normalize_answer(prediction), normalize_answer(reference)
    if not pred or not ref:
        return float(pred == ref)
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def mean_token_f1(predictions: Sequence[str], references: Sequence[str]) -> float | None:
    _check(predictions, references)
    if not predictions:
        return None
    return sum(map(token_f1, predictions, references)) / len(predictions)


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float | None:
    """Corpus BLEU (0..100) of the predictions, one reference each."""
    _check(predictions, references)
    if not predictions:
        return None
    import sacrebleu

    return float(sacrebleu.corpus_bleu(list(predictions), [list(references)]).score)


def rouge_l(predictions: Sequence[str], references: Sequence[str]) -> float | None:
    """Mean ROUGE-L F-measure (0..1) over the pairs, with stemming."""
    _check(predictions, references)
    if not predictions:
        return None
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    scores = [
        scorer.score(target=ref, prediction=pred)["rougeL"].fmeasure
        for pred, ref in zip(predictions, references, strict=True)
    ]
    return sum(scores) / len(scores)


def perplexity(nll_sum: float, n_tokens: int) -> float | None:
    """``exp(nll_sum / n_tokens)`` for a natural-log NLL summed over ``n_tokens`` tokens."""
    if n_tokens < 0:
        raise ValueError("n_tokens must not be negative")
    if n_tokens == 0:
        return None
    return math.exp(nll_sum / n_tokens)


def _check(predictions: Sequence[str], references: Sequence[str]) -> None:
    if len(predictions) != len(references):
        raise ValueError(
            f"{len(predictions)} prediction(s) but {len(references)} reference(s)"
        )
