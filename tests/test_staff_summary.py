"""The summary an agent reads first when a conversation reaches the handoff inbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chatbot import replies
from chatbot.conversations import Feedback, Message
from chatbot.staff.summary import summarize


def message(mid: int, role: str, content: str, **fields: Any) -> Message:
    return Message(id=mid, role=role, content=content, created_at=datetime(2025, 1, 1), **fields)


def test_the_summary_keeps_the_first_and_latest_questions_and_skips_small_talk():
    answer = {"decision": "answer", "sources": [{"id": "d", "title": "Delivery times"}]}
    messages = [
        message(1, "user", "Hello!"),
        message(2, "assistant", replies.SMALLTALK["greeting"]),
        message(3, "user", "How long does delivery take?"),
        message(4, "assistant", "Two days.", **answer),
        message(5, "user", "Do you ship to Mars?"),
        message(6, "assistant", "...", decision="handoff", meta={"reason": "no_answer"}),
        message(7, "user", "What about the Moon?"),
        message(8, "assistant", "Do you mean", decision="clarify"),
        message(9, "user", "Can I pay by cheque? " + "Really " * 40),
        message(10, "assistant", "Yes.", **answer),
    ]
    feedback = {10: Feedback("c", 10, "down", "Wrong", datetime(2025, 1, 1))}
    summary = summarize(messages, feedback, reason="negative_feedback")
    lines = summary.splitlines()
    assert lines[0] == "Needs a person: the customer rated an answer unhelpful."
    assert lines[1] == "- “How long does delivery take?” → answered from “Delivery times”"
    assert "1 more question" in lines[2]
    assert lines[3] == "- “What about the Moon?” → the bot asked what was meant"
    assert lines[4].startswith("- “Can I pay by cheque?") and "rated unhelpful: “Wrong”" in lines[4]
    assert "Hello" not in summary and "Mars" not in summary
    assert all(len(line) < 260 for line in lines)
    assert summarize([]) == "The customer has not written anything yet."
    assert summarize([message(1, "user", "hi")]).startswith("Last message: “hi”")
