"""Analytics figures and transcripts on a seeded set of conversations with known values.

The seed (UTC; the range under test is 2025-03-01 .. 2025-03-03):

- ``a`` 03-01: a question answered from delivery-time (100 ms), rated up.
- ``b`` 03-01 23:59:59 a question; 03-02 00:00:01 the bot hands off (no_answer).
- ``c`` 03-02: a question answered with a clarifying question (rated down), "talk to a
  person" typed (customer_request), an agent's message, then the button again.
- ``d`` 03-03: two answers (order-tracking 300 ms, delivery-canada 200 ms), the second rated
  down.
- ``g`` 03-03: an answer (order-tracking 400 ms), then handed to a person by another path
  (handoff_reason negative_feedback, waiting_since 03-03, no handoff reply).
- ``e`` 02-28 (before the range): an answer (9999 ms) rated up at 03-01 00:00:00.
- ``f`` 03-04 00:00:00 (just after the range): a question, and a greeting reply.
"""

from __future__ import annotations

import csv
import io
import json

import pytest
from api_helpers import module_services
from staff_helpers import add_staff_accounts, staff_user
from staff_seed import Seeder, at

from chatbot.errors import Forbidden, InvalidInput, NotFound
from chatbot.staff.services import build_staff
from chatbot.staff.transcripts import TranscriptFilter
from chatbot.training.data import read_conversations


@pytest.fixture(scope="module")
def services(tmp_path_factory, shared_embedding_model, kb_template, module_database):
    folder = tmp_path_factory.mktemp("staff-reports") / "data"
    with module_services(folder, kb_template, **module_database) as services:
        yield services


@pytest.fixture(scope="module")
def staff(services):
    staff = build_staff(services)
    add_staff_accounts(staff)
    return staff


@pytest.fixture(scope="module")
def seeded(services):
    s = Seeder(services.engine)
    ids = {}
    s.conversation("a", "2025-03-01 10:00:00")
    _, ids["a1"] = s.turn("a", "2025-03-01 10:00:00", "How long does delivery take?",
                          "2 to 4 days.", decision="answer", source="delivery-time", latency=100)
    s.rate("a", ids["a1"], "up", "2025-03-01 10:01:00")

    s.conversation("b", "2025-03-01 23:59:59", status="waiting", handoff_reason="no_answer")
    ids["b_q"] = s.message("b", "2025-03-01 23:59:59", "user", "Do you sell gift cards?")
    s.message("b", "2025-03-02 00:00:01", "assistant", "Passing you on.", decision="handoff",
              reason="no_answer")

    s.conversation("c", "2025-03-02 12:00:00", status="agent", handoff_reason="customer_request")
    ids["c_q"], ids["c1"] = s.turn("c", "2025-03-02 12:00:00", "What is the warranty on boots?",
                                   "Do you mean returns or repairs?", decision="clarify",
                                   reason="ambiguous", latency=50)
    s.rate("c", ids["c1"], "down", "2025-03-02 12:00:30")
    s.turn("c", "2025-03-02 12:01:00", "talk to a person", "A colleague will join.",
           decision="handoff", reason="customer_request")
    s.message("c", "2025-03-02 12:05:00", "agent", "Hi, I'm Sam from support.")
    s.message("c", "2025-03-02 12:10:00", "assistant", "A colleague is here.", decision="handoff",
              reason="customer_request", requested=True)

    s.conversation("d", "2025-03-03 08:00:00")
    s.turn("d", "2025-03-03 08:00:00", "Where is my order?", "Use the tracking link.",
           decision="answer", source="order-tracking", latency=300)
    ids["d_q"], ids["d2"] = s.turn("d", "2025-03-03 08:01:00", "and to Canada?", "7 to 10 days.",
                                   decision="answer", source="delivery-canada", latency=200)
    s.rate("d", ids["d2"], "down", "2025-03-03 08:02:00", comment="wrong answer")

    s.conversation("g", "2025-03-03 09:00:00", status="waiting", handoff_reason="negative_feedback",
                   waiting_since=at("2025-03-03 10:00:00"))
    s.turn("g", "2025-03-03 09:00:00", "Track my parcel", "Use the tracking link.",
           decision="answer", source="order-tracking", latency=400)

    s.conversation("e", "2025-02-28 10:00:00")
    _, ids["e1"] = s.turn("e", "2025-02-28 10:00:00", "Which cards do you take?", "Visa.",
                          decision="answer", source="payment-methods", latency=9999)
    s.rate("e", ids["e1"], "up", "2025-03-01 00:00:00")

    s.conversation("f", "2025-03-04 00:00:00")
    s.message("f", "2025-03-04 00:00:00", "user", "hello")
    s.message("f", "2025-03-04 00:00:00", "assistant", "Hello! How can I help?", decision="answer",
              reason="greeting", latency=5)
    return ids


