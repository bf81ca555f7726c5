"""The customer HTTP API (/api/v1/conversations...) through a real app and a real HTTP client.

One app per module on the tiny shop KB (fast path on, scripted generator) and one with the
fast path off, where the scripted generator writes the answers.
"""

from __future__ import annotations

import dataclasses

import pytest
from api_helpers import assert_error, module_services, parse_sse
from fastapi.testclient import TestClient

from chatbot import replies
from chatbot.generation.scripted import ScriptedGenerator
from ui.app import create_app

ASK_KEYS = {"conversation_id", "decision", "text", "sources", "grounded", "latency_ms"}
SSE = {"Accept": "text/event-stream"}
API = "/api/v1/conversations"


@pytest.fixture(scope="module")
def services(tmp_path_factory, shared_embedding_model, kb_template):
    with module_services(
        tmp_path_factory.mktemp("api") / "data", kb_template, max_message_chars=200
    ) as services:
        yield services


@pytest.fixture(scope="module")
def client(services):
    with TestClient(create_app(services)) as client:
        yield client


@pytest.fixture(scope="module")
def generated(tmp_path_factory, shared_embedding_model, kb_template):
    """An app whose answers come from a scripted generator (no fast path)."""
    generator = ScriptedGenerator()
    with module_services(
        tmp_path_factory.mktemp("api-gen") / "data",
        kb_template,
        generator=generator,
        fast_path_threshold=1.5,
    ) as services:
        with TestClient(create_app(services)) as client:
            yield client, generator


def new_conversation(client, **body) -> str:
    response = client.post(API, json=body)
    assert response.status_code == 200, response.text
    return response.json()["id"]


# Conversations ------------------------------------------------------------------------------


def test_create_conversation_with_and_without_a_body(client):
    assert set(client.post(API, json={}).json()) == {"id"}
    assert client.post(API).status_code == 200
    a, b = new_conversation(client), new_conversation(client)
    assert a != b


def test_history_is_replayed_into_a_new_conversation(client):
    history = [
        {"role": "user", "content": "How do I reset my password?"},
        {"role": "assistant", "content": "Use the Forgot password link."},
    ]
    cid = new_conversation(client, history=history)
    body = client.get(f"{API}/{cid}").json()
    assert [(m["role"], m["content"]) for m in body["messages"]] == [
        (h["role"], h["content"]) for h in history
    ]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"history": [{"role": "robot", "content": "hi"}]}, 422, "'history.0.role'"),
        ({"history": [{"role": "user"}]}, 422, "'history.0.content' is required"),
        ({"history": [{"role": "user", "content": "  "}]}, 400, "history[0].content"),
        ({"history": [{"role": "user", "content": "x" * 201}]}, 400, "the limit is 200"),
        ({"history": "nope"}, 422, "'history'"),
    ],
)
def test_bad_history_is_refused(client, body, status, needle):
    assert_error(client.post(API, json=body), status, needle)


def test_get_conversation_lists_messages_with_details(client):
    cid = new_conversation(client)
    turn = client.post(f"{API}/{cid}/messages", json={"text": "How long does delivery take?"})
    body = client.get(f"{API}/{cid}").json()
    assert set(body) >= {"id", "status", "messages"}
    assert body["id"] == cid and body["status"] == "bot" and body["handoff_reason"] is None
    user, bot = body["messages"]
    assert (user["role"], user["content"]) == ("user", "How long does delivery take?")
    assert bot["role"] == "assistant" and bot["content"] == turn.json()["text"]
    assert bot["id"] == turn.json()["message_id"]
    assert bot["decision"] == "answer" and bot["sources"][0]["id"] == "delivery-time"
    assert bot["feedback"] is None
    for message in body["messages"]:
        assert {"id", "role", "content", "created_at", "decision", "sources"} <= set(message)
        assert "T" in message["created_at"]  # ISO 8601


def test_unknown_or_malformed_conversation_id(client):
    assert_error(client.get(f"{API}/no-such-conversation"), 404, "no-such-conversation")
    assert_error(client.get(f"{API}/bad%20id"), 400, "conversation id")
    assert_error(client.post(f"{API}/nope/messages", json={"text": "hi"}), 404, "nope")
    assert_error(client.post(f"{API}/nope/messages", json={"text": "hi"}, headers=SSE), 404)
    assert_error(client.post(f"{API}/nope/handoff"), 404, "nope")
    assert_error(
        client.post(f"{API}/nope/feedback", json={"message_id": 1, "rating": "up"}), 404, "nope"
    )


# Messages -----------------------------------------------------------------------------------


