"""Many customers chatting at once with a local server: lost messages, errors, waiting times.

Each simulated customer opens a conversation, sends 3 to 6 messages one after the other (each
streamed with ``Accept: text/event-stream``, read to its ``final`` event), pauses a few seconds
between them as someone typing would (``--think``), then starts a new conversation, until
``--duration`` seconds have passed. Messages come from the demo shop's held-out eval
(``bench/out/demo/queries.jsonl``, written by ``bench/demo_heldout.py``): paraphrases, noisy
typing, follow-ups and off-topic questions, so the mix has fast-path answers, generated ones,
clarifying questions and handoffs.

At the end every conversation is read back (``GET /api/v1/conversations/{id}``): a message is
lost if the server acknowledged it (a ``final`` event) but it is not stored, or stored without
the reply that was streamed. Figures: requests by HTTP status, 5xx, lost messages, time to
the first event and to the final one (p50/p95/max), overall and by how the turn was answered
(the final event's ``origin``: fast path, generated, KB fallback; or clarify, handoff), and
the server's RSS when ready, at the end and at its highest while serving (the kernel's VmHWM,
reset when the server is ready; its peak while loading the models is printed apart).

Without ``--url`` the script starts ``chatbot serve`` itself on a free loopback port with a
throwaway data dir and the demo KB, and with rate limits off (``CHATBOT_RATE_LIMIT=0``): every
simulated customer comes from 127.0.0.1, and starting conversations counts per address, where
real customers each have their own. Only loopback servers are targeted. A 429 (from a server
given with ``--url``) is counted and waited out as its ``Retry-After`` says.

    .venv/bin/python bench/load_test.py [--customers 50] [--duration 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import BENCH, REPO, EventStream, footer, header, p50_p95
from api_latency import loopback

QUERIES = BENCH / "out" / "demo" / "queries.jsonl"


@dataclass
class Sent:
    conversation: str
    text: str
    reply: str | None = None  # the final event's text; None if never acknowledged


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    first_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    total_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    sent: list[Sent] = field(default_factory=list)


def kind_of(final: dict[str, Any]) -> str:
    """clarify, handoff, or how an answer was made (the final event's ``origin``)."""
    if final.get("decision") != "answer":
        return str(final.get("decision"))
    return {"fast_path": "fast path", "generated": "generated", "fallback": "KB fallback",
            "kb_only": "KB text (no model)"}.get(final.get("origin", ""), "answer")


def scripts(path: Path) -> list[list[str]]:
    """Conversation scripts: each follow-up case keeps its history, the rest are shuffled in."""
    singles, threads = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        case = json.loads(line)
        history = [m["content"] for m in case.get("history", []) if m.get("role") == "user"]
        if history:
            threads.append([*history, case["query"]])
        else:
            singles.append(case["query"])
    return [[q] for q in singles] + threads


async def turn(client: Any, api: str, cid: str, text: str, tally: Tally) -> bool:
    sent = Sent(cid, text)
    tally.sent.append(sent)
    started = time.perf_counter()
    stream = EventStream()
    try:
        async with client.stream(
            "POST", f"{api}/{cid}/messages", json={"text": text},
            headers={"Accept": "text/event-stream"},
        ) as response:
            tally.statuses[response.status_code] += 1
            if response.status_code != 200:
                await response.aread()
                await asyncio.sleep(float(response.headers.get("retry-after", 1)))
                return False
            async for line in response.aiter_lines():
                stream.feed(line)
    except Exception as exc:  # a dropped connection or timeout is a failure, not a crash
        tally.failures[type(exc).__name__] += 1
        return False
    finally:
        if stream.errors:
            tally.failures["error event"] += stream.errors
    first, final = stream.first, stream.final
    if final is None:
        tally.failures["no final event"] += 1
        return False
    sent.reply = final.get("text", "")
    kind = kind_of(final)
    ended = time.perf_counter()
    for key in ("all", kind):
        tally.first_ms[key].append(((first or ended) - started) * 1000)
        tally.total_ms[key].append((ended - started) * 1000)
    return final.get("decision") != "handoff"


async def customer(
    client: Any, api: str, pool: list[list[str]], stop_at: float, think: tuple[float, float],
    rng: random.Random, tally: Tally,
) -> None:
    while time.monotonic() < stop_at:
        try:
            response = await client.post(api, json={})
        except Exception as exc:
            tally.failures[type(exc).__name__] += 1
            await asyncio.sleep(1)
            continue
        tally.statuses[response.status_code] += 1
        if response.status_code != 200:
            await asyncio.sleep(float(response.headers.get("retry-after", 1)))
            continue
        cid = response.json()["id"]
        messages = [m for script in rng.sample(pool, rng.randint(2, 4)) for m in script][:6]
        for text in messages:
            if time.monotonic() >= stop_at:
                return
            if not await turn(client, api, cid, text, tally):
                break  # handed off or failed: this customer starts over
            await asyncio.sleep(rng.uniform(*think))


async def read_back(client: Any, api: str, tally: Tally) -> tuple[int, int]:
    """(acknowledged messages, of them lost): stored user text and reply checked in order."""
    by_conversation: dict[str, list[Sent]] = defaultdict(list)
    for s in tally.sent:
        if s.reply is not None:
            by_conversation[s.conversation].append(s)
    lost = 0
    for cid, sent in by_conversation.items():
        stored = (await client.get(f"{api}/{cid}")).json()["messages"]
        pairs = [(m["role"], m["content"]) for m in stored]
        at = 0
        for s in sent:
            # The stored user text may be redacted; the reply that followed it must match.
            while at < len(pairs) and pairs[at] != ("assistant", s.reply):
                at += 1
            lost += at == len(pairs)
            at = min(at + 1, len(pairs))
    return sum(len(v) for v in by_conversation.values()), lost


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(data_dir: Path, threads: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "CHATBOT_DATA_DIR": str(data_dir), "CHATBOT_RATE_LIMIT": "0",
           "CHATBOT_TORCH_THREADS": str(threads), "CHATBOT_LOG_LEVEL": "warning"}
    log = (data_dir / "server.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "chatbot", "serve", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited; see {data_dir / 'server.log'}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(1)
    proc.kill()
    raise SystemExit("the server did not become ready within 300 s")


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """The process's resident memory now, or with ``field="VmHWM"`` the most it ever held (the
    kernel's high-water mark, which no sampling interval can miss)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_high_water_mark(pid: int) -> bool:
    """Restart the kernel's VmHWM from the current RSS (Linux 4.0+), so that from here on it
    measures serving alone, not the peak of loading the models; False where not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class RssSampler(threading.Thread):
    """The server's RSS every two seconds: its peak, and its value at each full minute."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.peak_at, self.minutes = pid, 0.0, 0.0, []
        self.done = threading.Event()

    def run(self) -> None:
        start = time.monotonic()
        while not self.done.wait(2.0):
            rss = rss_mib(self.pid)
            if rss > self.peak:
                self.peak, self.peak_at = rss, time.monotonic() - start
            if time.monotonic() - start >= 60 * (len(self.minutes) + 1):
                self.minutes.append(rss)


async def run(args: argparse.Namespace, url: str) -> Tally:
    import httpx

    pool = scripts(args.queries)
    api = url.rstrip("/") + "/api/v1/conversations"
    tally = Tally()
    limits = httpx.Limits(max_connections=args.customers + 10)
    async with httpx.AsyncClient(timeout=args.timeout, limits=limits) as client:
        stop_at = time.monotonic() + args.duration
        rng = random.Random(args.seed)
        await asyncio.gather(*[
            customer(client, api, pool, stop_at, (args.think_min, args.think_max),
                     random.Random(rng.random()), tally)
            for _ in range(args.customers)
        ])
        acknowledged, lost = await read_back(client, api, tally)
    tally.failures["lost (acknowledged, not stored)"] = lost
    tally.statuses["acknowledged turns"] = acknowledged
    return tally


def report(tally: Tally, args: argparse.Namespace, rss: tuple[float, float, float] | None,
           sampler: RssSampler | None) -> None:
    codes = {k: v for k, v in tally.statuses.items() if isinstance(k, int)}
    five = sum(v for k, v in codes.items() if k >= 500)
    print(f"customers {args.customers}, {args.duration:.0f} s, think time "
          f"{args.think_min:g}-{args.think_max:g} s")
    print(f"HTTP statuses: {dict(sorted(codes.items()))}; 5xx: {five}")
    print(f"turns sent {len(tally.sent)}, acknowledged {tally.statuses['acknowledged turns']}; "
          f"failures: {dict(tally.failures)}")
    for key in ["all", *sorted(k for k in tally.first_ms if k != "all")]:
        n = len(tally.first_ms[key])
        print(f"  {key:<22} n={n:<5} first event {p50_p95(tally.first_ms[key])}   "
              f"final {p50_p95(tally.total_ms[key])}")
    if rss:
        print(f"server RSS: {rss[0]:.0f} MiB when ready, {rss[1]:.0f} MiB at the end, "
              f"{rss[2]:.0f} MiB at most (VmHWM)")
    if sampler:
        minutes = ", ".join(f"{m:.0f}" for m in sampler.minutes)
        print(f"server RSS peak {sampler.peak:.0f} MiB ({sampler.peak_at:.0f} s in); "
              f"at each minute: {minutes} MiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="A running loopback server (default: start one).")
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--duration", type=float, default=300, help="Seconds (default 300).")
    parser.add_argument("--think-min", type=float, default=3.0)
    parser.add_argument("--think-max", type=float, default=12.0)
    parser.add_argument("--timeout", type=float, default=120, help="Per-request timeout.")
    parser.add_argument("--threads", type=int, default=2, help="CHATBOT_TORCH_THREADS.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--queries", type=Path, default=QUERIES)
    args = parser.parse_args()
    if args.url and not loopback(args.url):
        parser.error(f"{args.url} is not a loopback address; this benchmark only targets it")
    if args.queries == QUERIES:
        from demo_heldout import build

        build(QUERIES.parent)
    header("load: simulated customers against a local server", torch_threads=False)
    proc = None
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        url = args.url
        if url is None:
            proc, url = start_server(Path(tmp), args.threads)
        ready_rss = rss_mib(proc.pid) if proc else None
        loading_peak = rss_mib(proc.pid, "VmHWM") if proc else None
        serving_only = reset_high_water_mark(proc.pid) if proc else False
        sampler = RssSampler(proc.pid) if proc else None
        if sampler:
            sampler.start()
        try:
            tally = asyncio.run(run(args, url))
            end_rss = rss_mib(proc.pid) if proc else None
            most_rss = rss_mib(proc.pid, "VmHWM") if proc else None
        finally:
            if sampler:
                sampler.done.set()
            if proc is not None:
                proc.terminate()
                proc.wait(30)
        report(tally, args, (ready_rss, end_rss, most_rss) if proc else None, sampler)
        if proc:
            print(f"server VmHWM while loading the models: {loading_peak:.0f} MiB; the VmHWM "
                  "above is " + ("the peak while serving (reset when ready)" if serving_only
                                 else "the process's peak, loading included (no reset here)"))
    footer()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
