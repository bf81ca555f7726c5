"""Rate-limit check latency: what one customer-API request pays for its limit, by store.

``memory`` is each process's own table; ``database`` is the ``rate_limits`` table that every
server process on one database shares (README, Scale-out): one transaction per request that
locks the request's keys. Each round checks a request against its address and its conversation
(two keys, as the middleware does), for ``--clients`` distinct clients in turn, one thread, then
``--threads`` threads at once (as many requests in flight on several nodes).

    .venv/bin/python bench/ratelimit_latency.py                      # memory and a SQLite file
    .venv/bin/python bench/ratelimit_latency.py --database-url postgresql+psycopg://...
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import footer, header, p50_p95

from chatbot.db import make_engine, upgrade
from chatbot.ratelimit import DatabaseRateLimiter, RateLimiter

LIMITS = {"conversation": 60, "client": 60, "ip": 300}


def timed(limiter: RateLimiter | DatabaseRateLimiter, n: int, clients: int,
          threads: int) -> list[float]:
    def one(i: int) -> float:
        keys = [("ip", f"10.0.{i % clients // 250}.{i % 250}"), ("conversation", f"c{i % clients}")]
        start = time.perf_counter()
        limiter.check(keys)
        return (time.perf_counter() - start) * 1000

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(n)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary folder")
    parser.add_argument("--n", type=int, default=2000, help="checks per run (default 2000)")
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args(argv)
    header("rate-limit check latency", torch_threads=False)
    with tempfile.TemporaryDirectory(prefix="bench-ratelimit-") as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'chatbot.db'}"
        engine = make_engine(url)
        upgrade(engine)
        stores = [("memory", RateLimiter(LIMITS)),
                  (f"database ({engine.dialect.name})", DatabaseRateLimiter(engine, LIMITS))]
        for name, limiter in stores:
            timed(limiter, 50, args.clients, 1)  # connections opened, tables cached
            for threads in (1, args.threads):
                got = timed(limiter, args.n, args.clients, threads)
                print(f"{name:22s} threads={threads:<2d} {p50_p95(got)}", flush=True)
        engine.dispose()
    footer()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