def report(staff, start, end, role="agent"):
    return staff.analytics.report(staff_user(staff, role), start, end)


def test_range_figures(staff, seeded):
    r = report(staff, "2025-03-01", "2025-03-03")
    assert (r["from"], r["to"]) == ("2025-03-01", "2025-03-03")
    assert r["conversations"] == 5  # a, b, c, d, g
    assert r["messages"] == 16  # a 2, b 2, c 6, d 4, g 2
    assert r["handoff_rate"] == 0.6  # b, c, g
    assert r["deflection_rate"] == 0.4
    assert r["handoffs_by_reason"] == {"customer_request": 1, "negative_feedback": 1, "no_answer": 1}
    assert r["handoffs"] == 3
    assert r["feedback"] == {"up": 2, "down": 2}  # e's rating is given on 03-01 00:00:00
    assert r["feedback_ratio"] == 0.5
    assert r["answers"] == 4
    assert r["latency_ms"] == {"p50": 250.0, "p95": 385.0}  # of 100, 200, 300, 400
    assert r["unanswered"] == 3  # gift cards, warranty on boots, and to Canada
    assert r["top_entries"] == [
        {"id": "order-tracking", "title": "Title of order-tracking", "answers": 2},
        {"id": "delivery-canada", "title": "Title of delivery-canada", "answers": 1},
        {"id": "delivery-time", "title": "Title of delivery-time", "answers": 1},
    ]


def test_per_day_series(staff, seeded):
    days = {d["date"]: d for d in report(staff, "2025-03-01", "2025-03-03")["days"]}
    assert list(days) == ["2025-03-01", "2025-03-02", "2025-03-03"]
    one, two, three = days.values()
    assert (one["conversations"], one["messages"], one["handoffs"]) == (2, 3, 0)
    assert (one["deflection_rate"], one["handoff_rate"]) == (1.0, 0.0)
    assert one["feedback"] == {"up": 2, "down": 0}
    assert one["latency_ms"] == {"p50": 100.0, "p95": 100.0}
    # b's handoff happens on 03-02, but b's customer wrote on 03-01 only.
    assert (two["conversations"], two["messages"], two["handoffs"]) == (1, 7, 2)
    assert (two["deflection_rate"], two["handoff_rate"]) == (0.0, 1.0)
    assert two["latency_ms"] == {"p50": None, "p95": None}
    assert two["feedback_ratio"] == 0.0
    assert (three["conversations"], three["messages"], three["handoffs"]) == (2, 6, 1)
    assert three["deflection_rate"] == 0.5
    assert three["latency_ms"] == {"p50": 300.0, "p95": 390.0}  # of 200, 300, 400
    assert [d["unanswered"] for d in days.values()] == [1, 1, 1]
    assert sum(d["handoffs"] for d in days.values()) == 3


def test_range_edges(staff, seeded):
    first = report(staff, "2025-03-01", "2025-03-01")
    assert (first["conversations"], first["messages"], first["handoffs"]) == (2, 3, 0)
    assert first["feedback"] == {"up": 2, "down": 0}
    later = report(staff, "2025-03-02", "2025-03-03")
    assert later["conversations"] == 3  # c, d, g: b's customer wrote the day before
    assert later["handoffs"] == 3  # b's handoff reply is in the range
    assert later["handoff_rate"] == 0.6667  # c and g of three
    after = report(staff, "2025-03-04", "2025-03-04")
    assert (after["conversations"], after["messages"], after["answers"]) == (1, 2, 0)
    before = report(staff, "2025-02-28", "2025-02-28")
    assert before["latency_ms"] == {"p50": 9999.0, "p95": 9999.0}
    assert before["feedback"] == {"up": 0, "down": 0}


