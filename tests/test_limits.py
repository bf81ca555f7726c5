"""Limits and bad input on the customer API: rate limits (429 + Retry-After), body size (413),
invalid UTF-8 and control characters (400), conversation length (409), unknown ids (404).

Each refusal uses the one error shape and leaves what is stored exactly as it was.
"""

from __future__ import annotations

import time

import pytest
from api_helpers import assert_error, module_services
from fastapi.testclient import TestClient
from helpers import Clock

from chatbot.ratelimit import RateLimiter
from chatbot.settings import Settings
from ui.app import create_app

API = "/api/v1/conversations"
SHOP = "https://shop.example.com"


# The limiter itself -------------------------------------------------------------------------


def test_the_contract_default_is_60_a_minute():
    assert Settings().rate_limit == 60


def test_a_burst_of_the_limit_passes_then_one_request_per_interval():
    clock = Clock()
    limiter = RateLimiter({"conversation": 6}, clock=clock)
    key = [("conversation", "a")]
    assert all(limiter.check(key).allowed for _ in range(6))
    refused = limiter.check(key)
    assert not refused.allowed and refused.limit == 6
    assert refused.retry_after == pytest.approx(10.0)  # 60 s / 6
    assert refused.retry_after_seconds == 10
    clock.now += 9.9
    assert not limiter.check(key).allowed
    clock.now += 0.2
    assert limiter.check(key).allowed
    assert not limiter.check(key).allowed  # one earned, one spent
    clock.now += 60
    assert all(limiter.check(key).allowed for _ in range(6))


def test_keys_are_independent_and_a_refusal_counts_nowhere():
    clock = Clock()
    limiter = RateLimiter({"conversation": 2, "ip": 3}, clock=clock)
    assert limiter.check([("ip", "1.2.3.4"), ("conversation", "a")]).allowed
    assert limiter.check([("ip", "1.2.3.4"), ("conversation", "a")]).allowed
    refused = limiter.check([("ip", "1.2.3.4"), ("conversation", "a")])
    assert not refused.allowed and refused.key == "conversation:a"
    # The refused request did not use the address's third request.
    assert limiter.check([("ip", "1.2.3.4"), ("conversation", "b")]).allowed
    refused = limiter.check([("ip", "1.2.3.4"), ("conversation", "c")])
    assert not refused.allowed and refused.key == "ip:1.2.3.4"
    assert limiter.check([("ip", "5.6.7.8"), ("conversation", "c")]).allowed


def test_zero_turns_a_kind_off_and_stale_keys_are_pruned():
    clock = Clock()
    limiter = RateLimiter({"conversation": 0, "ip": 1}, clock=clock, max_keys=10)
    assert all(limiter.check([("conversation", "a")]).allowed for _ in range(100))
    for i in range(30):
        assert limiter.check([("ip", f"10.0.0.{i}")]).allowed
        clock.now += 61
    assert len(limiter) <= 11
    assert not RateLimiter({"ip": 0}).enabled


# Over HTTP ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def limited(tmp_path_factory, shared_embedding_model, kb_template):
    """5 requests a minute per conversation, 8 per address."""
    with module_services(
        tmp_path_factory.mktemp("limited") / "data", kb_template,
        rate_limit=5, rate_limit_per_ip=8, allowed_origins=SHOP,
    ) as services:
        yield services


@pytest.fixture(scope="module")
def strict(tmp_path_factory, shared_embedding_model, kb_template):
    """No rate limit; small bodies (2 KiB) and conversations of 3 customer messages."""
    with module_services(
        tmp_path_factory.mktemp("strict") / "data", kb_template,
        rate_limit=0, max_body_bytes=2048, max_conversation_turns=3,
    ) as services:
        with TestClient(create_app(services)) as client:
            yield services, client


def stored(services, cid):
    return [(m.role, m.content) for m in services.conversations.messages(cid)]


