"""POST /v1/chat/completions: OpenAI's wire format, with a real HTTP client and with the
official ``openai`` client against the app served by uvicorn on loopback."""

from __future__ import annotations

import openai
import pytest
from api_helpers import LiveServer, assert_error, module_services, parse_sse
from fastapi.testclient import TestClient

from chatbot import replies
from ui.app import create_app
from ui.openai_api import user_conversation_id

URL = "/v1/chat/completions"
QUESTION = "How long does delivery take?"


@pytest.fixture(scope="module")
def services(tmp_path_factory, shared_embedding_model, kb_template):
    with module_services(
        tmp_path_factory.mktemp("openai") / "data", kb_template, max_message_chars=300
    ) as services:
        yield services


@pytest.fixture(scope="module")
def app(services):
    return create_app(services)


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="module")
def live(app):
    with LiveServer(app) as server:
        yield server


def ask(client, *messages: tuple[str, str], **body):
    payload = {"model": "anything", "messages": [{"role": r, "content": c} for r, c in messages]}
    headers = body.pop("headers", {})
    return client.post(URL, json={**payload, **body}, headers=headers)


def stored(services, cid: str) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in services.conversations.messages(cid)]


def answer_of(services, entry_id: str) -> str:
    return services.knowledge.get(entry_id).answer


# Wire format -------------------------------------------------------------------------------


def test_completion_object(client, services):
    response = ask(client, ("user", QUESTION))
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-") and isinstance(body["created"], int)
    assert body["model"] == "anything"
    (choice,) = body["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["message"] == {"role": "assistant", "content": answer_of(services,
                                                                           "delivery-time")}
    usage = body["usage"]
    assert usage["prompt_tokens"] == len(QUESTION.split())
    assert usage["completion_tokens"] == len(choice["message"]["content"].split())
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert body["decision"] == "answer" and body["sources"][0]["id"] == "delivery-time"
    cid = response.headers["x-conversation-id"]
    assert body["conversation_id"] == cid
    assert stored(services, cid) == [("user", QUESTION), ("assistant", choice["message"]["content"])]


def test_new_conversation_replays_earlier_messages_without_system(client, services):
    response = ask(
        client,
        ("system", "You are a pirate."),
        ("user", "hello"),
        ("assistant", "Hello! How can I help?"),
        ("user", QUESTION),
    )
    cid = response.headers["x-conversation-id"]
    assert stored(services, cid)[:3] == [
        ("user", "hello"),
        ("assistant", "Hello! How can I help?"),
        ("user", QUESTION),
    ]


def test_user_keeps_one_conversation(client, services):
    first = ask(client, ("user", "hello"), user="customer-42")
    cid = first.headers["x-conversation-id"]
    assert cid == user_conversation_id("customer-42")
    # The client resends the whole chat; the server's history wins, only the last is new.
    second = ask(
        client,
        ("user", "hello"),
        ("assistant", first.json()["choices"][0]["message"]["content"]),
        ("user", QUESTION),
        user="customer-42",
    )
    assert second.headers["x-conversation-id"] == cid
    assert [role for role, _ in stored(services, cid)] == ["user", "assistant"] * 2
    other = ask(client, ("user", "hello"), user="customer-43")
    assert other.headers["x-conversation-id"] != cid


def test_header_keeps_the_conversation(client, services):
    cid = client.post("/api/v1/conversations", json={}).json()["id"]
    ask(client, ("user", "hello"), headers={"X-Conversation-Id": cid})
    response = ask(client, ("user", QUESTION), headers={"X-Conversation-Id": cid}, user="ignored")
    assert response.headers["x-conversation-id"] == cid
    assert len(stored(services, cid)) == 4
    # An unknown id names a new conversation.
    fresh = ask(client, ("user", "hello"), headers={"X-Conversation-Id": "my-own-id-1"})
    assert fresh.headers["x-conversation-id"] == "my-own-id-1"


def test_content_parts_are_read_as_text(client):
    response = client.post(URL, json={"messages": [
        {"role": "user", "content": [{"type": "text", "text": QUESTION}]}
    ]})
    assert response.json()["sources"][0]["id"] == "delivery-time"
    assert response.json()["model"] == "support-chatbot"


