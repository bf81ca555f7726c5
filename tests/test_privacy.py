"""Privacy with real parts: what is stored, logged, exported and trained on is redacted; one
visitor's data is exported and erased (CLI and staff API); retention deletes old conversations.
"""

from __future__ import annotations

import io
import json
import logging
import sqlite3
import time
from datetime import timedelta

import pytest
from api_helpers import assert_error
from fastapi.testclient import TestClient
from helpers import run_cli
from sqlalchemy import text
from staff_helpers import STAFF, add_staff_accounts

from chatbot.identity import sign_identity
from chatbot.logs import configure_logging
from chatbot.models import utcnow
from chatbot.privacy.records import PrivacyRecords, RetentionJob
from chatbot.settings import Settings
from chatbot.staff.services import build_staff
from chatbot.staff.transcripts import TranscriptFilter, Transcripts
from chatbot.training.data import read_conversations
from ui.app import create_app

SECRET = "a-test-secret-of-some-length"
EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"


def visitor(user_id: str) -> dict[str, str]:
    return {"user_id": user_id, "signature": sign_identity(SECRET, user_id)}


def test_stored_messages_are_redacted_but_the_turn_uses_the_original(make_services):
    services = make_services(widget_secret=SECRET)
    chat = services.chat
    cid = chat.start_conversation()
    result = chat.send_message(cid, f"How long does delivery take? Write to {EMAIL} or call "
                                    "+44 20 7946 0958, order 100234")
    assert result.decision == "answer" and result.sources[0]["id"] == "delivery-time"
    user, bot = services.conversations.messages(cid)
    assert user.content == ("How long does delivery take? Write to [email] or call [phone], "
                            "order 100234")
    assert EMAIL not in json.dumps(bot.meta) and "7946" not in json.dumps(bot.meta)
    chat.record_feedback(cid, bot.id, "down", comment=f"my card {CARD} was charged twice")
    assert services.conversations.feedback(cid)[bot.id].comment == "my card [card] was charged twice"
    history = [{"role": "user", "content": f"I am {EMAIL}"}, {"role": "assistant", "content": "Hi"}]
    replayed = chat.start_conversation(history=history)
    assert services.conversations.messages(replayed)[0].content == "I am [email]"


def test_redaction_off_stores_the_text_as_sent(make_services):
    services = make_services(redact_pii="off")
    cid = services.chat.start_conversation()
    services.chat.send_message(cid, f"Delivery time? {EMAIL}")
    assert EMAIL in services.conversations.messages(cid)[0].content


def test_log_lines_are_redacted_and_carry_json_fields():
    stream = io.StringIO()
    root, access = logging.getLogger(), logging.getLogger("uvicorn.access")
    before = (list(root.handlers), root.level, access.disabled)
    handler = configure_logging(Settings(), stream=stream)
    try:
        logging.getLogger("chatbot.test").warning("customer %s wrote from %s", EMAIL, "555-123-4567")
        try:
            raise ValueError(f"bad card {CARD}")
        except ValueError:
            logging.getLogger("chatbot.test").exception("failed for %s", EMAIL)
    finally:
        root.removeHandler(handler)
        for old in before[0]:
            root.addHandler(old)
        root.setLevel(before[1])
        access.disabled = before[2]
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["message"] == "customer [email] wrote from [phone]"
    assert lines[0]["level"] == "warning" and lines[0]["logger"] == "chatbot.test"
    assert "[card]" in lines[1]["exc"] and "4111" not in stream.getvalue()
    assert EMAIL not in stream.getvalue()


def test_staff_export_and_training_data_are_redacted(make_services, tmp_path):
    services = make_services(redact_pii="off")
    cid = services.chat.start_conversation()
    turn = services.chat.send_message(cid, f"Delivery time? I am {EMAIL}")
    services.chat.record_feedback(cid, turn.message_id, "up")
    # Stored unredacted (redaction was off then); an export with it on redacts on the way out.
    staff = build_staff(services)
    add_staff_accounts(staff)
    admin = staff.accounts.user("admin@example.com")
    transcripts = Transcripts(services.engine, redactor=Settings().redactor)
    exported = "".join(transcripts.export_lines(admin, TranscriptFilter()))
    assert EMAIL not in exported and "[email]" in exported
    assert EMAIL in "".join(staff.transcripts.export_lines(admin, TranscriptFilter()))
    raw = tmp_path / "raw.jsonl"
    raw.write_text(json.dumps({"id": cid, "messages": [
        {"role": "user", "content": f"Delivery time? I am {EMAIL}"},
        {"role": "assistant", "content": turn.text, "rating": "up"}]}) + "\n")
    exchanges = read_conversations(raw, Settings().redactor)
    assert exchanges[0].question == "Delivery time? I am [email]"


@pytest.fixture
def populated(make_services, database_url):
    """Two conversations of signed-in visitor u-42, one anonymous, one of u-7 (on SQLite, then
    on PostgreSQL)."""
    services = make_services(widget_secret=SECRET, database_url=database_url)
    chat = services.chat
    mine = [chat.start_conversation(visitor=visitor("u-42")) for _ in range(2)]
    anonymous = chat.start_conversation()
    other = chat.start_conversation(visitor=visitor("u-7"))
    for cid in [*mine, anonymous, other]:
        turn = chat.send_message(cid, "How long does delivery take?")
        chat.record_feedback(cid, turn.message_id, "up", comment="thanks")
    return services, mine, anonymous, other