def test_empty_range_has_no_division_by_zero(staff, seeded):
    r = report(staff, "2024-01-01", "2024-01-02")
    assert r["conversations"] == r["messages"] == r["handoffs"] == r["answers"] == 0
    assert r["deflection_rate"] is r["handoff_rate"] is r["feedback_ratio"] is None
    assert r["latency_ms"] == {"p50": None, "p95": None}
    assert r["handoffs_by_reason"] == {} and r["top_entries"] == []
    assert [d["date"] for d in r["days"]] == ["2024-01-01", "2024-01-02"]


def test_bad_ranges(staff):
    agent = staff_user(staff, "agent")
    with pytest.raises(InvalidInput, match="'from' .* is after 'to'"):
        staff.analytics.report(agent, "2025-03-03", "2025-03-01")
    with pytest.raises(InvalidInput, match="'to' must be a date written YYYY-MM-DD"):
        staff.analytics.report(agent, "2025-03-01", "03/04/2025")
    with pytest.raises(InvalidInput, match="'from' must be a date"):
        staff.analytics.report(agent, "2025-02-30", None)
    default = staff.analytics.report(agent)
    assert len(default["days"]) == 30 and default["days"][-1]["date"] == default["to"]


def test_csv_export(staff, seeded):
    text = staff.analytics.report_csv(staff_user(staff, "editor"), "2025-03-01", "2025-03-03")
    rows = list(csv.DictReader(io.StringIO(text)))
    by_date = {r["date"]: r for r in rows}
    assert [r["date"] for r in rows[:4]] == ["2025-03-01", "2025-03-02", "2025-03-03", "total"]
    total = by_date["total"]
    assert (total["conversations"], total["messages"], total["deflection_rate"]) == ("5", "16", "0.4")
    assert (total["latency_p50_ms"], total["latency_p95_ms"]) == ("250.0", "385.0")
    assert by_date["2025-03-02"]["latency_p50_ms"] == ""  # no answers that day
    assert by_date["handoffs:no_answer"]["handoffs"] == "1"
    assert by_date["top_entry:order-tracking"]["answers"] == "2"


def test_transcript_filters(staff, seeded):
    agent = staff_user(staff, "agent")

    def ids(**filters):
        page = staff.transcripts.search(agent, TranscriptFilter.parse(**filters), per_page=50)
        return sorted(item["id"] for item in page["items"])

    assert ids() == ["a", "b", "c", "d", "e", "f", "g"]
    assert ids(text="GIFT card") == ["b"]
    assert ids(text="50%") == []  # % is a literal, not a wildcard
    assert ids(start="2025-03-02", end="2025-03-02") == ["b", "c"]
    assert ids(start="2025-03-04") == ["f"]
    assert ids(decision="clarify") == ["c"]
    assert ids(feedback="down") == ["c", "d"]
    assert ids(feedback="up") == ["a", "e"]
    assert ids(feedback="none") == ["b", "f", "g"]
    assert ids(handoff="any") == ["b", "c", "g"]
    assert ids(handoff="none") == ["a", "d", "e", "f"]
    assert ids(handoff="customer_request") == ["c"]
    assert ids(handoff="negative_feedback") == ["g"]
    assert ids(status="waiting") == ["b", "g"]
    assert ids(decision="answer", feedback="down") == ["d"]
    for bad, needle in [({"decision": "maybe"}, "'decision' must be one of answer, clarify"),
                        ({"feedback": "meh"}, "'feedback' must be one of up, down, none"),
                        ({"status": "open"}, "'status' must be one of"),
                        ({"start": "yesterday"}, "'from' must be a date")]:
        with pytest.raises(InvalidInput, match=needle):
            TranscriptFilter.parse(**bad)


def test_transcript_pages_and_summary(staff, seeded):
    agent = staff_user(staff, "agent")
    first = staff.transcripts.search(agent, TranscriptFilter(), page=1, per_page=3)
    second = staff.transcripts.search(agent, TranscriptFilter(), page=3, per_page=3)
    assert first["total"] == 7 and [i["id"] for i in first["items"]] == ["f", "g", "d"]
    assert [i["id"] for i in second["items"]] == ["e"]  # oldest activity last
    found = staff.transcripts.search(agent, TranscriptFilter.parse(text="canada"))["items"][0]
    assert found["id"] == "d" and "Canada" in found["match"]
    assert found["feedback"] == {"up": 0, "down": 1} and found["first_question"] == "Where is my order?"
    with pytest.raises(InvalidInput, match="'per_page' must be between 1 and 200"):
        staff.transcripts.search(agent, TranscriptFilter(), per_page=500)


