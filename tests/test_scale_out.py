"""Several server processes on one database (README, Scale-out).

- In process, on SQLite and on PostgreSQL: two ``Services`` with their own data dirs (each
  its own index, as each node of a deployment has) share one database; a conversation started
  on one goes on on the other, and a publish on one is answered from by the other once its
  ``VersionWatcher`` has seen it.
- With real parts: two ``chatbot serve`` subprocesses on one PostgreSQL database, started at
  the same moment on an empty database (both migrate it), generation on an OpenAI-compatible
  model server (as a vLLM or TGI deployment would have it). The knowledge base and an edit are
  published through the staff API of one; the other answers from each within seconds, without
  a customer turn to make it look.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
from helpers import TINY_FAQ
from servers import Server, SlowModel
from staff_helpers import STAFF, add_staff_accounts, staff_user

from chatbot.db import make_engine
from chatbot.staff.accounts import Accounts
from chatbot.staff.kb_live import VersionWatcher
from chatbot.staff.services import build_staff

API = "/api/v1/conversations"
RETURNS_Q = "How long do I have to return an item?"
RETURNS_A = "You can return unworn items within 30 days of delivery for a full refund."
NEW_A = "You can return unworn items within 60 days of delivery for a full refund."
DELIVERY_Q = "How long does delivery take?"


def test_two_services_on_one_database_share_conversations_and_publishes(
    make_services, database_url, tmp_path
):
    a = make_services(database_url=database_url)
    b = make_services(kb=False, folder=tmp_path / "node-b", database_url=database_url)
    b.retriever.index()  # node B builds its own index of what A published
    assert b.retriever.version == a.retriever.version == 1

    cid = a.chat.start_conversation()
    assert a.chat.send_message(cid, RETURNS_Q).text == RETURNS_A
    assert b.chat.send_message(cid, DELIVERY_Q).decision == "answer"
    assert [m.role for m in a.conversations.messages(cid)] == [
        "user", "assistant", "user", "assistant"]

    staff_a, staff_b = build_staff(a), build_staff(b)
    add_staff_accounts(staff_a)
    editor = staff_user(staff_a, "editor")
    entry = staff_a.kb.entry(editor, "returns-window")
    staff_a.kb.update_entry(editor, "returns-window", {**entry, "answer": NEW_A})
    published = staff_a.kb.publish(editor, wait=60)
    assert published["live"] and published["version"] == 2

    watcher = VersionWatcher(staff_b.kb.warmer, interval=0)  # checked by hand here
    assert b.retriever.version == 1  # B has not looked yet
    assert watcher.check()
    assert staff_b.kb.warmer.wait(60) and b.retriever.version == 2
    assert not watcher.check()  # nothing newer: no second build
    assert b.chat.send_message(b.chat.start_conversation(), RETURNS_Q).text == NEW_A
    assert staff_b.kb.live_status(editor)["live_version"] == 2


def live_version(server: Server) -> int | None:
    """The KB version the server answers from, as its /readyz reports it."""
    checks = httpx.get(server.url + "/readyz", timeout=10).json().get("checks", {})
    index = checks.get("index", "")
    return int(index.split("version ")[1].rstrip(")")) if "version " in index else None


def wait_for_version(server: Server, version: int, timeout: float = 60) -> float:
    """Seconds until ``server`` answers from ``version`` (fails after ``timeout``)."""
    started = time.monotonic()
    while live_version(server) != version:
        assert time.monotonic() - started < timeout, (
            f"{server.url} still answers from version {live_version(server)}, not {version}:\n"
            + server.logs())
        time.sleep(0.1)
    return time.monotonic() - started


def ask(server: Server, cid: str, text: str) -> dict:
    reply = httpx.post(f"{server.url}{API}/{cid}/messages", json={"text": text}, timeout=60)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_two_server_processes_on_one_postgres_database(postgres_url, tmp_path: Path):
    model = SlowModel(delay=0.0)
    env = {"CHATBOT_DATABASE_URL": postgres_url, "CHATBOT_GENERATOR": "openai",
           "CHATBOT_OPENAI_BASE_URL": model.url, "CHATBOT_RATE_LIMIT": "0"}
    # One data dir per node, as on separate machines: each keeps its own index and logs.
    nodes = [Server(tmp_path / f"node-{n}" / "data", tmp_path / f"node-{n}.log", **env)
             for n in "ab"]
    try:
        for node in nodes:  # side by side: both run the migrations on the empty database
            node.launch()
        a, b = (node.wait_ready() for node in nodes)
        assert live_version(a) == live_version(b) == 0

        engine = make_engine(postgres_url)
        try:
            accounts = Accounts(engine)
            accounts.add_user("editor@example.com", "editor", "correct horse battery staple")
            token = accounts.create_token("editor@example.com")
        finally:
            engine.dispose()
        staff = httpx.Client(base_url=a.url + STAFF, timeout=120,
                             headers={"Authorization": f"Bearer {token}"})

        entries = [json.loads(line) for line in TINY_FAQ.read_text().splitlines() if line]
        assert staff.post("/entries/bulk", json=entries).status_code == 200
        assert staff.post("/publish", json={}).json()["version"] == 1
        first_seconds = wait_for_version(b, 1)
        wait_for_version(a, 1)

        cid = httpx.post(a.url + API, json={}, timeout=30).json()["id"]
        assert ask(a, cid, RETURNS_Q)["text"] == RETURNS_A
        assert ask(b, cid, DELIVERY_Q)["decision"] == "answer"  # the same conversation, on B
        messages = httpx.get(f"{b.url}{API}/{cid}", timeout=30).json()["messages"]
        assert [m["content"] for m in messages][:3] == [RETURNS_Q, RETURNS_A, DELIVERY_Q]

        current = staff.get("/entries/returns-window").json()
        assert staff.put("/entries/returns-window",
                         json={**current, "answer": NEW_A}).status_code == 200
        published_at = time.monotonic()
        assert staff.post("/publish", json={}).json()["version"] == 2
        edit_seconds = wait_for_version(b, 2)
        assert ask(b, cid, RETURNS_Q)["text"] == NEW_A
        assert ask(a, httpx.post(a.url + API, json={}, timeout=30).json()["id"],
                   RETURNS_Q)["text"] == NEW_A
        total = time.monotonic() - published_at
        for node in (a, b):
            log = node.log_path.read_text(errors="replace")
            assert '"status": 500' not in log and "Traceback" not in log, node.logs()
        print(f"node B answered from the first publish after {first_seconds:.1f} s and from "
              f"the edit after {edit_seconds:.1f} s (a customer on B saw it {total:.1f} s "
              "after the publish on A)")
    except BaseException:
        for node in nodes:
            print(f"--- {node.url} ---\n{node.logs()}")
        raise
    finally:
        for node in nodes:
            node.stop()
        model.close()