def test_export_and_delete_one_visitor(populated):
    services, mine, anonymous, other = populated
    records = PrivacyRecords(services.engine)
    exported = records.export("u-42")
    assert exported["user"] == "u-42"
    assert sorted(c["id"] for c in exported["conversations"]) == sorted(mine)
    first = exported["conversations"][0]
    assert first["visitor_id"] == "u-42"
    assert [m["role"] for m in first["messages"]] == ["user", "assistant"]
    assert first["messages"][1]["feedback"]["comment"] == "thanks"
    assert records.export(anonymous)["conversations"][0]["id"] == anonymous

    deleted = records.delete("u-42")
    assert deleted.to_dict() == {"conversations": 2, "messages": 4, "feedback": 2}
    with pytest.raises(Exception, match="Nothing is stored about 'u-42'"):
        records.export("u-42")
    assert all(not services.conversations.exists(c) for c in mine)
    assert services.conversations.exists(anonymous) and services.conversations.exists(other)
    with services.engine.connect() as conn:
        left = conn.execute(text("SELECT count(*) FROM messages WHERE conversation_id IN "
                                 "(:a, :b)"), {"a": mine[0], "b": mine[1]}).scalar()
        audit = conn.execute(text("SELECT target, detail FROM audit_log WHERE "
                                  "action = 'privacy.delete'")).one()
    assert left == 0
    assert "u-42" not in audit.target and audit.target.startswith("sha256:")


def test_privacy_cli_exports_and_deletes(populated):
    services, mine, anonymous, other = populated
    data, url = services.settings.data_dir, services.settings.resolved_database_url
    services.engine.dispose()
    out = run_cli("privacy", "export", "--user", "u-42", data=data, database_url=url)
    assert out.returncode == 0, out.stderr
    assert sorted(c["id"] for c in json.loads(out.stdout)["conversations"]) == sorted(mine)
    gone = run_cli("privacy", "delete", "--user", anonymous, "--json", data=data,
                   database_url=url)
    assert gone.returncode == 0, gone.stderr
    assert json.loads(gone.stdout) == {"ok": True, "conversations": 1, "messages": 2, "feedback": 1}
    again = run_cli("privacy", "export", "--user", anonymous, data=data, database_url=url)
    assert again.returncode == 2 and "Nothing is stored" in again.stderr
    assert "Traceback" not in again.stderr
    if url.startswith("sqlite"):
        with sqlite3.connect(data / "chatbot.db") as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_staff_privacy_api_is_for_admins(populated):
    services, mine, anonymous, other = populated
    staff = build_staff(services)
    accounts = add_staff_accounts(staff)
    with TestClient(create_app(services, staff)) as client:
        for role in ("editor", "agent"):
            assert_error(client.get(f"{STAFF}/privacy/export", params={"user": "u-7"},
                                    headers=accounts.headers(role)), 403)
        admin = accounts.headers("admin")
        exported = client.get(f"{STAFF}/privacy/export", params={"user": "u-7"}, headers=admin)
        assert exported.status_code == 200
        assert [c["id"] for c in exported.json()["conversations"]] == [other]
        deleted = client.post(f"{STAFF}/privacy/delete", json={"user": "u-7"}, headers=admin)
        assert deleted.json() == {"ok": True, "conversations": 1, "messages": 2, "feedback": 1}
        assert_error(client.post(f"{STAFF}/privacy/delete", json={"user": "u-7"}, headers=admin),
                     404, "Nothing is stored")
        # The customer API then knows nothing of it either.
        assert_error(client.get(f"/api/v1/conversations/{other}"), 404)


def age(services, cid: str, days: int) -> None:
    with services.engine.begin() as conn:
        conn.execute(text("UPDATE conversations SET updated_at = :t WHERE id = :id"),
                     {"t": utcnow() - timedelta(days=days), "id": cid})


def test_retention_deletes_conversations_inactive_for_longer(make_services, database_url):
    services = make_services(retention_days=30, database_url=database_url)
    chat = services.chat
    old, recent = chat.start_conversation(), chat.start_conversation()
    for cid in (old, recent):
        chat.send_message(cid, "How long does delivery take?")
    age(services, old, 31)
    age(services, recent, 29)
    job = RetentionJob(PrivacyRecords(services.engine), days=30)
    assert job.run_once().to_dict() == {"conversations": 1, "messages": 2, "feedback": 0}
    assert not services.conversations.exists(old) and services.conversations.exists(recent)


def test_the_server_runs_retention_at_start(make_services):
    services = make_services(retention_days=7)
    cid = services.chat.start_conversation()
    age(services, cid, 8)
    app = create_app(services)
    with TestClient(app):
        job = app.state.retention
        for _ in range(100):
            if job.runs:
                break
            time.sleep(0.05)
        assert job.runs >= 1
        assert not services.conversations.exists(cid)


def test_purge_cli_and_retention_off(make_services):
    services = make_services(retention_days=0)
    cid = services.chat.start_conversation()
    age(services, cid, 400)
    app = create_app(services)
    with TestClient(app):
        assert app.state.retention.runs == 0  # 0 keeps conversations
    assert services.conversations.exists(cid)
    data = services.settings.data_dir
    services.engine.dispose()
    kept = run_cli("privacy", "purge", "--days", "500", "--json", data=data)
    assert kept.returncode == 0, kept.stderr
    assert json.loads(kept.stdout) == {"ok": True, "days": 500, "conversations": 0,
                                       "messages": 0, "feedback": 0}
    refused = run_cli("privacy", "purge", data=data)  # CHATBOT_RETENTION_DAYS: 0 by default
    assert refused.returncode == 2 and "--days" in refused.stderr
    done = run_cli("privacy", "purge", "--days", "365", data=data)
    assert done.returncode == 0, done.stderr
    assert "Deleted 1 conversation(s) inactive for more than 365 day(s)" in done.stdout
