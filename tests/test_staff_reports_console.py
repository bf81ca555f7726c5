"""The console's Unanswered, Conversations and Analytics tabs, through their registered handlers
(the functions Gradio calls), signed in as a real session."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import gradio as gr
import pandas as pd
import pytest
from api_helpers import module_services
from staff_helpers import add_staff_accounts, staff_user
from staff_seed import Seeder
from starlette.requests import Request

from chatbot.staff.services import build_staff
from chatbot.training.data import read_conversations
from ui.staff_console import build_console
from ui.staff_console.context import SESSION_COOKIE, ConsoleContext


@pytest.fixture(scope="module")
def services(tmp_path_factory, shared_embedding_model, kb_template):
    with module_services(tmp_path_factory.mktemp("reports-console") / "data", kb_template) as services:
        yield services


@pytest.fixture(scope="module")
def staff(services):
    staff = build_staff(services)
    add_staff_accounts(staff)
    s = Seeder(services.engine)
    for n, text in enumerate(["Do you sell gift cards?", "can I buy a gift voucher",
                              "Are you open on Sundays?"], start=1):
        s.conversation(f"h{n}", f"2025-04-0{n} 10:00:00", status="waiting", handoff_reason="no_answer")
        s.turn(f"h{n}", f"2025-04-0{n} 10:00:00", text, "Passing you on.", decision="handoff",
               reason="no_answer", latency=20)
    s.conversation("ok", "2025-04-02 11:00:00")
    _, answer = s.turn("ok", "2025-04-02 11:00:00", "How long does delivery take?", "2 to 4 days.",
                       decision="answer", source="delivery-time", latency=120)
    s.rate("ok", answer, "up", "2025-04-02 11:01:00")
    return staff


@pytest.fixture(scope="module")
def handlers(staff):
    console = build_console(ConsoleContext(staff), "Test shop")
    found = {}
    for block in console.fns.values():
        fn = block.fn
        if fn is not None and fn.__module__.endswith(("unanswered_tab", "conversations_tab",
                                                      "analytics_tab")):
            found[(fn.__module__.rsplit(".", 1)[1], fn.__name__)] = fn
    return found


def request_as(staff, role: str) -> gr.Request:
    secret, _ = staff.accounts.start_session(staff_user(staff, role))
    scope = {"type": "http", "method": "POST", "path": "/staff/", "query_string": b"",
             "headers": [(b"cookie", f"{SESSION_COOKIE}={secret}".encode())]}
    return gr.Request(request=Request(scope))


def select(row: int, values: list) -> gr.SelectData:
    return gr.SelectData(None, {"index": [row, 0], "value": values[0], "row_value": values})


def test_analytics_tab(staff, handlers):
    refresh = handlers[("analytics_tab", "refresh")]
    tiles, volume, deflection, reasons, feedback, entries, unanswered, latency = refresh(
        "2025-04-01", "2025-04-03", request=request_as(staff, "agent"))
    assert "Conversations" in tiles and ">4<" in tiles and "25.0%" in tiles  # deflection 1 of 4
    assert isinstance(volume, pd.DataFrame)
    assert set(volume["series"]) == {"conversations", "messages"} and len(volume) == 6
    assert list(reasons["handoffs"]) == [3] and list(reasons["reason"]) == ["no answer"]
    assert list(entries["entry"]) == ["delivery-time"]
    assert list(unanswered["unanswered"]) == [1, 1, 1]
    assert list(feedback["feedback ratio"]) == [1.0]  # the other days have no ratings
    assert list(latency.query("series == 'p50'")["ms"]) == [120.0]
    assert len(deflection) == 3
    with pytest.raises(gr.Error, match="'from' .* is after 'to'"):
        refresh("2025-04-03", "2025-04-01", request=request_as(staff, "agent"))
    update = handlers[("analytics_tab", "download")]("2025-04-01", "2025-04-03",
                                                      request=request_as(staff, "editor"))
    path = Path(update.value if isinstance(update.value, str) else update.value["path"])
    assert path.name == "analytics-2025-04-01-to-2025-04-03.csv"
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    assert rows[3]["date"] == "total" and rows[3]["conversations"] == "4"


def test_conversations_tab(staff, handlers, tmp_path):
    agent = request_as(staff, "agent")
    search = handlers[("conversations_tab", "run_search")]
    rows, summary, _ = search("gift", "", "", "", "", "no_answer", "", 1, request=agent)
    assert summary.startswith("2 conversation(s)") and {r[0] for r in rows} == {"h1", "h2"}
    rows, _, _ = search("", "2025-04-02", "2025-04-02", "answer", "up", "", "", 1, request=agent)
    assert [r[0] for r in rows] == ["ok"]
    with pytest.raises(gr.Error, match="'from' must be a date"):
        search("", "April", "", "", "", "", "", 1, request=agent)
    text = handlers[("conversations_tab", "open_conversation")](select(0, ["ok"]), request=agent)
    assert "How long does delivery take?" in text and "`delivery-time`" in text and "rated up" in text
    update = handlers[("conversations_tab", "export_jsonl")]("", "", "", "", "up", "", "",
                                                            request=agent)
    path = update.value if isinstance(update.value, str) else update.value["path"]
    assert [json.loads(x)["id"] for x in Path(path).read_text().splitlines()] == ["ok"]
    assert read_conversations(Path(path))[0].answer == "2 to 4 days."


def test_unanswered_tab(staff, handlers):
    editor, agent = request_as(staff, "editor"), request_as(staff, "agent")
    show = handlers[("unanswered_tab", "show")]
    with pytest.raises(gr.Error, match="may not"):
        show("", "", request=agent)
    rows, groups, *_ = show("2025-04-01", "2025-04-30", request=editor)
    assert [r[0] for r in rows] == [2, 1] and groups[0]["count"] == 2
    picked = handlers[("unanswered_tab", "pick")](groups, select(0, rows[0]), request=editor)
    group, details, eid, question, answer, paraphrases, tags, target, wording = picked
    assert group is groups[0] and "Asked **2** times" in details
    assert question in ("Do you sell gift cards?", "can I buy a gift voucher")
    assert paraphrases in ("Do you sell gift cards?", "can I buy a gift voucher")
    assert paraphrases != question and eid and target == group["nearest"]["id"]
    create = handlers[("unanswered_tab", "create_entry")]
    with pytest.raises(gr.Error, match="Pick a group"):
        create(None, "", "", eid, question, "Yes.", "", "", request=editor)
    out = create(group, "2025-04-01", "2025-04-30", "gift-cards", question,
                 "Yes, from £10.", paraphrases, "gifts", request=editor)
    assert [r[0] for r in out[0]] == [1] and "gift-cards" in out[-1]
    entry = next(e for e in staff.kb.entries(staff_user(staff, "editor")) if e["id"] == "gift-cards")
    assert entry["tags"] == ["gifts"] and entry["paraphrases"] == [paraphrases]
    remaining = out[1][0]
    out = handlers[("unanswered_tab", "dismiss_group")](remaining, "2025-04-01", "2025-04-30",
                                                        request=editor)
    assert out[0] == [] and "Dismissed 1" in out[-1]
