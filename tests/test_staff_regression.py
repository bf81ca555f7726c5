"""Regression checks on publish: the set (add, delete, import, errors), the check of a draft
against the live version (newly failing, newly passing), the gate (an editor is refused, an
admin overrides and the audit log says so) through the service, the staff API and the console.

Real SQLite, the real index and embedding model, on a copy of the tiny shop KB (version 1).
Each test gets its own data dir: the gate depends on the whole set and the whole draft.
"""

from __future__ import annotations

import json

import gradio as gr
import pytest
from fastapi.testclient import TestClient
from staff_helpers import STAFF, add_staff_accounts, staff_user
from starlette.requests import Request

from chatbot.errors import Conflict, Forbidden, InvalidInput
from chatbot.staff.services import build_staff
from ui.app import create_app
from ui.staff_console import build_console
from ui.staff_console.context import SESSION_COOKIE, ConsoleContext

SHIPPING = {"query": "How long does shipping take?", "expected_id": "delivery-time"}
PAYPAL = {"query": "can I pay with PayPal", "expected_id": "payment-methods"}
OFF_TOPIC = {"query": "who won the 1998 world cup?", "expected_id": None}
GIFT = {"id": "gift-cards", "question": "Do you sell gift cards?",
        "answer": "Yes: gift cards from £10 to £200, sent by email.",
        "paraphrases": ["can I buy a voucher for a friend"], "tags": ["payments"]}


@pytest.fixture
def services(make_services):
    return make_services()


@pytest.fixture
def staff(services):
    staff = build_staff(services)
    add_staff_accounts(staff)
    return staff


def users(staff):
    return staff_user(staff, "editor"), staff_user(staff, "admin")


def audit(staff, action):
    return [e for e in staff.audit.events(staff_user(staff, "admin"), action_prefix=action)]


def test_the_set_holds_cases_and_refuses_bad_ones_keeping_what_it_has(staff):
    editor, _ = users(staff)
    reg = staff.regression
    first = reg.add(editor, SHIPPING)
    assert first["id"] and first["expected_id"] == "delivery-time" and first["author"] == editor.email
    with pytest.raises(Conflict, match="already has"):
        reg.add(editor, {**SHIPPING, "query": "  how long does   SHIPPING take? "})
    with pytest.raises(InvalidInput, match="expected_id 'no-such-entry' is not an entry"):
        reg.add(editor, {"query": "Where is it?", "expected_id": "no-such-entry"})
    good = json.dumps(PAYPAL)
    for text, needle in [
        (good + "\n{not json\n", "cases.jsonl, line 2: not valid JSON"),
        (good + "\n\n" + json.dumps({"query": "x", "expected_id": "nope"}),
         "cases.jsonl, line 3: expected_id 'nope'"),
        (json.dumps({"expected_id": "delivery-time"}), "line 1: each case needs a string 'query'"),
        (json.dumps({**PAYPAL, "history": [{"role": "bot", "content": "hi"}]}), "'history'"),
        ("\n\n", "holds no cases"),
    ]:
        with pytest.raises(InvalidInput, match=needle) as caught:
            reg.import_jsonl(editor, text, name="cases.jsonl", replace=True)
        assert "Nothing was imported" in caught.value.message
    assert [c["query"] for c in reg.cases(editor)] == [SHIPPING["query"]]  # nothing lost

    followup = {"query": "and to Canada?", "expected_id": "delivery-canada", "history": [
        {"role": "user", "content": "How long does shipping take?"},
        {"role": "assistant", "content": "2 to 4 business days."}]}
    lines = [SHIPPING, PAYPAL, OFF_TOPIC, followup, {"query": "care", "expected_id": "care-guide#1"}]
    result = reg.import_jsonl(editor, "\n".join(json.dumps(c) for c in lines), name="cases.jsonl")
    assert result == {"lines": 5, "added": 4, "unchanged": 1, "deleted": 0, "cases": 5}
    result = reg.import_jsonl(editor, json.dumps(PAYPAL) + "\n" + json.dumps(OFF_TOPIC),
                              name="two.jsonl", replace=True)
    assert result == {"lines": 2, "added": 0, "unchanged": 2, "deleted": 3, "cases": 2}
    exported = [json.loads(line) for line in reg.export_jsonl(editor).splitlines()]
    assert exported == [PAYPAL, OFF_TOPIC]
    reg.delete(editor, reg.cases(editor)[0]["id"])
    assert [c["query"] for c in reg.cases(editor)] == [OFF_TOPIC["query"]]
    assert {e.action for e in audit(staff, "regression.")} == {
        "regression.add", "regression.import", "regression.delete"}
    agent = staff_user(staff, "agent")
    with pytest.raises(Forbidden):
        reg.cases(agent)


