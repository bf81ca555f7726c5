"""The web app: FastAPI routes beside the Gradio chat page, driven with a real HTTP client."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from api_helpers import LiveServer
from fastapi.testclient import TestClient
from gradio_client import Client
from gradio_client.exceptions import AppError
from sqlalchemy import text

from chatbot.conversations import Message
from ui.app import create_app
from ui.chat_page import THINKING, bubble, shown_sources


@pytest.fixture
def client(make_services):
    with TestClient(create_app(make_services())) as client:
        yield client


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"ok": True}


def test_root_serves_the_gradio_chat_page(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "<html" in page.lower()
    assert "gradio" in page.lower()
    assert "Support chat" in page


def test_the_page_is_titled_with_the_shop_and_loads_nothing_from_elsewhere(make_services):
    with TestClient(create_app(make_services(shop_name="Acme & Sons"))) as client:
        page = client.get("/").text
    assert "Acme &amp; Sons · Support chat" in page
    assert "fonts.googleapis" not in page and "cdn." not in page


# The page's rendering: every text from the server reaches the Chatbot escaped.


def stored(role: str, content: str, **fields: Any) -> Message:
    return Message(id=7, role=role, content=content, created_at=datetime(2025, 1, 1), **fields)


def test_every_text_is_escaped_before_it_reaches_the_chatbot():
    markup = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    answer = stored(
        "assistant", markup, decision="answer",
        sources=[{"id": "a", "title": f"Title {markup}", "score": 0.9}],
    )
    shown = [
        bubble(stored("user", markup), {}, last=False),
        bubble(answer, {"a": f"Text {markup}"}, last=True),
        bubble(stored("agent", markup, meta={"agent_name": "<b>Sam</b>"}), {}, last=True),
    ]
    for message in shown:
        unsafe = message["content"].replace('<details class="source">', "").replace(
            "</details>", "").replace("<summary>", "").replace("</summary>", "")
        assert "<" not in unsafe, message["content"]
    assert shown[1]["content"].count("&lt;script&gt;") == 3  # answer, source title, source text
    assert shown[2]["content"].startswith("**&lt;b&gt;Sam&lt;/b&gt; · support team**")


def test_a_clarifying_question_offers_its_candidates_only_while_it_is_the_last_message():
    candidates = [{"id": "a", "title": "How do I reset my password?", "score": 0.4},
                  {"id": "b", "title": "How do I create an account?", "score": 0.39}]
    question = stored("assistant", "Do you mean ...", decision="clarify", sources=candidates)
    assert bubble(question, {}, last=True)["options"] == [
        {"value": "How do I reset my password?", "label": "How do I reset my password?"},
        {"value": "How do I create an account?", "label": "How do I create an account?"},
    ]
    assert "options" not in bubble(question, {}, last=False)
    assert "<details" not in bubble(question, {}, last=True)["content"]


def test_sources_shown_are_few_distinct_and_close_to_the_best():
    sources = [{"id": "a", "title": "A", "score": 0.9}, {"id": "a2", "title": "A", "score": 0.85},
               {"id": "b", "title": "B", "score": 0.8}, {"id": "c", "title": "C", "score": 0.75},
               {"id": "d", "title": "D", "score": 0.74}, {"id": "e", "title": "E", "score": 0.5}]
    assert [s["id"] for s in shown_sources(sources)] == ["a", "b", "c"]
    assert shown_sources([]) == []


# The page driven through Gradio's own client against a live server.


def test_a_turn_streams_then_shows_the_stored_answer_with_sources(make_services):
    services = make_services()
    with LiveServer(create_app(services)) as server:
        client = Client(server.url + "/", verbose=False)
        job = client.submit("How long does delivery take?", None, api_name="/send")
        updates = list(job)
        client.close()
    first, last = updates[0], updates[-1]
    assert [m["role"] for m in first[0]] == ["user", "assistant"], "the question shows at once"
    assert first[0][1]["content"][0]["text"] == THINKING
    cid = last[-1]
    messages = services.chat.conversation(cid).messages
    assert [m.role for m in messages] == ["user", "assistant"]
    shown = last[0]["value"]
    answer = shown[1]["content"][0]["text"]
    assert answer.startswith(messages[1].content)
    assert '<summary>Source: How long does delivery take?</summary>' in answer
    assert last[0]["feedback_value"] == [None]
    assert last[-2] == "", "the message box is emptied"


def test_a_message_that_is_too_long_is_refused_and_kept_in_the_box(make_services):
    services = make_services(max_message_chars=20)
    with LiveServer(create_app(services)) as server:
        client = Client(server.url + "/", verbose=False)
        with pytest.raises(AppError, match="the limit is 20"):
            client.predict("x" * 30, None, api_name="/send")
        client.close()
    with services.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM messages")).scalar_one() == 0
