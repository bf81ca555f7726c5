"""Feedback on answers and handoff reasons: HTTP routes, the service and the 0003 migration."""

from __future__ import annotations

import pytest
from api_helpers import assert_error, module_services
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from chatbot.conversations import ConversationStore
from chatbot.db import current_revision, make_engine, upgrade
from chatbot.errors import InvalidInput, NotFound
from chatbot.models import FeedbackRow
from ui.app import create_app

API = "/api/v1/conversations"


@pytest.fixture(scope="module")
def services(tmp_path_factory, shared_embedding_model, kb_template, module_database):
    folder = tmp_path_factory.mktemp("feedback") / "data"
    with module_services(folder, kb_template, **module_database) as services:
        yield services


@pytest.fixture(scope="module")
def client(services):
    with TestClient(create_app(services)) as client:
        yield client


def answered(client) -> tuple[str, int, int]:
    """A conversation with one answer: (id, the user's message id, the answer's message id)."""
    cid = client.post(API, json={}).json()["id"]
    answer = client.post(f"{API}/{cid}/messages", json={"text": "How long does delivery take?"})
    user_message = client.get(f"{API}/{cid}").json()["messages"][0]
    return cid, user_message["id"], answer.json()["message_id"]


def test_rating_an_answer_is_stored_and_shown(client):
    cid, _, mid = answered(client)
    response = client.post(f"{API}/{cid}/feedback", json={"message_id": mid, "rating": "up"})
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert (body["message_id"], body["rating"], body["comment"]) == (mid, "up", None)
    shown = client.get(f"{API}/{cid}").json()["messages"][-1]["feedback"]
    assert (shown["rating"], shown["comment"]) == ("up", None)


def test_a_second_rating_replaces_the_first(client, services):
    cid, _, mid = answered(client)
    client.post(f"{API}/{cid}/feedback", json={"message_id": mid, "rating": "up"})
    again = client.post(
        f"{API}/{cid}/feedback",
        json={"message_id": mid, "rating": "down", "comment": "  Wrong country.  "},
    )
    assert (again.json()["rating"], again.json()["comment"]) == ("down", "Wrong country.")
    with services.engine.connect() as conn:
        rows = conn.execute(
            select(FeedbackRow.rating, FeedbackRow.comment).where(FeedbackRow.message_id == mid)
        ).all()
    assert [tuple(r) for r in rows] == [("down", "Wrong country.")]
    assert services.conversations.feedback(cid)[mid].rating == "down"


def test_feedback_is_only_for_this_conversations_answers(client):
    cid, user_mid, mid = answered(client)
    other, _, other_mid = answered(client)
    url = f"{API}/{cid}/feedback"
    assert_error(client.post(url, json={"message_id": 999_999, "rating": "up"}), 404, "999999")
    assert_error(client.post(url, json={"message_id": other_mid, "rating": "up"}), 404, cid)
    assert_error(client.post(url, json={"message_id": user_mid, "rating": "up"}), 400,
                 "only answers can be rated")
    assert client.get(f"{API}/{other}").json()["messages"][-1]["feedback"] is None


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"message_id": 1, "rating": "meh"}, 422, "'rating'"),
        ({"message_id": 1, "rating": "UP"}, 422, "'rating'"),
        ({"message_id": 1}, 422, "'rating' is required"),
        ({"rating": "up"}, 422, "'message_id' is required"),
        ({"message_id": "first", "rating": "up"}, 422, "'message_id'"),
        ({"message_id": 1, "rating": "up", "comment": 5}, 422, "'comment'"),
    ],
)
def test_bad_feedback_is_refused_naming_the_field(client, body, status, needle):
    cid, _, _ = answered(client)
    assert_error(client.post(f"{API}/{cid}/feedback", json=body), status, needle)


def test_comment_length_is_limited(client):
    cid, _, mid = answered(client)
    response = client.post(
        f"{API}/{cid}/feedback", json={"message_id": mid, "rating": "down", "comment": "x" * 2001}
    )
    assert_error(response, 400, "2,001 characters; the limit is 2,000")