def test_rate_limit_per_conversation_then_per_address(limited):
    a = limited.chat.start_conversation()
    b = limited.chat.start_conversation()
    with TestClient(create_app(limited)) as client:
        start = time.monotonic()
        for i in range(5):
            ok = client.post(f"{API}/{a}/messages", json={"text": f"Delivery time {i}?"})
            assert ok.status_code == 200, ok.text
        refused = client.post(f"{API}/{a}/messages", json={"text": "One more?"})
        # 5 a minute: the next one comes back 12 s after the first, less the time they took.
        wait = int(refused.headers["retry-after"])
        assert 12 - (time.monotonic() - start) - 1 <= wait <= 12
        body = assert_error(refused, 429, "this conversation", "5 a minute", f"wait {wait} seconds")
        assert body["status"] == 429
        assert [c for r, c in stored(limited, a) if r == "user"] == [
            f"Delivery time {i}?" for i in range(5)
        ]
        # Another conversation from the same address still has room, up to the address's 8.
        assert client.get(f"{API}/{b}").status_code == 200
        assert client.get(f"{API}/{b}").status_code == 200
        assert client.get(f"{API}/{b}").status_code == 200
        assert_error(client.get(f"{API}/{b}"), 429, "your address", "8 a minute")


def test_starting_conversations_counts_per_address(limited):
    with TestClient(create_app(limited)) as client:
        for _ in range(5):
            assert client.post(API, json={}).status_code == 200
        response = client.post(API, json={})
        assert_error(response, 429, "your address", "5 a minute")
        assert int(response.headers["retry-after"]) >= 1


def test_openai_user_and_header_share_the_conversation_budget(limited):
    from ui.openai_api import user_conversation_id

    with TestClient(create_app(limited)) as client:
        ask = {"messages": [{"role": "user", "content": "How long does delivery take?"}],
               "user": "customer-7"}
        for _ in range(3):
            assert client.post("/v1/chat/completions", json=ask).status_code == 200
        cid = user_conversation_id("customer-7")
        headers = {"X-Conversation-Id": cid}
        assert client.get(f"{API}/{cid}").status_code == 200
        assert client.post("/v1/chat/completions", json={"messages": ask["messages"]},
                           headers=headers).status_code == 200
        assert_error(client.post("/v1/chat/completions", json=ask), 429, "this conversation")


def test_a_refused_widget_request_carries_cors_headers(limited):
    cid = limited.chat.start_conversation()
    with TestClient(create_app(limited)) as client:
        origin = {"Origin": SHOP}
        for _ in range(5):
            assert client.get(f"{API}/{cid}", headers=origin).status_code == 200
        refused = client.get(f"{API}/{cid}", headers=origin)
        assert_error(refused, 429)
        assert refused.headers["access-control-allow-origin"] == SHOP
        assert "retry-after" in refused.headers["access-control-expose-headers"].lower()
        # A preflight is not counted and not refused.
        preflight = client.options(f"{API}/{cid}", headers={
            **origin, "Access-Control-Request-Method": "POST"})
        assert preflight.status_code == 204


def test_waiting_retry_after_lets_the_client_in_again(tmp_path, shared_embedding_model,
                                                      kb_template):
    with module_services(tmp_path / "data", kb_template, rate_limit=60) as services:
        cid = services.chat.start_conversation()
        with TestClient(create_app(services)) as client:
            # 60 at once, then one a second: a slow machine earns a few back while it sends.
            start, answers = time.monotonic(), []
            while len(answers) < 200 and (not answers or answers[-1].status_code != 429):
                answers.append(client.get(f"{API}/{cid}"))
            elapsed = time.monotonic() - start
            codes = [a.status_code for a in answers]
            assert codes[-1] == 429, "the limit never refused"
            assert codes[:-1] == [200] * (len(codes) - 1)
            assert 60 <= len(codes) - 1 <= 60 + elapsed + 1, (len(codes), elapsed)
            assert answers[-1].headers["retry-after"] == "1"
            time.sleep(1.05)
            assert client.get(f"{API}/{cid}").status_code == 200


def test_rate_limit_zero_turns_limits_off(strict):
    services, client = strict
    cid = services.chat.start_conversation()
    assert all(client.get(f"{API}/{cid}").status_code == 200 for _ in range(80))


def test_unguarded_pages_are_not_rate_limited(limited):
    with TestClient(create_app(limited)) as client:
        assert all(client.get("/healthz").status_code == 200 for _ in range(20))


# Body size, encoding, characters ------------------------------------------------------------


def test_a_body_over_the_limit_is_413_and_stores_nothing(strict):
    services, client = strict
    cid = services.chat.start_conversation()
    big = {"text": "x" * 3000}
    assert_error(client.post(f"{API}/{cid}/messages", json=big), 413, "limit is 2,048 bytes")
    assert_error(client.post(API, json={"history": [{"role": "user", "content": "y" * 4000}]}),
                 413)

    def chunks():  # no Content-Length: the body is counted as it arrives
        for _ in range(10):
            yield b"x" * 500

    chunked = client.post(f"{API}/{cid}/messages", content=chunks(),
                          headers={"Content-Type": "application/json"})
    assert_error(chunked, 413, "larger than that")
    assert stored(services, cid) == []
    assert client.post(f"{API}/{cid}/messages", json={"text": "Delivery time?"}).status_code == 200


