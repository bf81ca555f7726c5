"""The dev-set table of understanding: `chatbot eval --retrieval-only` on every dev set.

Builds each set from ``../shared/data`` (never copied into the repository) and runs the
contract's ``chatbot eval --retrieval-only --json`` on a throwaway data dir, then prints one row
per set: recall@1, in-scope accuracy (answered with the right entry) and out-of-scope recall
side by side, at the operating point the bot serves with.

- ``covid``: the COVID-QA FAQ (bench/covid_to_kb.py);
- ``bank``: CLINC150's banking + credit_cards as a bank's FAQ, every other domain and
  ``oos_test`` out of scope (bench/clinc_to_kb.py);
- ``clinc150``: all 150 intents, ``test`` and ``oos_test``;
- ``demo-dialogues``: the demo shop's multi-turn dialogues about its products
  (bench/data/demo_dialogues.jsonl).

``--embedding-model`` runs the whole table with another embedder (a folder or hub id, as
``CHATBOT_EMBEDDING_MODEL``), to put two side by side.

    .venv/bin/python bench/understanding.py [--sets covid bank clinc150 demo-dialogues]
        [--embedding-model PATH] [--split test|val]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import OUT, REPO, footer, header
from clinc_to_kb import DEFAULT_DATA as CLINC_DATA
from clinc_to_kb import build as build_clinc
from covid_to_kb import DEFAULT_DATA as COVID_DATA
from covid_to_kb import convert as convert_covid

SETS = ("covid", "bank", "clinc150", "demo-dialogues")
DEMO = REPO / "knowledge" / "demo"


def prepare(name: str, split: str) -> tuple[list[Path], Path]:
    """The KB files and queries file of one dev set."""
    if name == "covid":
        out = OUT / "covid"
        convert_covid((REPO / COVID_DATA).resolve(), out)
        return [out / "kb.jsonl"], out / "queries.jsonl"
    if name in ("bank", "clinc150"):
        kb = "bank" if name == "bank" else "all"
        out = OUT / "clinc" / kb
        build_clinc((REPO / CLINC_DATA).resolve(), kb, out, split=split)
        return [out / "kb.jsonl"], out / "queries.jsonl"
    files = sorted(p for p in DEMO.iterdir() if p.suffix in (".jsonl", ".md"))
    return files, REPO / "bench" / "data" / "demo_dialogues.jsonl"


def run(chatbot: str, kb: list[Path], queries: Path, embedding: str | None) -> tuple[dict, float]:
    cmd = [chatbot, "eval", *(a for p in kb for a in ("--kb", str(p))),
           "--queries", str(queries), "--retrieval-only", "--json"]
    with tempfile.TemporaryDirectory(prefix="bench-understanding-") as tmp:
        env = {**os.environ, "CHATBOT_DATA_DIR": tmp}
        env.pop("CHATBOT_DATABASE_URL", None)
        if embedding:
            env["CHATBOT_EMBEDDING_MODEL"] = embedding
        started = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"chatbot eval failed with exit status {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    parser.add_argument("--split", choices=["test", "val"], default="test",
                        help="CLINC150 split to evaluate on (val is for choosing settings)")
    parser.add_argument("--embedding-model", default=None,
                        help="CHATBOT_EMBEDDING_MODEL for every run (default: the bundled MiniLM)")
    parser.add_argument("--chatbot", default=str(REPO / ".venv" / "bin" / "chatbot"))
    args = parser.parse_args()

    header("understanding: chatbot eval --retrieval-only on the dev sets", torch_threads=False)
    print(f"embedding model: {args.embedding_model or 'bundled (all-MiniLM-L6-v2)'}")
    rows = []
    for name in args.sets:
        kb, queries = prepare(name, args.split)
        result, wall = run(args.chatbot, kb, queries, args.embedding_model)
        (OUT / f"understanding-{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        rows.append((name, result, wall))
        print(f"  {name}: done in {wall:.0f} s", flush=True)

    def fmt(value: float | None) -> str:
        return "  n/a" if value is None else f"{value:.3f}"

    print()
    print("| set | cases (in / out) | recall@1 | in-scope accuracy | out-of-scope recall | p50 ms |")
    print("|---|---|---|---|---|---|")
    for name, r, _ in rows:
        print(f"| {name} | {r['n_in_scope']} / {r['n_out_of_scope']} | {fmt(r['recall@1'])} | "
              f"{fmt(r['in_scope_accuracy'])} | {fmt(r['oos_recall'])} | {r['latency_ms']['p50']} |")
    footer()


if __name__ == "__main__":
    main()
