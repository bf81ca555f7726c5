"""Monitoring with real parts: /readyz, Prometheus /metrics, request ids in JSON logs, and the
security headers of pages."""

from __future__ import annotations

import io
import json
import logging

import pytest
from api_helpers import assert_error
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine

from chatbot.generation.scripted import ScriptedGenerator
from chatbot.logs import configure_logging
from chatbot.settings import Settings
from ui.app import create_app

API = "/api/v1/conversations"
SHOP = "https://shop.example.com"


def samples(client, **headers) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(metrics, name, **labels) -> float:
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


def test_readyz_reports_each_check(make_services):
    services = make_services()
    with TestClient(create_app(services)) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200
        body = ready.json()
        assert body["ok"] is True
        assert set(body["checks"]) == {"database", "embedding_model", "index", "answer_model"}
        assert body["checks"]["index"] == "ok (version 1)"
        assert client.get("/healthz").json() == {"ok": True}


def test_readyz_is_503_before_the_index_is_loaded(make_services):
    services = make_services(kb=False)  # nothing published, no index in memory yet
    with TestClient(create_app(services)) as client:
        assert_error(client.get("/readyz"), 503, "Not ready", "index: not loaded yet")
        services.retriever.index()
        assert client.get("/readyz").status_code == 200


def test_readyz_is_503_when_the_database_is_unreachable(make_services, tmp_path):
    services = make_services()
    good = services.engine
    services.engine = create_engine(f"sqlite:///{tmp_path}/no/such/dir/chatbot.db")
    try:
        with TestClient(create_app(services)) as client:
            assert_error(client.get("/readyz"), 503, "database: unreachable")
            assert client.get("/healthz").status_code == 200  # alive, just not ready
    finally:
        services.engine.dispose()
        services.engine = good


def test_metrics_count_turns_handoffs_tokens_and_rate_limits(make_services):
    generator = ScriptedGenerator()
    services = make_services(generator, fast_path_threshold=1.5, rate_limit=3)
    with TestClient(create_app(services)) as client:
        cid = client.post(API, json={}).json()["id"]
        generator.enqueue("Delivery takes 3 to 5 working days.")
        turn = client.post(f"{API}/{cid}/messages", json={"text": "How long does delivery take?"})
        assert turn.status_code == 200
        assert client.post(f"{API}/{cid}/handoff").status_code == 200
        assert client.get(f"{API}/{cid}").status_code == 200
        assert client.get(f"{API}/{cid}").status_code == 429  # its 4th request in a minute
        m = samples(client)
    assert value(m, "chatbot_turns_total", decision="answer") == 1
    assert value(m, "chatbot_turn_latency_seconds_count", decision="answer") == 1
    assert value(m, "chatbot_handoffs_total", reason="customer_request") == 1
    assert value(m, "chatbot_generated_tokens_total") > 0
    assert value(m, "chatbot_rate_limited_total", limit="conversation") == 1
    assert value(m, "chatbot_kb_version") == 1
    route = "/api/v1/conversations/{conversation_id}/messages"
    assert value(m, "chatbot_http_requests_total", method="POST", route=route, status="200") == 1
    assert value(m, "chatbot_http_request_duration_seconds_count", method="POST", route=route) == 1
    # Ids never become labels.
    assert not any(cid in str(labels) for _, labels in m)


def test_metrics_token_protects_metrics(make_services):
    services = make_services(metrics_token="s3cret-token")
    with TestClient(create_app(services)) as client:
        assert_error(client.get("/metrics"), 401, "CHATBOT_METRICS_TOKEN")
        assert_error(client.get("/metrics", headers={"Authorization": "Bearer nope"}), 401)
        samples(client, Authorization="Bearer s3cret-token")


def test_request_ids_are_echoed_and_on_every_log_line(make_services):
    services = make_services()
    stream = io.StringIO()
    root, access = logging.getLogger(), logging.getLogger("uvicorn.access")
    before = (list(root.handlers), root.level, access.disabled)
    handler = configure_logging(Settings(), stream=stream)
    try:
        with TestClient(create_app(services)) as client:
            given = client.post(API, json={}, headers={"X-Request-Id": "req-abc.123"})
            assert given.headers["x-request-id"] == "req-abc.123"
            fresh = client.get("/healthz")
            bad = client.get("/healthz", headers={"X-Request-Id": "no spaces allowed"})
            assert len(fresh.headers["x-request-id"]) == 32
            assert bad.headers["x-request-id"] != "no spaces allowed"
            refused = client.post(f"{API}/nope/messages", json={"text": "hi"})
            assert refused.status_code == 404 and refused.headers["x-request-id"]
    finally:
        root.removeHandler(handler)
        for old in before[0]:
            root.addHandler(old)
        root.setLevel(before[1])
        access.disabled = before[2]
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    http = [line for line in lines if line["logger"] == "chatbot.http"]
    first = next(line for line in http if line.get("request_id") == "req-abc.123")
    assert first["method"] == "POST" and first["path"] == API and first["status"] == 200
    assert first["duration_ms"] >= 0
    assert any(line["status"] == 404 for line in http)


@pytest.mark.parametrize(("origins", "ancestors"), [
    ("", "frame-ancestors *"),
    (SHOP, f"frame-ancestors 'self' {SHOP}"),
])
def test_pages_carry_a_content_security_policy(make_services, origins, ancestors):
    services = make_services(allowed_origins=origins)
    with TestClient(create_app(services)) as client:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert ancestors in policy and "default-src 'self'" in policy
        assert "object-src 'none'" in policy
        assert page.headers["x-content-type-options"] == "nosniff"
        staff = client.get("/staff/login")
        assert "frame-ancestors 'none'" in staff.headers["content-security-policy"]
        api = client.post(API, json={})
        assert "content-security-policy" not in api.headers
        assert api.headers["x-content-type-options"] == "nosniff"
        widget = client.get("/widget.js")
        assert widget.status_code == 200 and "content-security-policy" not in widget.headers
