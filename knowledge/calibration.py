"""Confidence calibrated to each knowledge base, and the operating point it gives.

A hit's ``score`` is ``sigmoid(slope * raw + intercept)`` of its fused raw score
(``knowledge.retrieval``): for the best hit of a message, the probability that it is the entry
that answers the message. One pair of constants (``GLOBAL``, fitted on two unrelated KBs by
``bench/fit_calibration.py``) serves any KB out of the box, but raw scores mean different
things in different KBs: with ten paraphrases an entry, an unrelated message finds some
phrasing that looks close far more often than in a KB of bare questions.

So each published version is calibrated on itself (``fit``) when its index is built:

- **answerable** cases: one phrasing (question or paraphrase) held out of each of up to
  ``MAX_HELDOUT`` entries that have at least two, searched against an index of the KB without
  them and without one entry in five (``heldout_split``); correct when the held-out phrasing's
  own entry comes first;
- **unanswerable** cases, never correct: the phrasings of the entries left out of that index
  (questions close to the KB's topics that it does not answer), the generic messages of
  ``knowledge/data/out_of_scope.txt`` (no customer-service KB answers "who painted the mona
  lisa"), and the KB's own out-of-scope examples that staff collected.

A logistic regression maps the best hit's features to "the best hit is right": its fused raw
score and, where the index has a classifier head fitted on the KB's phrasings
(``knowledge.classifier``), the head's probability for the hit and its margin over the
runner-up. Each fold's index fits its own head on what it kept, so the head is always judged
on phrasings it was not fitted on. Small KBs are split ``folds`` times (each fold holds out
another phrasing of each entry and leaves out other entries), so that a 30-entry FAQ gives
120 answerable cases instead of 24. The fit weights the two sides so that unanswerable messages
make ``UNANSWERABLE_SHARE`` of the traffic, and is pulled towards a prior (``GLOBAL``, or
``WITH_CLASSIFIER`` when there is a head; a Gaussian prior of strength ``PRIOR_STRENGTH``), so
a small KB moves only as far as its evidence carries it. A KB without paraphrases has no
answerable cases and keeps ``GLOBAL``: its head, never judged, does not count.
``operating_point`` reports answer precision, answer rate and out-of-scope recall at given
thresholds; ``threshold_for_precision`` finds the lowest answer threshold that
reaches a target precision on the same cases.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from knowledge.records import Entry, Record

SLOPE = 5.027
INTERCEPT = -4.829
MAX_HELDOUT = 400  # answerable cases per calibration: enough for two parameters, and fast
# Entries left out whole (two unanswerable cases each). Without a cap a 10k-entry KB gave 4,000
# cases, and fitting took 10 s after every publish; 200 keep it about one second at any size.
MAX_REMOVED = 200
MIN_HELDOUT = 8  # fewer than this and the KB keeps the global constants
REMOVED_EVERY = 5  # one entry in five is left out whole for the unanswerable side
UNANSWERABLE_SHARE = 0.25
PRIOR_STRENGTH = 20.0
MAX_FOLDS = 5


@dataclass(frozen=True)
class Sample:
    raw: float  # the best hit's fused raw score
    correct: bool  # the best hit is the expected entry (always False when unanswerable)
    answerable: bool
    classifier: float = 0.0  # the classifier head's probability for the best hit
    margin: float = 0.0  # and its lead over the best other item

    def features(self) -> tuple[float, float, float]:
        return (self.raw, self.classifier, self.margin)


@dataclass(frozen=True)
class Calibration:
    slope: float = SLOPE
    intercept: float = INTERCEPT
    fitted: bool = False  # False: the global constants
    answerable: int = 0  # cases it was fitted on
    unanswerable: int = 0
    heldout_top1: float | None = None  # share of answerable cases whose best hit was right
    samples: tuple[Sample, ...] = field(default=(), repr=False, compare=False)
    classifier_weight: float = 0.0  # weights of the classifier head's probability and margin
    margin_weight: float = 0.0
    baseline_top1: float | None = None  # heldout_top1 of the fused score alone, for comparison

    def score(self, raw: float, classifier: float = 0.0, margin: float = 0.0) -> float:
        z = (self.slope * raw + self.classifier_weight * classifier + self.margin_weight * margin
             + self.intercept)
        return 1.0 / (1.0 + math.exp(-max(min(z, 60.0), -60.0)))

    def sample_score(self, sample: Sample) -> float:
        return self.score(*sample.features())

    def to_json(self) -> str:
        data = asdict(self)
        data["samples"] = [[s.raw, s.correct, s.answerable, s.classifier, s.margin]
                           for s in self.samples]
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> Calibration:
        data = json.loads(text)
        samples = tuple(Sample(float(r), bool(c), bool(a), float(p), float(m))
                        for r, c, a, p, m in data.pop("samples", []))
        return cls(**data, samples=samples)

    def describe(self) -> dict[str, Any]:
        return {
            "fitted": self.fitted,
            "slope": round(self.slope, 4),
            "intercept": round(self.intercept, 4),
            "classifier_weight": round(self.classifier_weight, 4),
            "margin_weight": round(self.margin_weight, 4),
            "answerable_cases": self.answerable,
            "unanswerable_cases": self.unanswerable,
            "heldout_top1": None if self.heldout_top1 is None else round(self.heldout_top1, 4),
            "heldout_top1_without_head": None if self.baseline_top1 is None
            else round(self.baseline_top1, 4),
        }


GLOBAL = Calibration()
# The prior of a KB whose index has a classifier head: rounded from the per-KB fits (slope,
# intercept, classifier and margin weights) of the demo shop (2.75, -3.53, 2.22, 2.23),
# CLINC150's bank subset (3.25, -4.38, 2.63, 2.60) and all 150 intents (3.22, -4.15, 2.55, 2.51).
WITH_CLASSIFIER = Calibration(slope=3.0, intercept=-4.0, classifier_weight=2.5, margin_weight=2.5)


@lru_cache(maxsize=1)
def generic_unanswerable() -> tuple[str, ...]:
    text = resources.files("knowledge").joinpath("data/out_of_scope.txt").read_text("utf-8")
    return tuple(line.strip() for line in text.splitlines()
                 if line.strip() and not line.lstrip().startswith("#"))


def folds_for(records: Sequence[Record], limit: int = MAX_HELDOUT) -> int:
    """How many held-out splits a KB gets: enough for about ``limit`` answerable cases, at
    most ``MAX_FOLDS``, and one from ``limit`` entries on."""
    entries = sum(isinstance(r, Entry) and len(r.variants()) >= 2 for r in records)
    if not entries:  # nothing to hold out: more folds would only repeat the unanswerable side
        return 1
    return max(1, min(MAX_FOLDS, math.ceil(limit / entries)))


def heldout_split(
    records: Sequence[Record], limit: int = MAX_HELDOUT, fold: int = 0
) -> tuple[list[Record], list[tuple[str, str]], list[str]]:
    """The records for a held-out index, with the cases it is searched with.

    Every ``REMOVED_EVERY``-th entry (by a hash of its id, shifted by ``fold``),
    ``MAX_REMOVED`` at most, is left out whole: its phrasings become *unanswerable* cases
    close to the KB's own topics (a question the KB does not cover, as customers ask them).
    Of the other entries with at least two phrasings, up to ``limit`` lose one phrasing (a
    different one in each fold), which becomes an *answerable* (phrasing, entry id) case. The
    choice depends only on ids and ``fold``, so the same KB always gives the same splits.
    """
    entries = sorted((r for r in records if isinstance(r, Entry)),
                     key=lambda r: zlib.crc32(r.id.encode()))
    left_out = (REMOVED_EVERY - 1 + fold) % REMOVED_EVERY
    removed = {r.id for n, r in enumerate(entries)
               if n % REMOVED_EVERY == left_out and n < REMOVED_EVERY * MAX_REMOVED}
    if len(entries) - len(removed) < 2:
        removed = set()
    eligible = [r for r in entries if r.id not in removed and len(r.variants()) >= 2]
    picked = {r.id for r in eligible[:limit]}
    answerable: list[tuple[str, str]] = []
    unanswerable: list[str] = []
    kept: list[Record] = []
    for record in records:
        if isinstance(record, Entry) and record.id in removed:
            unanswerable.extend(record.variants()[:2])
        elif isinstance(record, Entry) and record.id in picked:
            variants = record.variants()
            out = (zlib.crc32(record.id.encode()) + fold) % len(variants)
            rest = [v for i, v in enumerate(variants) if i != out]
            answerable.append((variants[out], record.id))
            kept.append(Entry(record.id, rest[0], record.answer, tuple(rest[1:]), record.tags,
                              record.extra))
        else:
            kept.append(record)
    return kept, answerable, unanswerable


def fit(samples: Sequence[Sample], prior: Calibration = GLOBAL) -> Calibration:
    """The per-KB calibration (``prior`` when there are too few answerable cases). With
    ``prior.classifier_weight`` at 0 only slope and intercept are fitted."""
    answerable = [s for s in samples if s.answerable]
    unanswerable = [s for s in samples if not s.answerable]
    if len(answerable) < MIN_HELDOUT or not unanswerable:
        return prior
    with_head = prior.classifier_weight != 0 or prior.margin_weight != 0
    columns = [[s.raw for s in samples]]
    centre_values = [prior.slope]
    if with_head:
        columns += [[s.classifier for s in samples], [s.margin for s in samples]]
        centre_values += [prior.classifier_weight, prior.margin_weight]
    x = np.array([*columns, [1.0] * len(samples)]).T  # the last column carries the intercept
    centre = np.array([*centre_values, prior.intercept])
    y = np.array([float(s.correct) for s in samples])
    # Each side carries its share of the weight, whatever the number of cases on it.
    w = np.array([
        (1 - UNANSWERABLE_SHARE) / len(answerable) if s.answerable
        else UNANSWERABLE_SHARE / len(unanswerable)
        for s in samples
    ]) * len(samples)
    theta = centre.copy()
    for _ in range(100):  # Newton's method on the penalised log-likelihood
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ theta, -60, 60)))
        grad = x.T @ (w * (p - y)) + PRIOR_STRENGTH * (theta - centre)
        hess = (x * (w * p * (1 - p))[:, None]).T @ x + PRIOR_STRENGTH * np.eye(len(theta))
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    weights = {"classifier_weight": float(theta[1]), "margin_weight": float(theta[2])} if with_head else {}
    return Calibration(
        slope=float(theta[0]),
        intercept=float(theta[-1]),
        **weights,
        fitted=True,
        answerable=len(answerable),
        unanswerable=len(unanswerable),
        heldout_top1=sum(s.correct for s in answerable) / len(answerable),
        samples=tuple(samples),
    )


def operating_point(
    calibration: Calibration, *, answer: float, clarify: float
) -> dict[str, Any] | None:
    """Answer precision, answer rate and out-of-scope recall on the calibration's own cases,
    for the answer and clarify thresholds (None without cases)."""
    samples = calibration.samples
    answerable = [s for s in samples if s.answerable]
    unanswerable = [s for s in samples if not s.answerable]
    if not answerable or not unanswerable:
        return None
    answered_in = [s for s in answerable if calibration.sample_score(s) >= answer]
    answered_out = [s for s in unanswerable if calibration.sample_score(s) >= answer]
    # Precision as traffic would see it: each side weighted by its share.
    right = sum(s.correct for s in answered_in) / len(answerable) * (1 - UNANSWERABLE_SHARE)
    wrong = ((len(answered_in) - sum(s.correct for s in answered_in)) / len(answerable)
             * (1 - UNANSWERABLE_SHARE) + len(answered_out) / len(unanswerable)
             * UNANSWERABLE_SHARE)
    return {
        "answer_threshold": round(answer, 4),
        "clarify_threshold": round(clarify, 4),
        "answer_precision": round(right / (right + wrong), 4) if right + wrong else None,
        "answer_rate": round(len(answered_in) / len(answerable), 4),
        "oos_recall": round(1 - len(answered_out) / len(unanswerable), 4),
        "handoff_rate_oos": round(
            sum(calibration.sample_score(s) < clarify for s in unanswerable) / len(unanswerable), 4
        ),
    }


def threshold_for_precision(
    calibration: Calibration, target: float, *, floor: float, ceiling: float = 0.95
) -> float:
    """The lowest answer threshold in [floor, ceiling] whose answer precision on the
    calibration's cases reaches ``target`` (``ceiling`` if none does; ``floor`` without cases)."""
    if not calibration.fitted:
        return floor
    candidates = sorted({round(calibration.sample_score(s), 4) for s in calibration.samples
                         if floor <= calibration.sample_score(s) <= ceiling} | {floor})
    for threshold in candidates:
        point = operating_point(calibration, answer=threshold, clarify=min(floor, threshold))
        if point and point["answer_precision"] is not None and point["answer_precision"] >= target:
            return threshold
    return ceiling