def test_invalid_utf8_is_a_clear_400(strict):
    services, client = strict
    cid = services.chat.start_conversation()
    response = client.post(f"{API}/{cid}/messages", content=b'{"text": "caf\xe9 au lait"}',
                           headers={"Content-Type": "application/json"})
    assert_error(response, 400, "not valid UTF-8", "0xe9", "offset 13")
    completions = client.post("/v1/chat/completions", content=b'{"messages": [\xff]}',
                              headers={"Content-Type": "application/json"})
    assert_error(completions, 400, "not valid UTF-8")
    assert stored(services, cid) == []


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ('{"text": "hello\\u0000world"}', "control character (U+0000"),
        ('{"text": "\\u001b[31mred"}', "U+001B"),
        ('{"text": "bell \\u0007"}', "position 6"),
        ('{"text": "\\ud800 alone"}', "unpaired surrogate"),
        ('{"text": "c1 \\u0085 next line"}', "U+0085"),
    ],
)
def test_control_characters_and_surrogates_are_refused(strict, raw, needle):
    services, client = strict
    cid = services.chat.start_conversation()
    headers = {"Content-Type": "application/json"}
    assert_error(client.post(f"{API}/{cid}/messages", content=raw, headers=headers), 400, needle)
    history = raw.replace('{"text": ', '{"history": [{"role": "user", "content": ').replace(
        "}", "}]}")
    assert_error(client.post(API, content=history, headers=headers), 400, "history[0].content")
    assert stored(services, cid) == []


def test_ordinary_text_with_tabs_line_breaks_and_emoji_is_kept(strict):
    services, client = strict
    cid = services.chat.start_conversation()
    text = "Two lines\r\nand a\ttab, caf\u00e9, \U0001F469\u200D\U0001F4BB"
    assert client.post(f"{API}/{cid}/messages", json={"text": text}).status_code == 200
    assert stored(services, cid)[0] == ("user", "Two lines\nand a\ttab, café, 👩‍💻")


# Conversation length, unknown ids ---------------------------------------------------------------


def test_a_full_conversation_is_refused_with_409_and_keeps_everything(strict):
    services, client = strict
    cid = services.chat.start_conversation()
    for i in range(3):
        assert client.post(f"{API}/{cid}/messages", json={"text": f"Delivery {i}?"}).status_code == 200
    before = stored(services, cid)
    refused = client.post(f"{API}/{cid}/messages", json={"text": "And another?"})
    assert_error(refused, 409, "limit of 3 messages", "start a new conversation")
    streamed = client.post(f"{API}/{cid}/messages", json={"text": "And another?"},
                           headers={"Accept": "text/event-stream"})
    assert_error(streamed, 409)
    assert stored(services, cid) == before and len(before) == 6
    # A person can still be asked for, and a new conversation works.
    assert client.post(f"{API}/{cid}/handoff").status_code == 200
    fresh = client.post(API, json={}).json()["id"]
    assert client.post(f"{API}/{fresh}/messages", json={"text": "Delivery?"}).status_code == 200


def test_history_longer_than_the_conversation_limit_is_refused(strict):
    services, client = strict
    history = [{"role": r, "content": f"turn {i}"} for i in range(4) for r in ("user", "assistant")]
    assert_error(client.post(API, json={"history": history}), 400, "4 customer messages")


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("POST", "/messages", {"text": "hi"}),
        ("POST", "/feedback", {"message_id": 1, "rating": "up"}),
        ("POST", "/handoff", None),
    ],
)
def test_unknown_conversations_are_404_and_not_created(strict, method, suffix, body):
    services, client = strict
    response = client.request(method, f"{API}/never-started{suffix}", json=body)
    assert_error(response, 404, "never-started")
    assert not services.conversations.exists("never-started")


def test_unknown_message_id_in_feedback_is_404(strict):
    services, client = strict
    cid = services.chat.start_conversation()
    response = client.post(f"{API}/{cid}/feedback", json={"message_id": 987654, "rating": "up"})
    assert_error(response, 404, "987654")