def test_message_returns_the_ask_json_object_and_message_id(client):
    cid = new_conversation(client)
    response = client.post(f"{API}/{cid}/messages", json={"text": "How long does delivery take?"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == ASK_KEYS | {"origin", "message_id"}
    assert body["origin"] in {"fast_path", "kb_only", "generated", "fallback"}
    assert body["conversation_id"] == cid
    assert body["decision"] == "answer"
    assert "2 to 4 business days" in body["text"]
    assert body["sources"][0]["id"] == "delivery-time"
    assert set(body["sources"][0]) == {"id", "title", "score"}
    assert isinstance(body["latency_ms"], float) and isinstance(body["message_id"], int)


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"text": ""}, 400, "empty"),
        ({"text": " \n\t "}, 400, "empty"),
        ({"text": "x" * 201}, 400, "201 characters; the limit is 200"),
        ({}, 422, "'text' is required"),
        ({"text": 5}, 422, "'text'"),
        ({"text": None}, 422, "'text'"),
    ],
)
def test_bad_message_text_is_refused(client, body, status, needle):
    cid = new_conversation(client)
    assert_error(client.post(f"{API}/{cid}/messages", json=body), status, needle)
    assert_error(client.post(f"{API}/{cid}/messages", json=body, headers=SSE), status, needle)
    assert client.get(f"{API}/{cid}").json()["messages"] == []


def test_malformed_json_and_wrong_body_types(client):
    cid = new_conversation(client)
    bad = client.post(
        f"{API}/{cid}/messages", content=b'{"text": ', headers={"Content-Type": "application/json"}
    )
    assert_error(bad, 400, "not valid JSON")
    assert_error(client.post(f"{API}/{cid}/messages", json=["text"]), 422, "request body")
    assert_error(client.post(f"{API}/{cid}/messages"), 422, "request body is required")


