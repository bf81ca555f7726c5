"""Retrieval-only `chatbot eval` on the COVID-QA FAQ (a knowledge base the product never saw).

Converts the data set (bench/covid_to_kb.py), then runs
``.venv/bin/chatbot eval --kb bench/out/covid/kb.jsonl --queries bench/out/covid/queries.jsonl
--retrieval-only --json`` as a subprocess with CHATBOT_DATA_DIR on a temporary folder, prints
its JSON object and a one-line summary, and keeps the JSON in bench/out/covid/eval.json.
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
from covid_to_kb import DEFAULT_DATA, convert, rel


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", default=DEFAULT_DATA,
        help=f"covid-qa-faq folder, relative to the repo root (default {DEFAULT_DATA})",
    )
    parser.add_argument(
        "--chatbot", default=str(REPO / ".venv" / "bin" / "chatbot"),
        help="the chatbot executable (default .venv/bin/chatbot)",
    )
    args = parser.parse_args(argv)
    data = Path(args.data)
    data = data if data.is_absolute() else (REPO / data).resolve()
    out = OUT / "covid"

    header("COVID-QA retrieval-only eval", torch_threads=False)
    counts = convert(data, out)
    print(
        f"converted: {counts['entries']} entries, {counts['in_scope']} in-scope + "
        f"{counts['out_of_scope']} out-of-scope cases"
    )
    cmd = [
        args.chatbot, "eval",
        "--kb", rel(out / "kb.jsonl"),
        "--queries", rel(out / "queries.jsonl"),
        "--retrieval-only", "--json",
    ]
    with tempfile.TemporaryDirectory(prefix="bench-covid-") as tmp:
        env = {**os.environ, "CHATBOT_DATA_DIR": tmp}
        env.pop("CHATBOT_DATABASE_URL", None)
        shown = " ".join([rel(Path(cmd[0])), *cmd[1:]])
        print(f"running: CHATBOT_DATA_DIR={tmp} {shown}", flush=True)
        started = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
    if proc.returncode != 0:
        print(proc.stdout)
        print(proc.stderr, file=sys.stderr)
        print(f"chatbot eval failed with exit status {proc.returncode}", file=sys.stderr)
        return proc.returncode
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        print(proc.stdout)
        print("chatbot eval --json did not print a JSON object on its last line", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    (out / "eval.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")

    def pct(key: str) -> str:
        value = result.get(key)
        return "n/a" if value is None else f"{100 * value:.1f}%"

    d = result.get("decisions", {})
    lat = result.get("latency_ms", {})
    print(
        f"summary: n={result.get('n')} ({result.get('n_in_scope')} in / "
        f"{result.get('n_out_of_scope')} out)  R@1 {pct('recall@1')}  R@5 {pct('recall@5')}  "
        f"MRR@10 {result.get('mrr@10', 0):.3f}  in-scope acc {pct('in_scope_accuracy')}  "
        f"OOS recall {pct('oos_recall')}  overall {pct('overall_accuracy')}  "
        f"decisions a/c/h {d.get('answer')}/{d.get('clarify')}/{d.get('handoff')}  "
        f"latency p50 {lat.get('p50')} ms p95 {lat.get('p95')} ms  wall {wall:.0f} s"
    )
    footer()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
