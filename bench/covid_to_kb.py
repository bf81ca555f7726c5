"""Convert the COVID-QA FAQ data set into a knowledge base and eval cases for `chatbot eval`.

Reads (never copies) ``faq_covidbert.csv`` and ``eval_question_similarity_en.csv`` and writes

- ``bench/out/covid/kb.jsonl``: one FAQ entry per distinct question (whitespace-normalised);
  the answer, ``source`` and ``link`` come from the first row with that question and ``tags``
  is ``[category]`` when the row has one;
- ``bench/out/covid/queries.jsonl``: in-scope cases from the ``similar == 1`` rows
  (query = question_2, expected_id = the entry of question_1) and hand-written off-topic
  cases with ``expected_id: null``. The ``similar == 0`` rows are not used as out-of-scope
  cases: their question_2 is a paraphrase of some other FAQ question.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
import sys
from pathlib import Path

from _common import OUT, REPO, command_line, header

DEFAULT_DATA = "../shared/data/covid-qa-faq"

# Clearly unrelated to COVID-19: shopping, sports, cooking, programming, travel bookings...
OFF_TOPIC = [
    "Can I return a pair of shoes I bought online last week?",
    "Do you have this sofa in dark green?",
    "How much does shipping to Canada cost for a 5 kg parcel?",
    "Where can I find a discount code for my next order?",
    "Is the iPhone 15 cheaper on Black Friday?",
    "Which laptop is best for gaming under 1000 dollars?",
    "Who won the football World Cup in 2014?",
    "How many players are on a basketball team?",
    "When does the Tour de France start this year?",
    "What are the rules of cricket in simple terms?",
    "How do I improve my tennis backhand?",
    "How long should I boil an egg for a runny yolk?",
    "What is a good recipe for banana bread?",
    "Can I replace butter with olive oil when baking cookies?",
    "How do I make fresh pasta without a machine?",
    "What wine goes well with grilled salmon?",
    "How do I reverse a list in Python?",
    "What is the difference between git merge and git rebase?",
    "Why does my JavaScript promise never resolve?",
    "How do I center a div with CSS?",
    "How can I speed up a slow SQL query with a join?",
    "How do I change my flight booking to a later date?",
    "Can I get a refund for a cancelled hotel reservation?",
    "How much luggage can I take on a Ryanair flight?",
    "Do I need to print my train ticket or is the app enough?",
    "Which seats on an A320 have the most legroom?",
    "How do I reset my router password?",
    "My washing machine shows error E18, what does that mean?",
    "How often should I change the oil in my car?",
    "What is the best way to learn to play the guitar?",
    "Can you recommend a good science fiction novel?",
    "How do I open a savings account at your bank?",
    "What is the capital of Australia?",
    "How do I get red wine stains out of a carpet?",
    "When is the best time to plant tomatoes?",
    "How do I cancel my gym membership?",
    "What is the exchange rate between euros and yen today?",
    "How do I set up a new email account on my phone?",
    "Which paint is best for a bathroom ceiling?",
    "How do I train my puppy to sit?",
]


def norm(text: str) -> str:
    return " ".join(text.split())


def entry_id(question: str) -> str:
    """``covid-`` + the first words of the question + a hash of it: short, readable, stable."""
    words = re.findall(r"[a-z0-9]+", question.lower())[:5]
    slug = "-".join(words)[:40].strip("-")
    digest = hashlib.sha1(question.encode("utf-8")).hexdigest()[:8]
    return f"covid-{slug}-{digest}" if slug else f"covid-{digest}"


def read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        sys.exit(f"error: {path} not found; pass --data with the covid-qa-faq folder.")
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def convert(data: Path, out: Path) -> dict[str, int]:
    faq = read_csv(data / "faq_covidbert.csv")
    pairs = read_csv(data / "eval_question_similarity_en.csv")

    entries: dict[str, dict] = {}  # normalised question -> entry
    duplicate_rows = 0
    for row in faq:
        question = norm(row["question"])
        if not question or not row["answer"].strip():
            continue
        if question in entries:
            duplicate_rows += 1
            continue
        entry = {"id": entry_id(question), "question": question, "answer": row["answer"].strip()}
        category = norm(row.get("category") or "")
        entry["tags"] = [category] if category else []
        entry["source"] = row.get("source", "")
        entry["link"] = row.get("link", "")
        entries[question] = entry
    ids = [e["id"] for e in entries.values()]
    assert len(set(ids)) == len(ids), "entry id collision"

    cases: list[dict] = []
    seen: set[tuple[str, str]] = set()
    unmatched = repeated = 0
    for row in pairs:
        if row["similar"].strip() != "1":
            continue
        entry = entries.get(norm(row["question_1"]))
        if entry is None:
            unmatched += 1
            continue
        query = norm(row["question_2"])
        if (query, entry["id"]) in seen:
            repeated += 1
            continue
        seen.add((query, entry["id"]))
        cases.append({"query": query, "expected_id": entry["id"], "history": []})
    n_in = len(cases)
    cases += [{"query": q, "expected_id": None, "history": []} for q in OFF_TOPIC]

    out.mkdir(parents=True, exist_ok=True)
    with (out / "kb.jsonl").open("w", encoding="utf-8") as fh:
        for entry in entries.values():
            fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
    with (out / "queries.jsonl").open("w", encoding="utf-8") as fh:
        for case in cases:
            fh.write(json.dumps(case, ensure_ascii=False) + "\n")
    return {
        "faq_rows": len(faq),
        "entries": len(entries),
        "duplicate_question_rows": duplicate_rows,
        "pairs": len(pairs),
        "in_scope": n_in,
        "in_scope_unmatched": unmatched,
        "in_scope_repeated": repeated,
        "out_of_scope": len(OFF_TOPIC),
    }


def rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", default=DEFAULT_DATA,
        help=f"folder with the two CSV files; relative paths are from the repo root "
        f"(default {DEFAULT_DATA})",
    )
    parser.add_argument(
        "--out", default=str(OUT / "covid"), help="output folder (default bench/out/covid)"
    )
    args = parser.parse_args(argv)
    data = Path(args.data)
    data = data if data.is_absolute() else (REPO / data).resolve()
    out = Path(args.out)
    out = out if out.is_absolute() else (REPO / out).resolve()

    header("COVID-QA FAQ -> knowledge base + eval cases", torch_threads=False)
    print(f"data: {data}")
    counts = convert(data, out)
    print(
        f"faq rows {counts['faq_rows']} -> {counts['entries']} entries "
        f"({counts['duplicate_question_rows']} rows repeat an earlier question; first kept)"
    )
    print(
        f"similarity pairs {counts['pairs']} -> {counts['in_scope']} in-scope cases "
        f"(similar==1; {counts['in_scope_unmatched']} unmatched, "
        f"{counts['in_scope_repeated']} repeated pairs dropped)"
    )
    print(f"out-of-scope cases (hand-written, off-topic): {counts['out_of_scope']}")
    print(f"wrote {rel(out / 'kb.jsonl')} and {rel(out / 'queries.jsonl')}")
    print("run (from the repo root):")
    print(
        f"  .venv/bin/chatbot eval --kb {rel(out / 'kb.jsonl')} "
        f"--queries {rel(out / 'queries.jsonl')} --retrieval-only --json"
    )
    print(f"(or: {command_line().split(' ')[0]} bench/covid_eval.py, which runs it)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
