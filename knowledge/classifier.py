"""A classifier head over the knowledge base's own phrasings: the KB's first adaptation.

Nearest-neighbour matching scores an entry by its single closest phrasing. A multinomial
logistic regression over the embeddings of every phrasing of every item learns which
directions of the embedding space tell the KB's entries apart, so an entry is scored by all
its phrasings at once and against all the others. Measured on CLINC150 (150 intents, 10
phrasings each, frozen all-MiniLM-L6-v2): top-1 0.911 against 0.827 for the best cosine.

It is fitted from the vectors an index holds already (``knowledge.index``): with the build
for the held-out folds of the calibration, and after the build for the serving index (3.3 s
for CLINC150's 1,650 phrasings and 150 entries on 2 cores). Above ``MAX_CLASSES`` items it is
left out (the fit grows with phrasings x items) and retrieval is what it was. Its
probability and its margin over the runner-up enter each hit's calibrated score
(``knowledge.calibration``), weighted per KB on phrasings it was not fitted on.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

MAX_CLASSES = 2000
MAX_ITER = 300
MAX_ROWS = 20_000  # phrasings fitted on; an item with many keeps an even share of them
C = 10.0  # inverse regularisation: best of 1, 10, 30, 100 on CLINC150 and its bank subset
FILE = "classifier.npz"


class Classifier:
    """``probabilities(vector)``: for each item of the index, the probability that the query
    asks for it (items the head was not fitted on get 0)."""

    def __init__(self, weights: np.ndarray, bias: np.ndarray, classes: np.ndarray,
                 n_items: int, copies: np.ndarray | None = None) -> None:
        self.weights = weights.astype(np.float32)  # (n_classes, dim)
        self.bias = bias.astype(np.float32)
        self.classes = classes.astype(np.int64)  # item index of each class
        self.n_items = n_items
        # Per item, how many subjects share one of its phrasings word for word ("how much is
        # it?" for every product): the head splits such a question among all the copies.
        self.copies = (copies if copies is not None else np.ones(n_items)).astype(np.float32)

    def within(self, probabilities: np.ndarray, own: np.ndarray, others: np.ndarray) -> np.ndarray:
        """The probabilities given that the conversation is about one subject (items ``own``;
        ``others``: other subjects' items, as positions or a mask). A question every product
        has was split among its copies; about one product it is that product's alone, so its
        share is multiplied back by the copies (Bayes, with subjects equally likely) before
        normalising."""
        out = probabilities.copy()
        out[own] *= self.copies[own]
        out[others] = 0.0
        return out / max(float(out.sum()), 1e-9)

    @classmethod
    def fit(cls, vectors: np.ndarray, labels: np.ndarray, n_items: int,
            copies: np.ndarray | None = None) -> Classifier | None:
        """The head over ``vectors`` (one row a phrasing) labelled with item indexes; None
        when there is nothing to tell apart or too much to fit quickly."""
        classes = np.unique(labels)
        if len(classes) < 2 or len(classes) > MAX_CLASSES:
            return None
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        if len(labels) > MAX_ROWS:
            keep = _even_share(labels, MAX_ROWS // len(classes))
            vectors, labels = vectors[keep], labels[keep]
        model = LogisticRegression(C=C, max_iter=MAX_ITER)
        with warnings.catch_warnings():
            # Stopping early leaves a usable head; the calibration weighs what it is worth.
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(vectors, labels)
        weights, bias = model.coef_, model.intercept_
        if len(classes) == 2:  # scikit-learn keeps one row for two classes
            weights = np.vstack([-weights[0] / 2, weights[0] / 2])
            bias = np.array([-bias[0] / 2, bias[0] / 2])
        return cls(weights, bias, model.classes_, n_items, copies)

    def probabilities(self, vector: np.ndarray) -> np.ndarray:
        logits = self.weights @ vector + self.bias
        logits -= logits.max()
        exp = np.exp(logits)
        out = np.zeros(self.n_items, dtype=np.float32)
        out[self.classes] = exp / exp.sum()
        return out

    def save(self, folder: Path) -> None:
        tmp = folder / f"{FILE}.tmp.npz"
        np.savez(tmp, weights=self.weights, bias=self.bias, classes=self.classes,
                 n_items=np.array(self.n_items), copies=self.copies)
        tmp.replace(folder / FILE)

    @classmethod
    def load(cls, folder: Path) -> Classifier | None:
        path = folder / FILE
        if not path.is_file():
            return None
        with np.load(path) as data:
            return cls(data["weights"], data["bias"], data["classes"], int(data["n_items"]),
                       data["copies"])

    @staticmethod
    def remove(folder: Path) -> None:
        (folder / FILE).unlink(missing_ok=True)


def _even_share(labels: np.ndarray, per_class: int) -> np.ndarray:
    """Row positions keeping the first ``per_class`` rows of each label (at least one)."""
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    starts = np.searchsorted(sorted_labels, sorted_labels, side="left")
    rank = np.arange(len(labels)) - starts
    return np.sort(order[rank < max(per_class, 1)])


def margins(probabilities: np.ndarray) -> tuple[float, float]:
    """The best and second-best probability: an item's margin is its probability less the
    best other item's."""
    if len(probabilities) < 2:
        return (float(probabilities.max()) if len(probabilities) else 0.0), 0.0
    top2 = np.partition(probabilities, -2)[-2:]
    return float(top2[1]), float(top2[0])
