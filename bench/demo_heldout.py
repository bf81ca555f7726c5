"""A held-out evaluation of the demo shop: paraphrases the knowledge base never saw.

Writes ``bench/out/demo/kb.jsonl`` (the demo FAQ with every third paraphrase of each entry
removed; the policy documents stay as they are, imported beside it) and
``bench/out/demo/queries.jsonl`` (the ``chatbot eval`` cases):

- ``heldout``: each removed paraphrase, expected to find its entry;
- ``noisy``: the same queries as customers type them: a typo, ALL CAPS, a greeting in front,
  emoji and repeated punctuation, no punctuation and lower case (one variant per query,
  chosen deterministically);
- ``followup``: a held-out paraphrase of one entry, then "and <a short question>" whose topic
  comes from the history (only for pairs written below);
- ``oos``: the hand-written out-of-scope messages of ``bench/data/out_of_scope.txt``.

Each case carries a ``kind`` field beside the contract's keys, so results can be split.

    .venv/bin/python bench/demo_heldout.py            # writes the files, prints the eval command
    .venv/bin/python bench/demo_heldout.py --eval     # and runs `chatbot eval --retrieval-only`
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from _common import OUT, REPO

DEMO = REPO / "knowledge" / "demo"
OOS = REPO / "bench" / "data" / "out_of_scope.txt"
HOLD_EVERY = 3  # paraphrases 1, 4, 7, ... are held out
# (first question's entry, follow-up text, expected entry): the follow-up names only what changed.
FOLLOWUPS = [
    ("delivery-time-uk", "and to Canada?", "delivery-time-canada"),
    ("delivery-time-eu", "what about the USA?", "delivery-time-usa"),
    ("returns-window", "and are returns free?", "return-costs"),
    ("how-to-return", "when do I get my money back?", "refund-timing"),
    ("warranty-length", "what isn't covered?", "warranty-exclusions"),
    ("payment-methods", "can I pay in instalments?", "klarna-pay-later"),
    ("create-account", "and how do I delete it?", "delete-account"),
    ("shipping-costs", "is there free shipping?", "free-shipping-threshold"),
    ("order-tracking", "and if it never arrives?", "lost-parcel"),
    ("contact-phone", "and by email?", "contact-email"),
]
GREETINGS = ["hi, ", "Hello! ", "hey there ", "Good morning, "]
EMOJI = [" 😡", " 🙏", " 😊", " 🤔"]


def typo(text: str, rng: random.Random) -> str:
    words = text.split()
    long = [i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha()]
    if not long:
        return text
    i = rng.choice(long)
    w = words[i]
    j = rng.randrange(1, len(w) - 2)
    words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]  # swap two neighbouring letters
    return " ".join(words)


def noisy(text: str, rng: random.Random, which: int) -> str:
    bare = text.rstrip("?!. ")
    return [
        lambda: typo(text, rng),
        lambda: text.upper(),
        lambda: rng.choice(GREETINGS) + text[0].lower() + text[1:],
        lambda: bare + "??" + rng.choice(EMOJI),
        lambda: bare.lower().replace(",", "").replace("'", ""),
    ][which % 5]()


def build(out: Path, seed: int = 7) -> Counter[str]:
    rng = random.Random(seed)
    entries = [json.loads(line) for line in (DEMO / "faq.jsonl").read_text().splitlines() if line]
    kb_lines, cases = [], []
    first_question: dict[str, str] = {}
    for entry in entries:
        paraphrases = entry.get("paraphrases", [])
        held = [p for i, p in enumerate(paraphrases) if i % HOLD_EVERY == 1]
        kept = [p for i, p in enumerate(paraphrases) if i % HOLD_EVERY != 1]
        kb_lines.append(json.dumps({**entry, "paraphrases": kept}, ensure_ascii=False))
        for p in held:
            cases.append({"query": p, "expected_id": entry["id"], "kind": "heldout"})
        if held:
            first_question[entry["id"]] = held[0]
    heldout = [c for c in cases if c["kind"] == "heldout"]
    for n, case in enumerate(heldout):
        cases.append({**case, "query": noisy(case["query"], rng, n), "kind": "noisy"})
    for first, text, expected in FOLLOWUPS:
        history = [{"role": "user", "content": first_question[first]}]
        cases.append({"query": text, "expected_id": expected, "history": history,
                      "kind": "followup"})
    for line in OOS.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            cases.append({"query": line.strip(), "expected_id": None, "kind": "oos"})
    out.mkdir(parents=True, exist_ok=True)
    (out / "kb.jsonl").write_text("\n".join(kb_lines) + "\n", encoding="utf-8")
    (out / "queries.jsonl").write_text(
        "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in cases), encoding="utf-8"
    )
    return Counter(c["kind"] for c in cases)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--eval", action="store_true", help="also run chatbot eval --retrieval-only")
    args = parser.parse_args(argv)
    out = OUT / "demo"
    counts = build(out)
    print("cases:", dict(counts), "->", out / "queries.jsonl")
    docs = sorted(str(p) for p in DEMO.glob("*.md"))
    command = [str(REPO / ".venv/bin/chatbot"), "eval", "--kb", str(out / "kb.jsonl"),
               *[a for d in docs for a in ("--kb", d)], "--queries", str(out / "queries.jsonl"),
               "--retrieval-only", "--json"]
    print("command:", " ".join(command))
    if args.eval:
        with tempfile.TemporaryDirectory() as folder:
            env = {**os.environ, "CHATBOT_DATA_DIR": folder}
            proc = subprocess.run(command, env=env, capture_output=True, text=True)
        if proc.returncode:
            print(proc.stderr, file=sys.stderr)
            return proc.returncode
        (out / "eval.json").write_text(proc.stdout)
        print(proc.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
