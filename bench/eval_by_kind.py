"""`chatbot eval --retrieval-only` split by the ``kind`` field of each case.

Runs the same pipeline as ``chatbot eval`` (``chatbot.evaluation.run_eval`` pieces) once, then
prints the contract's metrics for all cases and for each kind (heldout, noisy, followup, oos,
...), and writes each case's result to ``bench/out/<name>/cases.jsonl`` for reading failures.

    .venv/bin/python bench/demo_heldout.py && .venv/bin/python bench/eval_by_kind.py \
        --kb bench/out/demo/kb.jsonl --kb knowledge/demo/*.md --queries bench/out/demo/queries.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chatbot.evaluation import metrics, read_cases, run_cases  # noqa: E402
from chatbot.services import build_services  # noqa: E402
from chatbot.settings import Settings  # noqa: E402
from knowledge.formats import read_files  # noqa: E402

KEYS = ("n", "recall@1", "recall@5", "mrr@10", "in_scope_accuracy", "oos_recall",
        "overall_accuracy")


def row(name: str, report: dict) -> str:
    cells = []
    for key in KEYS:
        value = report.get(key)
        cells.append("   –  " if value is None else (f"{value:6d}" if key == "n" else f"{value:6.3f}"))
    d = report["decisions"]
    return f"{name:10s} " + " ".join(cells) + f"   a/c/h {d['answer']}/{d['clarify']}/{d['handoff']}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kb", action="append", required=True, type=Path)
    parser.add_argument("--queries", required=True, type=Path)
    parser.add_argument("--name", default=None, help="output folder under bench/out")
    args = parser.parse_args(argv)
    kinds = [json.loads(line).get("kind", "all") for line in
             args.queries.read_text(encoding="utf-8").splitlines() if line.strip()]
    cases = read_cases(args.queries)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), demo_kb=False)
        services = build_services(settings, load_generator=False)
        services.knowledge.save(read_files(args.kb), publish=True, note="eval")
        services.retriever.index()
        results = run_cases(services.chat, cases)
        services.engine.dispose()
    print("cases", " ".join(f"{k:>6s}" for k in ("n", "R@1", "R@5", "MRR", "in-acc", "oos", "all")))
    print(row("all", metrics(cases, results)))
    for kind in dict.fromkeys(kinds):
        chosen = [i for i, k in enumerate(kinds) if k == kind]
        print(row(kind, metrics([cases[i] for i in chosen], [results[i] for i in chosen])))
    print(f"wall {time.perf_counter() - started:.0f} s")
    out = ROOT / "bench" / "out" / (args.name or args.queries.parent.name)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "cases.jsonl").open("w", encoding="utf-8") as fh:
        for case, kind, result in zip(cases, kinds, results, strict=True):
            fh.write(json.dumps({"kind": kind, "query": case.query, "expected": case.expected_id,
                                 "decision": result["decision"],
                                 "sources": [(s["id"], s["score"]) for s in result["sources"]]},
                                ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