def test_sse_fast_path_streams_a_delta_then_the_final_object(client):
    cid = new_conversation(client)
    with client.stream(
        "POST", f"{API}/{cid}/messages", json={"text": "How long does delivery take?"}, headers=SSE
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = parse_sse(response.read().decode())
    names = [name for name, _ in events]
    assert names[-1] == "final" and names.count("final") == 1
    assert set(names[:-1]) == {"delta"}
    final = events[-1][1]
    assert set(final) == ASK_KEYS | {"origin", "message_id"}
    assert "".join(data["text"] for name, data in events if name == "delta") == final["text"]
    stored = client.get(f"{API}/{cid}").json()["messages"][-1]
    assert (stored["id"], stored["content"]) == (final["message_id"], final["text"])


def test_sse_generated_answer_streams_sentence_deltas(generated):
    client, generator = generated
    reply = (
        "Standard delivery within the UK takes 2 to 4 business days after dispatch. "
        "It costs £4.95."
    )
    generator.enqueue(reply)
    cid = new_conversation(client)
    response = client.post(
        f"{API}/{cid}/messages", json={"text": "How long does delivery take?"}, headers=SSE
    )
    events = parse_sse(response.text)
    deltas = [data["text"] for name, data in events if name == "delta"]
    assert len(deltas) == 2
    final = events[-1][1]
    assert events[-1][0] == "final"
    assert final["text"] == "".join(deltas) == reply
    assert final["grounded"] is True


def test_sse_reset_replaces_an_unsupported_answer(generated):
    client, generator = generated
    generator.enqueue("Passwords are reset by carrier pigeon on Tuesdays.")
    cid = new_conversation(client)
    response = client.post(
        f"{API}/{cid}/messages", json={"text": "How do I reset my password?"}, headers=SSE
    )
    events = parse_sse(response.text)
    names = [name for name, _ in events]
    assert "reset" in names and names[-1] == "final"
    reset = events[names.index("reset")][1]
    final = events[-1][1]
    assert reset["text"] == final["text"]
    assert "pigeon" not in final["text"] and final["grounded"] is False


# Handoff ------------------------------------------------------------------------------------


def test_customer_handoff_waits_for_a_person(client):
    cid = new_conversation(client)
    response = client.post(f"{API}/{cid}/handoff")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True and body["status"] == "waiting"
    assert body["text"] == replies.HANDOFF["customer_request"]
    conversation = client.get(f"{API}/{cid}").json()
    assert conversation["status"] == "waiting"
    assert conversation["handoff_reason"] == "customer_request"
    last = conversation["messages"][-1]
    assert (last["role"], last["content"], last["decision"]) == (
        "assistant", body["text"], "handoff"
    )
    assert last["id"] == body["message_id"]
    # Asking again is harmless: still waiting.
    assert client.post(f"{API}/{cid}/handoff", json={}).json()["status"] == "waiting"


def test_asking_for_a_human_in_a_message_records_the_reason(client):
    cid = new_conversation(client)
    result = client.post(f"{API}/{cid}/messages", json={"text": "I want to talk to a human"})
    assert result.json()["decision"] == "handoff"
    conversation = client.get(f"{API}/{cid}").json()
    assert (conversation["status"], conversation["handoff_reason"]) == (
        "waiting", "customer_request"
    )


# Error shape for unknown routes and methods; OpenAPI ---------------------------------------


def test_unknown_routes_and_methods_use_the_error_shape(client):
    assert_error(client.get("/api/v1/nothing-here"), 404, "/api/v1/nothing-here")
    assert_error(client.get("/v1/nothing-here"), 404)
    assert_error(client.post("/api/v2/conversations", json={}), 404)
    response = client.get(API)
    assert_error(response, 405, "GET", "POST")
    assert response.headers["allow"] == "POST"
    assert_error(client.delete(f"{API}/abc"), 405)
    assert_error(client.get("/v1/chat/completions"), 405)


def test_openapi_documents_every_route_with_its_schemas(client):
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    expected = {
        "/api/v1/conversations": {"post"},
        "/api/v1/conversations/{conversation_id}": {"get"},
        "/api/v1/conversations/{conversation_id}/messages": {"post"},
        "/api/v1/conversations/{conversation_id}/feedback": {"post"},
        "/api/v1/conversations/{conversation_id}/handoff": {"post"},
        "/v1/chat/completions": {"post"},
        "/healthz": {"get"},
    }
    for path, methods in expected.items():
        assert path in paths, path
        assert methods <= set(paths[path]), (path, set(paths[path]))
    schemas = spec["components"]["schemas"]
    assert {"Turn", "NewMessage", "FeedbackIn", "ConversationOut", "HandoffOut",
            "ChatCompletionRequest", "ChatCompletion", "ErrorBody"} <= set(schemas)
    assert {"conversation_id", "decision", "text", "sources", "grounded", "latency_ms",
            "message_id"} <= set(schemas["Turn"]["properties"])
    send = paths["/api/v1/conversations/{conversation_id}/messages"]["post"]
    assert "text/event-stream" in send["responses"]["200"]["content"]
    for path, methods in expected.items():
        if path == "/healthz":
            continue
        for method in methods:
            responses = paths[path][method]["responses"]
            for status in ("400", "404", "422"):
                ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/ErrorBody"), (path, status, ref)


def test_healthz_and_chat_page_still_served(client):
    assert client.get("/healthz").json() == {"ok": True}
    assert client.get("/").status_code == 200


# Origins ------------------------------------------------------------------------------------

SHOP = "https://shop.example"


@pytest.fixture(scope="module")
def guarded(services):
    settings = services.settings.model_copy(
        update={"allowed_origins": f"{SHOP}, https://other.example/"}
    )
    with TestClient(create_app(dataclasses.replace(services, settings=settings))) as client:
        yield client


def test_requests_without_origin_pass(guarded):
    assert guarded.post(API, json={}).status_code == 200


def test_allowed_origin_passes_with_cors_headers(guarded):
    response = guarded.post(API, json={}, headers={"Origin": SHOP})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == SHOP
    assert "origin" in response.headers["vary"].lower()
    other = guarded.post(API, json={}, headers={"Origin": "https://other.example"})
    assert other.headers["access-control-allow-origin"] == "https://other.example"


def test_same_origin_passes(guarded):
    assert guarded.post(API, json={}, headers={"Origin": "http://testserver"}).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", API),
        ("GET", f"{API}/abc"),
        ("POST", f"{API}/abc/messages"),
        ("POST", "/v1/chat/completions"),
    ],
)
def test_other_origins_are_refused(guarded, method, path):
    response = guarded.request(method, path, json={}, headers={"Origin": "https://evil.example"})
    assert_error(response, 403, "https://evil.example", "CHATBOT_ALLOWED_ORIGINS")
    assert "access-control-allow-origin" not in response.headers


def test_unguarded_paths_ignore_origin(guarded):
    assert guarded.get("/healthz", headers={"Origin": "https://evil.example"}).status_code == 200


def test_preflight(guarded):
    asks = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    ok = guarded.options(f"{API}/abc/messages", headers={"Origin": SHOP, **asks})
    assert ok.status_code == 204
    assert ok.headers["access-control-allow-origin"] == SHOP
    assert "POST" in ok.headers["access-control-allow-methods"]
    assert "content-type" in ok.headers["access-control-allow-headers"].lower()
    refused = guarded.options(f"{API}/abc/messages", headers={"Origin": "https://evil.example",
                                                               **asks})
    assert_error(refused, 403)


def test_empty_allow_list_lets_any_origin_call(client):
    response = client.post(API, json={}, headers={"Origin": "https://anywhere.example"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
