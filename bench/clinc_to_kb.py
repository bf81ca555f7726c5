"""Build support knowledge bases and eval sets from CLINC150 (``../shared/data/clinc150``).

An intent stands for one FAQ entry: its question and paraphrases are ``--phrasings`` requests
of the intent's ``train`` split, drawn with a fixed seed; its answer is a neutral sentence that
names the intent (the data set has no answers). Two KBs, as the data's SOURCE.md describes:

- ``bank``: the banking and credit_cards domains (30 entries). In scope: their ``test``
  requests; out of scope: ``oos_test`` and the other eight domains' ``test`` requests.
- ``all``: all 150 intents. In scope: ``test`` (4,500); out of scope: ``oos_test`` (1,000).

``--split val`` takes ``val``/``oos_val`` instead, for choosing settings; figures are reported
on ``test``. Writes ``bench/out/clinc/<kb>/kb.jsonl`` and ``queries.jsonl``.
``.venv/bin/python bench/clinc_to_kb.py [--kb bank all] [--split test]``
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from _common import OUT, REPO

DEFAULT_DATA = "../shared/data/clinc150"
BANK = ("banking", "credit_cards")


def answer_for(intent: str) -> str:
    words = intent.replace("_", " ")
    return f"This is our help article about {words}. A member of our team keeps it up to date."


def build(data: Path, kb: str, out: Path, *, phrasings: int = 10, split: str = "test",
          seed: int = 0) -> dict[str, int]:
    full = json.loads((data / "data_full.json").read_text(encoding="utf-8"))
    domains = json.loads((data / "domains.json").read_text(encoding="utf-8"))
    intents = ([i for d in BANK for i in domains[d]] if kb == "bank"
               else [i for d in domains.values() for i in d])
    scope = set(intents)
    rng = random.Random(seed)
    by_intent: dict[str, list[str]] = {}
    for text, intent in full["train"]:
        if intent in scope:
            by_intent.setdefault(intent, []).append(text)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "kb.jsonl").open("w", encoding="utf-8") as f:
        for intent in intents:
            chosen = rng.sample(by_intent[intent], phrasings)
            f.write(json.dumps({"id": intent, "question": chosen[0], "answer": answer_for(intent),
                                "paraphrases": chosen[1:]}) + "\n")
    queries = [(text, intent if intent in scope else None) for text, intent in full[split]]
    queries += [(text, None) for text, _ in full[f"oos_{split}"]]
    with (out / "queries.jsonl").open("w", encoding="utf-8") as f:
        for text, expected in queries:
            f.write(json.dumps({"query": text, "expected_id": expected}) + "\n")
    return {"entries": len(intents), "in_scope": sum(e is not None for _, e in queries),
            "out_of_scope": sum(e is None for _, e in queries)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help="the clinc150 folder, from the repo root")
    parser.add_argument("--kb", nargs="+", choices=["bank", "all"], default=["bank", "all"])
    parser.add_argument("--split", choices=["test", "val"], default="test")
    parser.add_argument("--phrasings", type=int, default=10)
    args = parser.parse_args()
    data = (REPO / args.data).resolve()
    for kb in args.kb:
        counts = build(data, kb, OUT / "clinc" / kb, phrasings=args.phrasings, split=args.split)
        print(f"{kb}: {counts}")


if __name__ == "__main__":
    main()