def test_service_checks_ratings_too(services):
    chat = services.chat
    cid = chat.start_conversation()
    mid = chat.send_message(cid, "How long does delivery take?").message_id
    with pytest.raises(InvalidInput, match="'up' or 'down'"):
        chat.record_feedback(cid, mid, "sideways")
    with pytest.raises(NotFound):
        chat.record_feedback("no-such-conversation", mid, "up")
    assert chat.record_feedback(cid, mid, "up", "").comment is None


# Handoff reasons ----------------------------------------------------------------------------


def test_request_handoff_keeps_an_agent_who_has_the_conversation(services):
    chat = services.chat
    cid = chat.start_conversation()
    services.conversations.set_status(cid, "agent")
    result = chat.request_handoff(cid)
    assert result.status == "agent"
    assert services.conversations.status(cid) == "agent"
    assert services.conversations.messages(cid)[-1].content == result.text


def test_automatic_handoffs_record_their_reason(make_services):
    services = make_services(kb=False)  # nothing to answer from
    chat = services.chat
    cid = chat.start_conversation()
    result = chat.send_message(cid, "What is the airspeed of an unladen swallow?")
    assert (result.decision, result.reason) == ("handoff", "no_answer")
    assert services.conversations.get(cid).handoff_reason == "no_answer"


def test_repeated_clarification_handoff_records_its_reason(make_services):
    services = make_services(answer_threshold=1.0, clarify_threshold=0.01, max_clarifications=1)
    chat = services.chat
    cid = chat.start_conversation()
    kinds = [chat.send_message(cid, "I forgot my password") for _ in range(2)]
    assert [k.decision for k in kinds] == ["clarify", "handoff"]
    assert kinds[-1].reason in ("low_confidence", "repeated_clarification")
    conversation = services.conversations.get(cid)
    assert (conversation.status, conversation.handoff_reason) == ("waiting", kinds[-1].reason)


# Migration 0003 -----------------------------------------------------------------------------


def test_upgrade_from_0002_with_rows_adds_feedback_and_handoff_reason(database_url):
    engine = make_engine(database_url)
    try:
        upgrade(engine, "0002")
        now = "2026-01-02 03:04:05.000000"
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO conversations (id, status, visitor_id, created_at, updated_at) "
                    "VALUES ('conv-1', 'waiting', 'visitor-7', :now, :now)"
                ),
                {"now": now},
            )
            for role, content in (("user", "Where is my order?"), ("assistant", "Use the link.")):
                conn.execute(
                    text(
                        "INSERT INTO messages (conversation_id, role, content, sources, grounded, "
                        "meta, created_at) VALUES ('conv-1', :role, :content, '[]', :yes, "
                        "'{\"reason\": \"confident\"}', :now)"
                    ),
                    {"role": role, "content": content, "now": now, "yes": True},
                )

        upgrade(engine)

        assert current_revision(engine) != "0002"
        store = ConversationStore(engine)
        conversation = store.get("conv-1")
        assert (conversation.status, conversation.handoff_reason) == ("waiting", None)
        messages = store.messages("conv-1")
        assert [(m.role, m.content) for m in messages] == [
            ("user", "Where is my order?"),
            ("assistant", "Use the link."),
        ]
        assert messages[1].meta == {"reason": "confident"} and messages[1].grounded is True
        with engine.connect() as conn:
            visitor = conn.execute(text("SELECT visitor_id FROM conversations")).scalar()
        assert visitor == "visitor-7"
        # ... and the new table works on the old rows.
        store.set_feedback("conv-1", message_id=messages[1].id, rating="up")
        store.set_feedback("conv-1", message_id=messages[1].id, rating="down", comment="no")
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(FeedbackRow)).scalar() == 1
        store.hand_off("conv-1", reason="customer_request")
        assert store.get("conv-1").handoff_reason == "customer_request"
    finally:
        engine.dispose()