def test_the_check_lists_newly_failing_and_newly_passing_cases(staff):
    editor, _ = users(staff)
    kb, reg = staff.kb, staff.regression
    assert reg.check(editor)["cases"] == 0
    kb.create_entry(editor, GIFT)
    for case in (SHIPPING, PAYPAL, OFF_TOPIC, {"query": "Do you sell gift cards?",
                                               "expected_id": "gift-cards"}):
        reg.add(editor, case)
    kb.delete_entry(editor, "delivery-time")

    report = reg.check(editor)

    assert report["cases"] == 4 and report["version"] == 1
    assert [r["query"] for r in report["newly_failing"]] == [SHIPPING["query"]]
    assert [r["query"] for r in report["newly_passing"]] == ["Do you sell gift cards?"]
    assert report["still_failing"] == []
    assert (report["before"]["passed"], report["after"]["passed"]) == (3, 3)
    failing = report["newly_failing"][0]
    assert failing["before"] == {"passed": True, "decision": "answer", "top": "delivery-time"}
    assert failing["after"]["passed"] is False and failing["after"]["top"] != "delivery-time"
    statuses = {r["query"]: r["status"] for r in report["results"]}
    assert statuses[PAYPAL["query"]] == statuses[OFF_TOPIC["query"]] == "still_passing"
    # Nothing was published, and the live server still answers from version 1.
    assert staff.kb.knowledge.current_version() == 1
    assert staff.kb.retriever.index().version == 1


def test_an_editor_cannot_publish_a_breaking_draft_and_an_admin_override_is_audited(staff):
    editor, admin = users(staff)
    kb, reg = staff.kb, staff.regression
    for case in (SHIPPING, PAYPAL, OFF_TOPIC):
        reg.add(editor, case)
    kb.delete_entry(editor, "delivery-time")

    with pytest.raises(Conflict) as refused:
        kb.publish(editor, note="drop delivery")
    message = refused.value.message
    assert "break 1 regression case(s)" in message and '"How long does shipping take?"' in message
    assert "expects 'delivery-time'" in message and "admin can publish it anyway" in message
    with pytest.raises(Forbidden, match="Only an admin can override"):
        kb.publish(editor, override=True)
    with pytest.raises(Conflict):
        kb.publish(admin)  # an admin too must say so
    assert kb.knowledge.current_version() == 1

    result = kb.publish(admin, note="drop delivery", override=True)

    assert result["published"] and result["version"] == 2
    assert [r["query"] for r in result["regression"]["newly_failing"]] == [SHIPPING["query"]]
    (override,) = audit(staff, "kb.regression_override")
    assert override.actor == admin.email and override.target == "version 2"
    assert override.detail["count"] == 1
    assert override.detail["failing"][0]["query"] == SHIPPING["query"]
    assert override.detail["failing"][0]["expected_id"] == "delivery-time"
    published = audit(staff, "kb.publish")[0]
    assert published.detail["regression"]["override"] is True
    assert published.detail["regression"]["newly_failing"] == [result["regression"]["newly_failing"][0]["id"]]

    # Rolling back to version 1 brings the case back: nothing breaks, no override needed.
    back = kb.rollback(editor, 1)
    assert [r["query"] for r in back["regression"]["newly_passing"]] == [SHIPPING["query"]]
    assert back["regression"]["newly_failing"] == []
    # ... but rolling back to version 2 again would break it.
    with pytest.raises(Conflict, match="How long does shipping take"):
        kb.rollback(editor, 2)


