"""Rate limits counted in the database, shared by the server processes on it
(``CHATBOT_RATE_LIMIT_STORE``): one allowance over several nodes, never overspent under
concurrency, pruned, and letting requests through when the database is down. On SQLite and
PostgreSQL."""

from __future__ import annotations

import logging
import threading

import pytest
from api_helpers import assert_error, module_services
from fastapi.testclient import TestClient
from helpers import Clock
from sqlalchemy import select

from chatbot.db import make_engine, upgrade
from chatbot.models import RateLimitRow
from chatbot.ratelimit import DatabaseRateLimiter
from chatbot.settings import Settings
from ui.app import create_app

API = "/api/v1/conversations"


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def test_two_nodes_on_one_database_share_one_allowance(engine):
    clock = Clock()
    a = DatabaseRateLimiter(engine, {"conversation": 6, "ip": 100}, clock=clock)
    b = DatabaseRateLimiter(engine, {"conversation": 6, "ip": 100}, clock=clock)
    keys = [("ip", "1.2.3.4"), ("conversation", "c1")]
    assert [(a if i % 2 else b).check(keys).allowed for i in range(6)] == [True] * 6
    refused = a.check(keys)
    assert not refused.allowed and refused.key == "conversation:c1"
    assert refused.retry_after == pytest.approx(10.0)
    assert not b.check(keys).allowed
    # Refusals counted nowhere: the address has spent 6 of its 100, not 8.
    with engine.connect() as conn:
        rows = dict(conn.execute(select(RateLimitRow.key, RateLimitRow.tat)).all())
    assert rows["ip:1.2.3.4"] == pytest.approx(1000.0 + 6 * 0.6)
    clock.now += 10.1
    assert b.check(keys).allowed and not a.check(keys).allowed  # one earned, one spent


def test_concurrent_requests_on_two_nodes_never_overspend(engine):
    """40 requests at one instant from 8 threads over two nodes, 10 allowed: exactly 10 pass
    (without the row locks, two nodes read the same count and both let a request through)."""
    clock = Clock()
    nodes = [DatabaseRateLimiter(engine, {"conversation": 10}, clock=clock) for _ in range(2)]
    results: list[bool] = []
    start = threading.Barrier(8)

    def client(i: int) -> None:
        start.wait()
        for _ in range(5):
            results.append(nodes[i % 2].check([("conversation", "hot")]).allowed)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 40 and sum(results) == 10


def test_rows_whose_allowance_is_whole_again_are_deleted(engine):
    clock = Clock()
    limiter = DatabaseRateLimiter(engine, {"ip": 2}, clock=clock)
    limiter.PRUNE_EVERY = 5
    for i in range(4):
        assert limiter.check([("ip", f"10.0.0.{i}")]).allowed
    assert len(limiter) == 4
    clock.now += 31  # every key's tat (now + 30 s) has passed
    assert limiter.check([("ip", "10.0.0.9")]).allowed  # the 5th check prunes
    assert len(limiter) == 1


def test_an_unreachable_database_lets_requests_through_and_says_so_once(data_dir, caplog):
    broken = make_engine(f"sqlite:///{data_dir / 'missing-dir' / 'x.db'}")  # no table in it
    limiter = DatabaseRateLimiter(broken, {"conversation": 1})
    with caplog.at_level(logging.WARNING, logger="chatbot.ratelimit"):
        assert all(limiter.check([("conversation", "a")]).allowed for _ in range(3))
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "rate limits not counted" in warnings[0]


def test_the_store_setting_defaults_to_the_database_only_where_processes_share_one(tmp_path):
    assert not Settings(data_dir=tmp_path).shared_rate_limits
    assert Settings(data_dir=tmp_path, database_url="postgresql+psycopg://db/x").shared_rate_limits
    assert Settings(data_dir=tmp_path, rate_limit_store="database").shared_rate_limits
    assert not Settings(
        data_dir=tmp_path, database_url="postgresql+psycopg://db/x", rate_limit_store="memory"
    ).shared_rate_limits
    with pytest.raises(ValueError, match="rate_limit_store"):
        Settings(data_dir=tmp_path, rate_limit_store="redis")


def test_two_servers_on_one_database_count_one_budget(tmp_path_factory, shared_embedding_model,
                                                       kb_template):
    """Two apps on one database, as two nodes behind a load balancer: the customer's 5 a
    minute are 5 in all, not 5 on each."""
    with module_services(
        tmp_path_factory.mktemp("shared-limits") / "data", kb_template,
        rate_limit=5, rate_limit_store="database",
    ) as services:
        cid = services.chat.start_conversation()
        with TestClient(create_app(services)) as a, TestClient(create_app(services)) as b:
            answers = [(a if i % 2 else b).get(f"{API}/{cid}").status_code for i in range(5)]
            assert answers == [200] * 5
            assert_error(a.get(f"{API}/{cid}"), 429, "this conversation", "5 a minute")
            assert_error(b.get(f"{API}/{cid}"), 429, "this conversation", "5 a minute")
