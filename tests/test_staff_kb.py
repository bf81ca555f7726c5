"""The knowledge-base editor through the staff API, the console's handlers and a live server.

Real SQLite, the real index and the real app on a copy of the tiny shop KB (published as
version 1); the generator is scripted, and questions asked in the exact words of an entry take
the fast path, so the reply is the entry's own answer text. The module shares one app: each
test uses its own entry ids and compares versions relative to the one it starts from.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
from api_helpers import LiveServer, assert_error, module_services
from fastapi.testclient import TestClient
from staff_helpers import ROLE_EMAILS, STAFF, add_staff_accounts, staff_user

from chatbot.errors import Conflict, InvalidInput
from chatbot.staff.services import build_staff
from ui.app import create_app
from ui.staff_console import build_console
from ui.staff_console.context import SESSION_COOKIE, ConsoleContext

RETURNS_Q = "How long do I have to return an item?"
RETURNS_A = "You can return unworn items within 30 days of delivery for a full refund."
NEW_A = "You can return unworn items within 60 days of delivery for a full refund."


@pytest.fixture(scope="module")
def services(tmp_path_factory, shared_embedding_model, kb_template, module_database):
    folder = tmp_path_factory.mktemp("staff-kb") / "data"
    with module_services(folder, kb_template, **module_database) as services:
        yield services


@pytest.fixture(scope="module")
def staff(services):
    return build_staff(services)


@pytest.fixture(scope="module")
def accounts(staff):
    return add_staff_accounts(staff)


@pytest.fixture(scope="module")
def app(services, staff):
    return create_app(services, staff)


@pytest.fixture(scope="module")
def client(app, accounts):
    with TestClient(app) as client:
        yield client


@pytest.fixture
def editor(accounts):
    return accounts.headers("editor")


def entry(entry_id: str, **fields) -> dict:
    return {"id": entry_id, "question": f"What about {entry_id}?", "answer": f"All about {entry_id}.",
            **fields}


def publish(client, headers, **body) -> int:
    response = client.post(f"{STAFF}/publish", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["version"]


# CRUD and validation ------------------------------------------------------------------------


def test_entries_crud_through_the_api(client, editor):
    created = client.post(f"{STAFF}/entries", json=entry("crud-1", paraphrases=["crud one?"],
                                                           tags=["Test"]), headers=editor)
    assert created.status_code == 200, created.text
    assert created.json() == {"id": "crud-1", "question": "What about crud-1?",
                              "answer": "All about crud-1.", "paraphrases": ["crud one?"],
                              "tags": ["Test"]}
    assert_error(client.post(f"{STAFF}/entries", json=entry("crud-1"), headers=editor), 409,
                 "already an entry with id 'crud-1'")

    listed = client.get(f"{STAFF}/entries", headers=editor).json()
    assert "crud-1" in [e["id"] for e in listed] and "returns-window" in [e["id"] for e in listed]
    assert [e["id"] for e in client.get(f"{STAFF}/entries", params={"search": "CRUD one"},
                                         headers=editor).json()] == ["crud-1"]
    assert [e["id"] for e in client.get(f"{STAFF}/entries", params={"tag": "test"},
                                         headers=editor).json()] == ["crud-1"]

    updated = client.put(f"{STAFF}/entries/crud-1",
                         json={"question": "What about crud-1?", "answer": "Changed."},
                         headers=editor)
    assert updated.status_code == 200 and updated.json()["answer"] == "Changed."
    assert client.get(f"{STAFF}/entries/crud-1", headers=editor).json()["answer"] == "Changed."
    history = client.get(f"{STAFF}/entries/crud-1/history", headers=editor).json()
    assert [(h["revision"], h["action"], h["author"]) for h in history] == [
        (1, "create", ROLE_EMAILS["editor"]), (2, "update", ROLE_EMAILS["editor"])]

    assert client.delete(f"{STAFF}/entries/crud-1", headers=editor).json() == {"ok": True}
    assert_error(client.get(f"{STAFF}/entries/crud-1", headers=editor), 404, "crud-1")
    assert_error(client.delete(f"{STAFF}/entries/crud-1", headers=editor), 404, "crud-1")
    # Deleted entries keep their history, and the id can be used again.
    assert client.post(f"{STAFF}/entries", json=entry("crud-1"), headers=editor).status_code == 200


def test_bad_entries_get_a_specific_error_and_change_nothing(client, editor):
    before = client.get(f"{STAFF}/entries", headers=editor).json()
    assert_error(client.post(f"{STAFF}/entries", json=entry("bad-1", question="   "),
                             headers=editor), 400, "'question' is empty")
    assert_error(client.post(f"{STAFF}/entries", json={"id": "bad-1", "question": "Q?"},
                             headers=editor), 422, "'answer' is required")
    assert_error(client.post(f"{STAFF}/entries", json=entry("bad 1"), headers=editor), 400,
                 "contains spaces")
    assert_error(client.post(f"{STAFF}/entries", json=entry("a/b"), headers=editor), 400, "'/'")
    assert_error(client.post(f"{STAFF}/entries", json=entry("bad-1", tags=[3]), headers=editor),
                 422, "tags")
    assert_error(client.put(f"{STAFF}/entries/returns-window", json=entry("delivery-time"),
                            headers=editor), 400, "'delivery-time' differs", "returns-window")
    assert_error(client.put(f"{STAFF}/entries/no-such", json={"question": "Q", "answer": "A"},
                            headers=editor), 404, "no-such")
    assert_error(client.put(f"{STAFF}/entries/care-guide", json={"question": "Q", "answer": "A"},
                            headers=editor), 404, "is a document")
    assert client.get(f"{STAFF}/entries", headers=editor).json() == before


def test_roles_and_tokens(client, accounts):
    assert_error(client.get(f"{STAFF}/entries"), 401)
    assert_error(client.get(f"{STAFF}/entries", headers={"Authorization": "Bearer nope"}), 401)
    assert_error(client.post(f"{STAFF}/entries", json=entry("agent-1"),
                             headers=accounts.headers("agent")), 403, "agent")
    assert_error(client.post(f"{STAFF}/publish", json={}, headers=accounts.headers("agent")), 403)
    assert client.get(f"{STAFF}/versions", headers=accounts.headers("admin")).status_code == 200


def test_bulk_upsert_is_all_or_nothing(client, editor):
    bad = [entry("bulk-1"), entry("bulk-2", answer=""), entry("bulk-3")]
    assert_error(client.post(f"{STAFF}/entries/bulk", json=bad, headers=editor), 400,
                 "Entry 2 of 3 (id 'bulk-2')", "'answer' is empty", "Nothing was saved")
    twice = [entry("bulk-1"), entry("bulk-1")]
    assert_error(client.post(f"{STAFF}/entries/bulk", json=twice, headers=editor), 400,
                 "also appears as entry 1")
    assert_error(client.post(f"{STAFF}/entries/bulk", json=[entry("care-guide")], headers=editor),
                 400, "is a document")
    assert_error(client.post(f"{STAFF}/entries/bulk", json=[], headers=editor), 400, "empty")
    assert_error(client.get(f"{STAFF}/entries/bulk-1", headers=editor), 404)

    current = client.get(f"{STAFF}/entries/returns-window", headers=editor).json()
    good = [entry("bulk-1"), entry("bulk-2"), {**current, "tags": ["returns", "policy"]}, current]
    response = client.post(f"{STAFF}/entries/bulk", json=good[:3], headers=editor)
    assert response.json() == {"created": 2, "updated": 1, "unchanged": 0}, response.text
    again = client.post(f"{STAFF}/entries/bulk", json=good[:2], headers=editor).json()
    assert again == {"created": 0, "updated": 0, "unchanged": 2}
    client.put(f"{STAFF}/entries/returns-window", json=current, headers=editor)  # as it was


# Drafts, publish, live answers, rollback ----------------------------------------------------


def test_drafts_are_not_live_until_published_and_the_index_is_warmed_at_once(
    client, editor, services
):
    ask = {"text": "Do you sell gift cards for birthdays?"}
    created = client.post(f"{STAFF}/entries", headers=editor, json={
        "id": "gift-cards", "question": "Do you sell gift cards?",
        "answer": "Yes: gift cards from £10 to £200, sent by email."})
    assert created.status_code == 200
    tried = client.post(f"{STAFF}/try", json=ask, headers=editor).json()
    assert "gift-cards" not in [h["id"] for h in tried["hits"]]
    changes = client.get(f"{STAFF}/changes", headers=editor).json()
    assert "gift-cards" in [r["id"] for r in changes["added"]] and changes["count"] >= 1

    version = publish(client, editor, note="gift cards")
    # Nobody asks anything: the publish itself gets the new index built.
    deadline = time.monotonic() + 20
    while services.retriever.version != version and time.monotonic() < deadline:
        time.sleep(0.05)
    assert services.retriever.version == version
    status = client.get(f"{STAFF}/publish/status", headers=editor).json()
    assert status["published_version"] == status["live_version"] == version and status["ready"]

    tried = client.post(f"{STAFF}/try", json=ask, headers=editor).json()
    assert tried["version"] == version and tried["hits"][0]["id"] == "gift-cards"
    assert client.get(f"{STAFF}/changes", headers=editor).json()["count"] == 0
    again = client.post(f"{STAFF}/publish", json={}, headers=editor).json()
    assert again["published"] is False and again["version"] == version  # nothing to publish
    versions = client.get(f"{STAFF}/versions", headers=editor).json()
    assert versions[0] == {**versions[0], "version": version, "author": ROLE_EMAILS["editor"],
                           "note": "gift cards"}


def test_a_published_edit_is_answered_by_the_live_server_and_a_rollback_removes_it(
    app, client, editor
):
    def ask(http, cid: str) -> dict:
        response = http.post(f"/api/v1/conversations/{cid}/messages", json={"text": RETURNS_Q})
        assert response.status_code == 200, response.text
        return response.json()

    start = client.get(f"{STAFF}/versions", headers=editor).json()[0]["version"]
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        cid = http.post("/api/v1/conversations", json={}).json()["id"]  # stays open throughout
        assert ask(http, cid)["text"] == RETURNS_A

        current = http.get(f"{STAFF}/entries/returns-window", headers=editor).json()
        saved = http.put(f"{STAFF}/entries/returns-window", json={**current, "answer": NEW_A},
                         headers=editor)
        assert saved.status_code == 200
        assert ask(http, cid)["text"] == RETURNS_A  # a draft: customers still get the old text

        version = http.post(f"{STAFF}/publish", json={"note": "60 days"}, headers=editor).json()
        assert version["version"] == start + 1 and version["changed"] == 1
        reply = ask(http, cid)
        assert reply["text"] == NEW_A and reply["decision"] == "answer"

        rolled = http.post(f"{STAFF}/rollback", json={"version": start}, headers=editor).json()
        assert rolled["version"] == start + 2 and rolled["rolled_back_to"] == start
        assert ask(http, cid)["text"] == RETURNS_A
        messages = http.get(f"/api/v1/conversations/{cid}").json()["messages"]
        assert [m["content"] for m in messages if m["role"] == "assistant"] == [
            RETURNS_A, RETURNS_A, NEW_A, RETURNS_A]
    assert client.get(f"{STAFF}/entries/returns-window", headers=editor).json()["answer"] == RETURNS_A


def test_diff_of_two_versions_and_viewing_one(client, editor):
    base = publish(client, editor) if client.get(f"{STAFF}/changes", headers=editor).json()[
        "count"] else client.get(f"{STAFF}/versions", headers=editor).json()[0]["version"]
    client.post(f"{STAFF}/entries", json=entry("diff-new"), headers=editor)
    client.delete(f"{STAFF}/entries/contact-phone", headers=editor)
    payment = client.get(f"{STAFF}/entries/payment-methods", headers=editor).json()
    client.put(f"{STAFF}/entries/payment-methods", headers=editor,
               json={**payment, "answer": "Cards and PayPal.", "tags": ["payments", "cards"]})
    new = publish(client, editor, note="diff test")

    diff = client.get(f"{STAFF}/diff", params={"from": base, "to": new}, headers=editor).json()
    assert diff["from"] == base and diff["to"] == new
    assert [r["id"] for r in diff["added"]] == ["diff-new"]
    assert [r["id"] for r in diff["removed"]] == ["contact-phone"]
    assert diff["removed"][0]["question"] == "How do I contact support by phone?"
    [changed] = diff["changed"]
    assert changed["id"] == "payment-methods" and changed["fields"] == ["answer", "tags"]
    assert changed["before"] == {"answer": payment["answer"], "tags": ["payments"]}
    assert changed["after"] == {"answer": "Cards and PayPal.", "tags": ["payments", "cards"]}
    back = client.get(f"{STAFF}/diff", params={"from": new, "to": base}, headers=editor).json()
    assert [r["id"] for r in back["added"]] == ["contact-phone"]

    view = client.get(f"{STAFF}/versions/{base}", headers=editor).json()
    assert "contact-phone" in [r["id"] for r in view["records"]]
    exported = client.get(f"{STAFF}/export", params={"version": new}, headers=editor)
    ids = [json.loads(line)["id"] for line in exported.text.splitlines()]
    assert "diff-new" in ids and "contact-phone" not in ids and "care-guide" in ids
    assert_error(client.get(f"{STAFF}/versions/999", headers=editor), 404, "999")
    assert_error(client.get(f"{STAFF}/diff", params={"from": base, "to": 999}, headers=editor),
                 404, "999")
    assert_error(client.post(f"{STAFF}/rollback", json={"version": 999}, headers=editor), 404)
    assert_error(client.post(f"{STAFF}/rollback", json={"version": 0}, headers=editor), 400)
    assert_error(client.post(f"{STAFF}/rollback", json={}, headers=editor), 422, "'version'")


def test_try_a_question_shows_hits_scores_and_the_decision(client, editor, services):
    result = client.post(f"{STAFF}/try", json={"text": "When will I get my refund?"},
                         headers=editor).json()
    assert result["decision"] == "answer" and result["reason"] == "confident"
    assert result["hits"][0]["id"] == "refund-time" and result["fast_path"] is True
    scores = [h["score"] for h in result["hits"]]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert result["reply"].startswith("We refund your original payment method")
    assert result["thresholds"]["answer"] == services.chat.thresholds.answer

    away = client.post(f"{STAFF}/try", json={"text": "What is the capital of Peru?"},
                       headers=editor).json()
    assert away["decision"] == "handoff" and away["reason"] == "no_answer"
    assert "below the clarify threshold" in away["explanation"]
    person = client.post(f"{STAFF}/try", json={"text": "I want to talk to a human"},
                         headers=editor).json()
    assert person["decision"] == "handoff" and person["reason"] == "customer_request"
    assert_error(client.post(f"{STAFF}/try", json={"text": "  "}, headers=editor), 400, "empty")


def test_documents_import_and_export(client, editor):
    doc = {"id": "size-guide", "title": "Size guide", "text": "# Size guide\n\nJackets run small."}
    assert client.post(f"{STAFF}/documents", json=doc, headers=editor).json()["kind"] == "document"
    assert_error(client.post(f"{STAFF}/documents", json=doc, headers=editor), 409)
    assert_error(client.post(f"{STAFF}/documents", json={**doc, "id": "d2", "format": "pdf"},
                             headers=editor), 400, "'format'")
    edited = client.put(f"{STAFF}/documents/size-guide", json={**doc, "title": "Sizes"},
                        headers=editor)
    assert edited.json()["title"] == "Sizes"
    assert "size-guide" in [d["id"] for d in client.get(f"{STAFF}/documents", headers=editor).json()]
    assert client.delete(f"{STAFF}/documents/size-guide", headers=editor).json() == {"ok": True}

    before = client.get(f"{STAFF}/export", headers=editor).text
    bad = b'{"id": "imp-1", "question": "Q?", "answer": "A."}\n{"id": "imp-2", "question": "Q?"}\n'
    response = client.post(f"{STAFF}/import", headers=editor,
                           files=[("files", ("faq.jsonl", bad, "application/x-ndjson"))])
    assert_error(response, 400, "faq.jsonl, line 2", "'answer' is missing", "Nothing was imported")
    assert "/tmp" not in response.json()["error"]
    assert client.get(f"{STAFF}/export", headers=editor).text == before

    good = [("files", ("faq.jsonl", bad.splitlines()[0] + b"\n", "application/x-ndjson")),
            ("files", ("washing.md", b"# Washing\n\nUse cold water.\n", "text/markdown"))]
    result = client.post(f"{STAFF}/import", headers=editor, files=good).json()
    assert result == {"files": 2, "records": 2, "created": 2, "updated": 0, "unchanged": 0,
                      "deleted": 0}
    exported = client.get(f"{STAFF}/export", headers=editor)
    assert exported.headers["content-type"].startswith("application/x-ndjson")
    records = {json.loads(line)["id"]: json.loads(line) for line in exported.text.splitlines()}
    assert records["imp-1"]["answer"] == "A." and records["washing"]["kind"] == "document"


def test_audit_log_says_who_changed_what(client, editor, accounts):
    client.post(f"{STAFF}/entries", json=entry("audit-1"), headers=editor)
    client.put(f"{STAFF}/entries/audit-1", json=entry("audit-1", answer="New."), headers=editor)
    client.delete(f"{STAFF}/entries/audit-1", headers=editor)
    version = publish(client, editor, note="audit")
    events = client.get(f"{STAFF}/audit", params={"target": "audit-1"}, headers=editor).json()
    assert [(e["action"], e["actor"]) for e in events] == [
        ("entry.delete", ROLE_EMAILS["editor"]), ("entry.update", ROLE_EMAILS["editor"]),
        ("entry.create", ROLE_EMAILS["editor"])]
    assert events[1]["detail"] == {"fields": ["answer"]}
    [published] = client.get(f"{STAFF}/audit", params={"action": "kb.publish", "limit": 1},
                             headers=editor).json()
    assert published["target"] == f"version {version}" and published["detail"]["note"] == "audit"
    assert_error(client.get(f"{STAFF}/audit", headers=accounts.headers("agent")), 403)


# The service functions other parts call, and the console ------------------------------------


def test_create_entry_and_add_paraphrase_change_the_draft_only(staff, services):
    editor = staff_user(staff, "editor")
    live = services.knowledge.current_version()
    made = staff.kb.create_entry(editor, {"id": "svc-1", "question": "Is there a shop in Leeds?",
                                          "answer": "No, we sell online only."})
    assert made == {"id": "svc-1", "question": "Is there a shop in Leeds?",
                    "answer": "No, we sell online only.", "paraphrases": [], "tags": []}
    with pytest.raises(Conflict):
        staff.kb.create_entry(editor, made)
    added = staff.kb.add_paraphrase(editor, "svc-1", "  do you have a store in  Leeds ")
    assert added["paraphrases"] == ["do you have a store in Leeds"]
    assert staff.kb.add_paraphrase(editor, "svc-1", "DO YOU HAVE A STORE IN LEEDS") == added
    with pytest.raises(InvalidInput, match="empty"):
        staff.kb.add_paraphrase(editor, "svc-1", " ")
    assert services.knowledge.current_version() == live
    assert "svc-1" not in [r.id for r in services.knowledge.published()]


def test_the_console_calls_the_same_service_functions(staff, accounts):
    import gradio as gr
    from starlette.requests import Request

    console = build_console(ConsoleContext(staff), "Test shop")
    handlers = {f.fn.__name__: f.fn for f in console.fns.values() if f.fn is not None}
    secret, _ = staff.accounts.start_session(staff.accounts.user(ROLE_EMAILS["editor"]))
    scope = {"type": "http", "method": "POST", "path": "/staff/", "query_string": b"",
             "headers": [(b"cookie", f"{SESSION_COOKIE}={secret}".encode())]}
    request = gr.Request(request=Request(scope))

    out = handlers["save_entry"](None, "console-1", "Can I pay in euros?", "Yes, at checkout.",
                                 "pay in EUR\n\n", "payments, currency", " Trailblazer 40 ",
                                 request=request)
    assert "Created **console-1** as a draft" in out[7]
    saved = staff.kb.entry(staff_user(staff, "editor"), "console-1")
    assert saved["tags"] == ["payments", "currency"] and saved["subject"] == "Trailblazer 40"
    assert out[5] == "Trailblazer 40"  # the form shows the subject it saved
    message = handlers["do_publish"]("console test", request=request)[0]
    assert message.startswith("Published version") and "answered from it now" in message
    with pytest.raises(gr.Error, match="may not"):
        agent, _ = staff.accounts.start_session(staff.accounts.user(ROLE_EMAILS["agent"]))
        scope["headers"] = [(b"cookie", f"{SESSION_COOKIE}={agent}".encode())]
        handlers["save_entry"](None, "console-2", "Q", "A", "", "", "", request=gr.Request(
            request=Request(scope)))