def test_nothing_breaks_publishes_as_before(staff):
    editor, _ = users(staff)
    kb = staff.kb
    kb.create_entry(editor, GIFT)
    assert kb.publish(editor)["regression"] is None  # no set: no check
    staff.regression.add(editor, SHIPPING)
    staff.regression.add(editor, {"query": "Do you sell gift cards?", "expected_id": "gift-cards"})
    kb.update_entry(editor, "gift-cards", {**GIFT, "answer": "Yes, from £5."})
    result = kb.publish(editor)
    assert result["published"] and result["version"] == 3
    assert result["regression"]["newly_failing"] == [] and result["regression"]["cases"] == 2
    assert audit(staff, "kb.regression_override") == []


# The staff API and the console ------------------------------------------------------------


def test_the_staff_api_gate_and_set(staff, services):
    app = create_app(services, staff)
    tokens = {role: staff.accounts.create_token(f"{role}@example.com")
              for role in ("admin", "editor", "agent")}
    h = {role: {"Authorization": f"Bearer {t}"} for role, t in tokens.items()}
    with TestClient(app) as client:
        # No regression set: publish with {} is the contract's call.
        client.post(f"{STAFF}/entries", json=GIFT, headers=h["editor"]).raise_for_status()
        plain = client.post(f"{STAFF}/publish", json={}, headers=h["editor"])
        assert plain.status_code == 200 and plain.json()["version"] == 2

        added = client.post(f"{STAFF}/regression", json=SHIPPING, headers=h["editor"])
        assert added.status_code == 200, added.text
        bad = client.post(f"{STAFF}/regression", json={"query": "x", "expected_id": "nope"},
                          headers=h["editor"])
        assert bad.status_code == 400 and bad.json()["ok"] is False
        assert "'nope'" in bad.json()["error"]
        upload = client.post(f"{STAFF}/regression/import", headers=h["editor"], files={
            "file": ("cases.jsonl", (json.dumps(PAYPAL) + "\n{oops\n").encode())})
        assert upload.status_code == 400 and "cases.jsonl, line 2" in upload.json()["error"]
        upload = client.post(f"{STAFF}/regression/import", headers=h["editor"], files={
            "file": ("cases.jsonl", (json.dumps(PAYPAL) + "\n" + json.dumps(OFF_TOPIC)).encode())})
        assert upload.json()["cases"] == 3, upload.text
        assert len(client.get(f"{STAFF}/regression", headers=h["editor"]).json()) == 3
        assert client.get(f"{STAFF}/regression", headers=h["agent"]).status_code == 403

        client.delete(f"{STAFF}/entries/delivery-time", headers=h["editor"]).raise_for_status()
        check = client.post(f"{STAFF}/regression/check", headers=h["editor"]).json()
        assert [r["query"] for r in check["newly_failing"]] == [SHIPPING["query"]]
        refused = client.post(f"{STAFF}/publish", json={}, headers=h["editor"])
        assert refused.status_code == 409
        assert set(refused.json()) == {"ok", "error", "status"} and refused.json()["status"] == 409
        assert "How long does shipping take?" in refused.json()["error"]
        forbidden = client.post(f"{STAFF}/publish", json={"override": True}, headers=h["editor"])
        assert forbidden.status_code == 403
        done = client.post(f"{STAFF}/publish", json={"override": True, "note": "on purpose"},
                           headers=h["admin"])
        assert done.status_code == 200 and done.json()["version"] == 3
        assert done.json()["regression"]["newly_failing"][0]["expected_id"] == "delivery-time"
        events = client.get(f"{STAFF}/audit", params={"action": "kb.regression_override"},
                            headers=h["admin"]).json()
        assert events[0]["actor"] == "admin@example.com"
        spec = client.get("/openapi.json").json()
        assert {f"{STAFF}/regression", f"{STAFF}/regression/check",
                f"{STAFF}/regression/import"} <= set(spec["paths"])
        # New schemas take their own names: the existing ones keep theirs.
        assert {"Turn", "ImportResult", "Ok", "CaseTurn", "CaseImportResult",
                "RegressionReport"} <= set(spec["components"]["schemas"])


def console_request(staff, role):
    secret = staff.accounts.start_session(staff.accounts.user(f"{role}@example.com"))[0]
    scope = {"type": "http", "method": "POST", "path": "/staff/", "query_string": b"",
             "headers": [(b"cookie", f"{SESSION_COOKIE}={secret}".encode())]}
    return gr.Request(request=Request(scope))