def test_handoff_through_completions(client, services):
    response = ask(client, ("user", "I want to talk to a human"))
    assert response.json()["choices"][0]["message"]["content"] == replies.HANDOFF[
        "customer_request"
    ]
    assert response.json()["decision"] == "handoff"
    cid = response.headers["x-conversation-id"]
    assert services.conversations.get(cid).handoff_reason == "customer_request"


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"messages": []}, 422, "'messages'"),
        ({}, 422, "'messages' is required"),
        ({"messages": [{"role": "user", "content": ""}]}, 400, "empty"),
        ({"messages": [{"role": "user", "content": "x" * 301}]}, 400, "the limit is 300"),
        ({"messages": [{"role": "assistant", "content": "hi"}]}, 400, "last message"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, 422, "'messages.0.role'"),
        ({"messages": [{"role": "user", "content": "hi"}], "n": 2}, 400, "'n' must be 1"),
        ({"messages": [{"role": "user", "content": "hi"}], "stream": "maybe"}, 422, "'stream'"),
        ({"messages": [{"role": "user", "content": "hi"}], "temperature": 9}, 400, "temperature"),
    ],
)
def test_bad_requests_use_the_error_shape(client, body, status, needle):
    assert_error(client.post(URL, json=body), status, needle)
    if "stream" not in body:  # streaming requests fail the same way, before any chunk
        assert_error(client.post(URL, json={**body, "stream": True}), status, needle)


def test_bad_conversation_header_is_refused(client):
    response = ask(client, ("user", "hi"), headers={"X-Conversation-Id": "no spaces"})
    assert_error(response, 400, "conversation id")


def test_streamed_chunks(client, services):
    response = ask(client, ("user", QUESTION), stream=True,
                   stream_options={"include_usage": True})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    cid = response.headers["x-conversation-id"]
    events = [data for _, data in parse_sse(response.text)]
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == answer_of(services, "delivery-time")
    finish = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finish) == 1 and finish[0]["choices"][0]["finish_reason"] == "stop"
    assert finish[0]["conversation_id"] == cid and finish[0]["decision"] == "answer"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == len(
        text.split()
    )
    assert stored(services, cid)[-1] == ("assistant", text)


# The official client against a live server ----------------------------------------------------


def test_openai_client_non_streaming(live, services):
    client = openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="support-chatbot",
        messages=[{"role": "user", "content": QUESTION}],
        user="openai-client-user",
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == answer_of(services, "delivery-time")
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.total_tokens > 0
    assert raw.headers["x-conversation-id"] == user_conversation_id("openai-client-user")
    assert completion.model_extra["sources"][0]["id"] == "delivery-time"
    assert [m.id for m in client.models.list()] == ["support-chatbot"]


def test_openai_client_streaming(live, services):
    client = openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(
        model="support-chatbot",
        messages=[{"role": "user", "content": "How do I reset my password?"}],
        stream=True,
        extra_headers={"X-Conversation-Id": "openai-stream-1"},
    )
    pieces, finish = [], None
    for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
    assert "".join(pieces) == answer_of(services, "reset-password")
    assert finish == "stop"
    assert stored(services, "openai-stream-1")[-1] == ("assistant", "".join(pieces))


def test_openai_client_sees_errors(live):
    client = openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="support-chatbot", messages=[{"role": "assistant", "content": "hi"}]
        )
    assert info.value.status_code == 400
    # The client takes the body's "error" (our message) as the error body.
    assert "last message must be the customer's" in str(info.value.body)


def test_withdrawn_text_is_marked_in_the_stream(make_services):
    from chatbot.generation.scripted import ScriptedGenerator

    generator = ScriptedGenerator(["Passwords are reset by carrier pigeon on Tuesdays."])
    services = make_services(generator, fast_path_threshold=1.5)
    with TestClient(create_app(services)) as client:
        response = ask(client, ("user", "How do I reset my password?"), stream=True)
    chunks = [data for _, data in parse_sse(response.text)][:-1]
    (reset,) = [c for c in chunks if "reset" in c]
    replacement = reset["reset"]["text"]
    assert replacement == answer_of(services, "reset-password")
    assert reset["choices"][0]["delta"]["content"] == "\n\n" + replacement
    assert "pigeon" not in "".join(c["choices"][0]["delta"].get("content", "") for c in chunks
                                   if c["choices"])
