"""HTTP API round trip on a running server: time to the first server-sent event, and in total.

Start the server first (it loads the models once), e.g.::

    CHATBOT_DATA_DIR=$(mktemp -d) .venv/bin/chatbot serve --port 7871 &

then run ``.venv/bin/python bench/api_latency.py --url http://127.0.0.1:7871``.

Each request opens a new conversation (not timed), then sends one demo-FAQ question text
exactly as written in ``knowledge/demo/faq.jsonl`` (a fast-path answer: the entry's own text,
no language model) to ``POST /api/v1/conversations/{id}/messages`` with
``Accept: text/event-stream``, over one keep-alive connection. Timed from sending the request
to the first complete event, and to the ``final`` event. Only loopback servers are measured.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import time
from pathlib import Path
from urllib.parse import urlsplit

from _common import REPO, EventStream, footer, header, p50_p95

DEMO_FAQ = REPO / "knowledge" / "demo" / "faq.jsonl"


def loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def questions(path: Path) -> list[str]:
    return [json.loads(line)["question"] for line in path.read_text().splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:7860", help="A loopback server.")
    parser.add_argument("--n", type=int, default=50, help="Measured requests.")
    parser.add_argument("--warmup", type=int, default=3, help="Unmeasured requests first.")
    parser.add_argument("--faq", type=Path, default=DEMO_FAQ, help="JSONL with 'question's.")
    args = parser.parse_args()
    if not loopback(args.url):
        parser.error(f"{args.url} is not a loopback address; this benchmark only targets 127.0.0.1")

    import httpx

    header("API latency: first SSE event and full reply (fast path)", torch_threads=False)
    texts = questions(args.faq)
    api = args.url.rstrip("/") + "/api/v1/conversations"
    first_ms: list[float] = []
    total_ms: list[float] = []
    server_ms: list[float] = []
    fast = 0
    with httpx.Client(timeout=60) as client:
        for i in range(args.warmup + args.n):
            text = texts[i % len(texts)]
            cid = client.post(api, json={}).raise_for_status().json()["id"]
            started = time.perf_counter()
            stream = EventStream()
            with client.stream(
                "POST",
                f"{api}/{cid}/messages",
                json={"text": text},
                headers={"Accept": "text/event-stream"},
            ) as response:
                response.raise_for_status()
                for line in response.iter_lines():
                    stream.feed(line)
            ended = time.perf_counter()
            first, final = stream.first, stream.final
            if first is None or final is None:
                raise SystemExit(f"no complete event stream for {text!r}")
            if i < args.warmup:
                continue
            first_ms.append((first - started) * 1000)
            total_ms.append((ended - started) * 1000)
            server_ms.append(final["latency_ms"])
            fast += final["decision"] == "answer" and final["grounded"] is None
    print(f"server: {args.url}; questions: {args.faq.relative_to(REPO)} (question texts)")
    print(f"fast-path answers: {fast}/{args.n}")
    print(f"first SSE event     {p50_p95(first_ms)}")
    print(f"final event         {p50_p95(total_ms)}")
    print(f"server latency_ms   {p50_p95(server_ms)}")
    footer()


if __name__ == "__main__":
    main()