def test_the_console_shows_the_check_before_and_after_publishing(staff):
    console = build_console(ConsoleContext(staff), "Test shop")
    handlers = {f.fn.__name__: f.fn for f in console.fns.values() if f.fn is not None}
    editor, admin = console_request(staff, "editor"), console_request(staff, "admin")
    out = handlers["add_regression_case"](SHIPPING["query"], "delivery-time", "", request=editor)
    assert "Added case" in out[0] and len(out[1]) == 1
    with pytest.raises(gr.Error, match="not an entry"):
        handlers["add_regression_case"]("Where?", "nope", "", request=editor)
    staff.kb.delete_entry(staff_user(staff, "editor"), "delivery-time")

    before = handlers["check_regression"](request=editor)[0]
    assert "1 newly failing" in before and "How long does shipping take?" in before
    with pytest.raises(gr.Error, match="break 1 regression case"):
        handlers["do_publish"]("drop", request=editor)
    with pytest.raises(gr.Error, match="Only an admin"):
        handlers["publish_with_override"]("drop", request=editor)
    after = handlers["publish_with_override"]("drop on purpose", request=admin)
    assert "Published version **2**" in after[0] and "overrode" in after[0]
    assert "How long does shipping take?" in after[0]


def test_a_draft_without_entries_and_a_set_before_any_publish(make_services):
    services = make_services(kb=False)
    staff = build_staff(services)
    add_staff_accounts(staff)
    editor = staff_user(staff, "editor")
    staff.regression.add(editor, OFF_TOPIC)
    report = staff.regression.check(editor)  # live version 0 and the draft are both empty
    assert report["version"] == 0 and report["newly_failing"] == []
    assert report["results"][0]["before"]["decision"] == "handoff"
    staff.kb.create_entry(editor, GIFT)
    staff.regression.add(editor, {"query": "Do you sell gift cards?", "expected_id": "gift-cards"})
    assert staff.kb.publish(editor)["regression"]["newly_passing"][0]["expected_id"] == "gift-cards"
    staff.kb.delete_entry(editor, "gift-cards")
    with pytest.raises(Conflict, match="gift cards"):
        staff.kb.publish(editor)


def test_the_cli_imports_a_set_and_kb_import_reports_what_it_broke(tmp_path, data_dir):
    from helpers import TINY_FAQ, TINY_KB_FILES, assert_user_error, run_cli

    assert run_cli("kb", "import", *map(str, TINY_KB_FILES), data=data_dir).returncode == 0
    cases = tmp_path / "cases.jsonl"
    cases.write_text(json.dumps(SHIPPING) + "\n" + json.dumps({"query": "x", "expected_id": "nah"}))
    assert_user_error(run_cli("kb", "regression", "import", str(cases), data=data_dir),
                      "line 2", "'nah'", "Nothing was imported")
    cases.write_text("\n".join(json.dumps(c) for c in (SHIPPING, PAYPAL, OFF_TOPIC)) + "\n")
    done = run_cli("kb", "regression", "import", str(cases), data=data_dir)
    assert done.returncode == 0 and "3 new" in done.stdout, done.stderr
    listed = run_cli("kb", "regression", "list", "--json", data=data_dir)
    assert [c["query"] for c in json.loads(listed.stdout)] == [
        SHIPPING["query"], PAYPAL["query"], OFF_TOPIC["query"]]

    smaller = tmp_path / "faq.jsonl"
    smaller.write_text("".join(line + "\n" for line in TINY_FAQ.read_text().splitlines()
                               if '"delivery-time"' not in line))
    imported = run_cli("kb", "import", str(smaller), "--replace", data=data_dir)
    assert imported.returncode == 0, imported.stderr  # the administrator's path is not gated
    assert "1 newly failing" in imported.stdout
    assert "newly failing: #1 'How long does shipping take?' (expects delivery-time)" in imported.stdout
    check = run_cli("kb", "regression", "check", "--json", data=data_dir)
    assert check.returncode == 0 and json.loads(check.stdout)["newly_failing"] == []