def test_one_conversation_in_full(staff, seeded):
    full = staff.transcripts.conversation(staff_user(staff, "agent"), "d")
    assert [m["role"] for m in full["messages"]] == ["user", "assistant", "user", "assistant"]
    answer = full["messages"][3]
    assert answer["decision"] == "answer" and answer["sources"][0]["id"] == "delivery-canada"
    assert answer["rating"] == "down" and answer["comment"] == "wrong answer"
    assert "rating" not in full["messages"][1]
    with pytest.raises(NotFound, match="no conversation 'nope'"):
        staff.transcripts.conversation(staff_user(staff, "agent"), "nope")


def test_export_is_read_by_training(staff, seeded, tmp_path):
    agent = staff_user(staff, "agent")
    lines = list(staff.transcripts.export_lines(agent, TranscriptFilter.parse(feedback="up")))
    assert [json.loads(line)["id"] for line in lines] == ["e", "a"]  # oldest first
    path = tmp_path / "export.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    exchanges = read_conversations(path)
    assert sorted((x.question, x.answer) for x in exchanges) == [
        ("How long does delivery take?", "2 to 4 days."), ("Which cards do you take?", "Visa."),
    ]
    everything = list(staff.transcripts.export_lines(agent, TranscriptFilter()))
    assert len(everything) == 7 and all(line.endswith("\n") for line in everything)
    c = next(json.loads(x) for x in everything if json.loads(x)["id"] == "c")
    assert "agent" in [m["role"] for m in c["messages"]] and "visitor_id" not in c


def test_roles_are_checked_by_the_services(staff, seeded):
    nobody = None
    with pytest.raises(Exception, match="Sign in first"):
        staff.analytics.report(nobody)
    # every role may read analytics and conversations (PERMISSIONS)
    for role in ("admin", "editor", "agent"):
        assert report(staff, "2025-03-01", "2025-03-01", role)["conversations"] == 2
    with pytest.raises(Forbidden):
        staff.unanswered.groups(staff_user(staff, "agent"))


# --- the staff API --------------------------------------------------------------------------

STAFF_API = "/api/v1/staff"
CONTRACT_KEYS = {"conversations", "messages", "deflection_rate", "handoff_rate",
                 "handoffs_by_reason", "feedback", "latency_ms"}


@pytest.fixture(scope="module")
def api(services, staff, seeded):
    from fastapi.testclient import TestClient

    from ui.app import create_app

    tokens = {role: staff.accounts.create_token(f"{role}@example.com")
              for role in ("admin", "editor", "agent")}
    with TestClient(create_app(services, staff)) as client:
        yield client, {role: {"Authorization": f"Bearer {t}"} for role, t in tokens.items()}


def test_api_analytics(api):
    client, headers = api
    body = client.get(f"{STAFF_API}/analytics?from=2025-03-01&to=2025-03-03",
                      headers=headers["agent"]).json()
    assert CONTRACT_KEYS <= set(body)
    assert (body["from"], body["conversations"], body["deflection_rate"]) == ("2025-03-01", 5, 0.4)
    assert body["latency_ms"] == {"p50": 250.0, "p95": 385.0} and len(body["days"]) == 3
    default = client.get(f"{STAFF_API}/analytics", headers=headers["agent"]).json()
    assert len(default["days"]) == 30
    csv_response = client.get(f"{STAFF_API}/analytics.csv?from=2025-03-01&to=2025-03-03",
                              headers=headers["editor"])
    assert csv_response.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv_response.headers["content-disposition"]
    assert csv_response.text.splitlines()[4].startswith("total,5,16,")


@pytest.mark.parametrize("query, needle", [
    ("from=2025-03-03&to=2025-03-01", "'from' (2025-03-03) is after 'to' (2025-03-01)"),
    ("from=yesterday", "'from' must be a date written YYYY-MM-DD"),
    ("to=2025-13-01", "'to' must be a date written YYYY-MM-DD"),
])
def test_api_analytics_bad_dates(api, query, needle):
    from api_helpers import assert_error

    client, headers = api
    for path in ("analytics", "analytics.csv"):
        assert_error(client.get(f"{STAFF_API}/{path}?{query}", headers=headers["agent"]), 400, needle)


