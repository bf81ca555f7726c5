"""Publish latency: time from a staff publish to the first customer answer with the new text.

Starts a real server (``chatbot serve`` in its own process, on a temporary data dir with the
demo knowledge base, or ``--kb FILE`` imported instead; ``CHATBOT_GENERATOR=scripted`` so no
language model loads: a question asked in an entry's own words takes the fast path, whose reply
is the entry's answer text). An editor account and API token are made with the CLI.

Each round: the staff API edits one entry's answer (a draft, with a unique marker), then
``POST /api/v1/staff/publish`` is sent and, without pausing, a customer conversation that is
already open asks that entry's question again and again through
``POST /api/v1/conversations/{id}/messages`` until the reply carries the marker. Measured from
sending the publish request to receiving that reply; also the publish request alone, and how
many customer requests were answered from the old version meanwhile (expected: none, since a
turn that arrives while the new index is built waits for it).

    .venv/bin/python bench/publish_latency.py [--rounds 20] [--kb bench/out/covid/kb.jsonl]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _common import REPO, footer, header, p50_p95, percentile

CHATBOT = Path(sys.executable).parent / "chatbot"
EMAIL = "bench.editor@example.com"
PASSWORD = "bench password 1234"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run([str(CHATBOT), *args], env=env, input=stdin, capture_output=True,
                          text=True, timeout=600)
    if proc.returncode:
        raise SystemExit(f"chatbot {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout


def wait_healthy(url: str, server: subprocess.Popen[bytes], timeout: float = 300) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if server.poll() is not None:
            raise SystemExit("the server stopped while starting; see its log above")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the server did not answer /healthz within {timeout:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="Measured publishes.")
    parser.add_argument("--kb", type=Path, help="Knowledge-base file(s) instead of the demo KB.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    header("Publish → first customer answer with the new text (live server)", torch_threads=False)
    data = Path(tempfile.mkdtemp(prefix="publish-bench-")) / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATBOT_")}
    env.update(CHATBOT_DATA_DIR=str(data), CHATBOT_GENERATOR="scripted", HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", CHATBOT_RATE_LIMIT="0",
               CHATBOT_DEMO_KB="false" if args.kb else "true")
    if args.kb:
        cli(env, "kb", "import", str(args.kb))
    cli(env, "user", "add", EMAIL, "--role", "editor", "--password-stdin", stdin=PASSWORD + "\n")
    token = cli(env, "token", "create", EMAIL).strip().splitlines()[-1]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([str(CHATBOT), "serve", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, cwd=REPO)
    try:
        print(f"server ready in {wait_healthy(url, server):.1f} s", flush=True)
        run_rounds(url, token, args.rounds, random.Random(args.seed))
    finally:
        server.terminate()
        server.wait(timeout=30)
    footer()


def answers_itself(http: httpx.Client, cid: str, entry: dict[str, str]) -> bool:
    reply = http.post(f"/api/v1/conversations/{cid}/messages", json={"text": entry["question"]})
    return reply.raise_for_status().json()["text"] == entry["answer"]


def run_rounds(url: str, token: str, rounds: int, rng: random.Random) -> None:
    staff = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, timeout=120) as http:
        listed = http.get("/api/v1/staff/entries", headers=staff).raise_for_status().json()
        cid = http.post("/api/v1/conversations", json={}).raise_for_status().json()["id"]
        # Only entries whose own question is answered with their own text (the fast path to
        # that entry): near-duplicate questions in a big KB may answer from a neighbour.
        entries = [e for e in rng.sample(listed, min(len(listed), 40)) if answers_itself(http, cid, e)]
        print(f"knowledge base: {len(listed)} FAQ entries ({len(entries)} of 40 sampled answer "
              f"their own question); {rounds} rounds", flush=True)
        total_ms, publish_ms, stale_counts, asks = [], [], [], []
        for i in range(rounds + 1):  # round 0 warms up (first publish, connection)
            entry = rng.choice(entries)
            marker = f"[rev {i} {rng.getrandbits(32):08x}]"
            body = {**entry, "answer": f"{entry['answer']} {marker}"}
            http.put(f"/api/v1/staff/entries/{entry['id']}", json=body,
                     headers=staff).raise_for_status()
            question = {"text": entry["question"]}
            started = time.perf_counter()
            published = http.post("/api/v1/staff/publish", json={}, headers=staff)
            publish_done = time.perf_counter()
            published.raise_for_status()
            stale = 0
            while True:
                reply = http.post(f"/api/v1/conversations/{cid}/messages", json=question)
                reply.raise_for_status()
                if marker in reply.json()["text"]:
                    break
                stale += 1
                if time.perf_counter() - started > 60:
                    raise SystemExit(f"round {i}: no answer with the new text within 60 s")
            done = time.perf_counter()
            if i == 0:
                continue
            total_ms.append((done - started) * 1000)
            publish_ms.append((publish_done - started) * 1000)
            stale_counts.append(stale)
            asks.append(stale + 1)
        status = http.get("/api/v1/staff/publish/status", headers=staff).json()
    print(f"publish → first new answer: {p50_p95(total_ms)}  max {max(total_ms):.1f} ms")
    print(f"publish request alone:      {p50_p95(publish_ms)}")
    print(f"customer answers from the old version after publish returned: {sum(stale_counts)} "
          f"of {sum(asks)}")
    print(f"last index build after publish: {status['last_build_seconds'] * 1000:.1f} ms "
          f"(background thread)")
    print(json.dumps({"rounds": rounds, "kb_entries": len(listed),
                      "publish_to_answer_ms_p50": round(percentile(total_ms, 50), 1),
                      "publish_to_answer_ms_p95": round(percentile(total_ms, 95), 1),
                      "publish_to_answer_ms_max": round(max(total_ms), 1),
                      "stale_answers": sum(stale_counts)}))


if __name__ == "__main__":
    main()
