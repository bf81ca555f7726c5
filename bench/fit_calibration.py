"""Fit the retrieval score calibration (knowledge/retrieval.py) on labelled queries.

Uses two unrelated knowledge bases: the demo shop (held-out paraphrases, bench/demo_heldout.py) and the
COVID FAQ (../shared/data/covid-qa-faq). Queries of one KB are also run against the other as
out-of-scope examples. For every query's best candidate it records (dense, lead, keyword) and
whether it is the expected entry, then fits a logistic regression. It prints the
fitted weights, expressed as the module's constants, and the reliability of the result.

    .venv/bin/python bench/fit_calibration.py
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from chatbot.db import make_engine, upgrade  # noqa: E402
from knowledge.embeddings import Embedder  # noqa: E402
from knowledge.formats import read_files  # noqa: E402
from knowledge.index import SearchIndex  # noqa: E402
from knowledge.records import Entry  # noqa: E402
from knowledge.retrieval import KEYWORD_CAP, fused  # noqa: E402

# The fit gives the global constants of knowledge/calibration.py (GLOBAL), which each
# knowledge base then refits on itself.


def covid(data: Path) -> tuple[list[Entry], list[tuple[str, str | None]]]:
    entries: dict[str, Entry] = {}
    with (data / "faq_covidbert.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            q = row["question"].strip()
            if q not in entries:
                eid = "covid-" + hashlib.sha1(q.encode()).hexdigest()[:10]
                entries[q] = Entry(eid, q, row["answer"].strip())
    cases = []
    with (data / "eval_question_similarity_en.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["similar"] == "1" and row["question_1"].strip() in entries:
                cases.append((row["question_2"], entries[row["question_1"].strip()].id))
    return list(entries.values()), cases


def demo() -> tuple[list, list[tuple[str, str | None]]]:
    """The demo shop with held-out paraphrases (``bench/demo_heldout.py``), first turns only."""
    from demo_heldout import DEMO, build

    out = ROOT / "bench" / "out" / "demo"
    build(out)
    cases = []
    for line in (out / "queries.jsonl").read_text().splitlines():
        obj = json.loads(line)
        if not obj.get("history") and obj.get("kind") in ("heldout", "oos"):
            cases.append((obj["query"], obj["expected_id"]))
    return read_files([out / "kb.jsonl", *sorted(DEMO.glob("*.md"))]), cases


def rows_for(records, cases, embedder, k: int = 5):
    index = SearchIndex.build(records, embedder, version=1)
    X, y = [], []
    for query, expected in cases:
        vec = embedder.embed_query(query)
        sigs = index.signals(vec, query, k)
        # The score of the best candidate is what decisions threshold: calibrate it to the
        # probability that this best candidate is the right answer.
        best = max(sigs, key=lambda s: fused(s.dense, s.lead, s.keyword))
        X.append([best.dense, best.lead, min(best.keyword, KEYWORD_CAP)])
        y.append(int(expected is not None and index.items[best.item].parent == expected))
    return X, y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--covid", type=Path, default=ROOT.parent / "shared/data/covid-qa-faq")
    args = parser.parse_args()
    from sklearn.linear_model import LogisticRegression  # a dev-only dependency

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/fit.db")
        upgrade(engine)
        embedder = Embedder(engine=engine)
        demo_records, demo_cases = demo()
        covid_records, covid_cases = covid(args.covid)
        sets = [
            (demo_records, demo_cases + [(q, None) for q, _ in covid_cases[::3]]),
            (covid_records, covid_cases + [(q, None) for q, _ in demo_cases]),
        ]
        X, y = [], []
        for records, cases in sets:
            xs, ys = rows_for(records, cases, embedder)
            X += xs
            y += ys
    X_arr, y_arr = np.array(X), np.array(y)
    # The ranking weights stay those that maximise top-1 accuracy; only the mapping from the
    # fused score to a probability is fitted here.
    raw = np.array([[fused(d, lead, kw)] for d, lead, kw in X_arr])
    model = LogisticRegression(C=100.0, max_iter=1000).fit(raw, y_arr)
    print(f"samples: {len(y_arr)} (positives {int(y_arr.sum())})")
    print(f"SLOPE = {model.coef_[0][0]:.3f}")
    print(f"INTERCEPT = {model.intercept_[0]:.3f}")
    p = model.predict_proba(raw)[:, 1]
    bins = np.linspace(0, 1, 11)
    print("reliability (predicted bin: mean predicted, observed, count)")
    for lo, hi in zip(bins[:-1], bins[1:], strict=True):
        mask = (p >= lo) & (p < hi)
        if mask.sum():
            print(f"  {lo:.1f}-{hi:.1f}: {p[mask].mean():.3f} {y_arr[mask].mean():.3f} {mask.sum()}")
    print("command: .venv/bin/python bench/fit_calibration.py")


if __name__ == "__main__":
    main()
