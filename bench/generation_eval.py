"""Base against fine-tuned answer model in one ``chatbot eval`` run, on the demo shop or COVID-QA.

Writes the eval set (``bench/demo_heldout.py`` or ``bench/covid_to_kb.py``), keeps every
``--every``-th case (a sample of every kind, for a CPU budget), then runs

    chatbot eval --kb ... --queries <sample> --model default --model DIR ... --report R --json

with CHATBOT_DATA_DIR on a temporary folder, and keeps the JSON and the Markdown report (a plot
per metric) in ``bench/out/<set>/``, with each case's outcome (``--cases``:
the model's own words, grounded or not) in ``generation-cases.jsonl``.

    .venv/bin/python bench/generation_eval.py --set demo --model data/models/answer-v1
    .venv/bin/python bench/generation_eval.py --set covid --model /tmp/covid-tuned --every 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import OUT, REPO
from covid_to_kb import DEFAULT_DATA, convert

DEMO_DOCS = [REPO / "knowledge" / "demo" / f"{name}.md"
             for name in ("returns-policy", "shipping-policy", "warranty-terms")]


def eval_set(name: str) -> tuple[list[Path], Path]:
    """The knowledge-base files and the queries file of a set, written afresh."""
    out = OUT / name
    if name == "demo":
        subprocess.run([sys.executable, str(REPO / "bench" / "demo_heldout.py")], check=True,
                       stdout=subprocess.DEVNULL)
        return [out / "kb.jsonl", *DEMO_DOCS], out / "queries.jsonl"
    convert((REPO / DEFAULT_DATA).resolve(), out)
    return [out / "kb.jsonl"], out / "queries.jsonl"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", choices=["demo", "covid"], default="demo")
    parser.add_argument("--model", action="append", default=[],
                        help="a model to compare with the serving model (repeatable)")
    parser.add_argument("--every", type=int, default=3, help="keep every N-th case (default 3)")
    args = parser.parse_args(argv)
    kb_files, queries = eval_set(args.set)
    lines = queries.read_text(encoding="utf-8").splitlines()[:: max(1, args.every)]
    sample = queries.with_name(f"queries-every{args.every}.jsonl")
    sample.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = OUT / args.set / "generation.md"
    cases = OUT / args.set / "generation-cases.jsonl"
    cmd = [str(REPO / ".venv" / "bin" / "chatbot"), "eval",
           *[a for f in kb_files for a in ("--kb", str(f))], "--queries", str(sample),
           *[a for m in ["default", *args.model] for a in ("--model", m)],
           "--report", str(report), "--cases", str(cases), "--json"]
    print(f"{len(lines)} cases; running: {' '.join(cmd)}", flush=True)
    with tempfile.TemporaryDirectory(prefix=f"bench-generation-{args.set}-") as tmp:
        env = {**os.environ, "CHATBOT_DATA_DIR": tmp, "CHATBOT_DEMO_KB": "false"}
        env.pop("CHATBOT_DATABASE_URL", None)
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stdout, proc.stderr, sep="\n", file=sys.stderr)
        return proc.returncode
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    (OUT / args.set / "generation.json").write_text(json.dumps(result, indent=2) + "\n",
                                                    encoding="utf-8")
    for model, figures in result["models"].items():
        g = figures["generation"]
        print(f"{model}: perplexity {g['perplexity']}, ROUGE-L {g['rouge_l']}, ROUGE-L own words "
              f"{g['rouge_l_generated']}, grounded {g['grounded_rate']} (of stated answers "
              f"{g['grounded_rate_answers']}), abstained {g['abstain_rate']}, fallback "
              f"{g['fallback_rate']}, through the model {g['n_model']} of {g['n']}, latency "
              f"{g['latency_ms']}")
    print(f"report: {report}; each case's outcome: {cases}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