def test_api_conversations(api):
    from api_helpers import assert_error

    client, headers = api
    found = client.get(f"{STAFF_API}/conversations", params={"q": "gift", "status": "waiting"},
                       headers=headers["agent"]).json()
    assert found["total"] == 1 and found["items"][0]["id"] == "b"
    page = client.get(f"{STAFF_API}/conversations?per_page=2&page=2", headers=headers["agent"]).json()
    assert (page["total"], [i["id"] for i in page["items"]]) == (7, ["d", "c"])
    full = client.get(f"{STAFF_API}/conversations/d", headers=headers["agent"]).json()
    assert full["messages"][3]["rating"] == "down"
    assert full["messages"][3]["sources"][0]["id"] == "delivery-canada"
    assert_error(client.get(f"{STAFF_API}/conversations/nope", headers=headers["agent"]), 404, "nope")
    assert_error(client.get(f"{STAFF_API}/conversations?decision=maybe", headers=headers["agent"]),
                 400, "'decision' must be one of answer, clarify, handoff")
    assert_error(client.get(f"{STAFF_API}/conversations?page=abc", headers=headers["agent"]),
                 422, "'page'")
    assert_error(client.get(f"{STAFF_API}/conversations?page=0", headers=headers["agent"]),
                 400, "'page' starts at 1")


def test_api_export_is_read_by_training(api, tmp_path):
    from api_helpers import assert_error

    client, headers = api
    response = client.get(f"{STAFF_API}/conversations/export?feedback=up&to=2025-03-01",
                          headers=headers["agent"])
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert [json.loads(line)["id"] for line in response.text.splitlines()] == ["e", "a"]
    path = tmp_path / "c.jsonl"
    path.write_bytes(response.content)
    assert {x.question for x in read_conversations(path)} == {
        "How long does delivery take?", "Which cards do you take?"}
    assert_error(client.get(f"{STAFF_API}/conversations/export?handoff=sometimes",
                            headers=headers["agent"]), 400, "'handoff' must be one of")
    assert_error(client.get(f"{STAFF_API}/conversations/export"), 401)


def test_api_unanswered_roles(api):
    from api_helpers import assert_error

    client, headers = api
    assert_error(client.get(f"{STAFF_API}/unanswered", headers=headers["agent"]), 403, "agent")
    for action in ("entry", "paraphrase", "dismiss"):
        assert_error(client.post(f"{STAFF_API}/unanswered/{action}", json={"message_ids": [1]},
                                 headers=headers["agent"]), 403)
    groups = client.get(f"{STAFF_API}/unanswered?from=2025-03-01&to=2025-03-03",
                        headers=headers["editor"]).json()
    questions = {g["question"] for g in groups}
    assert questions == {"Do you sell gift cards?", "What is the warranty on boots?", "and to Canada?"}
    assert_error(client.post(f"{STAFF_API}/unanswered/dismiss", json={"message_ids": "x"},
                             headers=headers["editor"]), 422, "'message_ids'")
    assert_error(client.post(f"{STAFF_API}/unanswered/dismiss", json={"message_ids": []},
                             headers=headers["editor"]), 400, "empty")
    boots = next(g for g in groups if g["question"] == "What is the warranty on boots?")
    done = client.post(f"{STAFF_API}/unanswered/dismiss", json={"message_ids": boots["message_ids"]},
                       headers=headers["admin"])
    assert done.json() == {"resolved": 1, "action": "dismissed", "entry": None}
    assert_error(client.post(f"{STAFF_API}/unanswered/dismiss",
                             json={"message_ids": boots["message_ids"]}, headers=headers["editor"]),
                 409, "already resolved")
    after = client.get(f"{STAFF_API}/unanswered?from=2025-03-01&to=2025-03-03",
                       headers=headers["editor"]).json()
    assert len(after) == 2
    # resolved questions still count in the analytics' unanswered trend
    trend = client.get(f"{STAFF_API}/analytics?from=2025-03-01&to=2025-03-03",
                       headers=headers["agent"]).json()
    assert trend["unanswered"] == 3
