"""Analytics (area "analytics"): how the bot did over a range of whole UTC days.

Definitions (a "day" is a UTC calendar day; ranges include both ends):

- ``conversations``: conversations with at least one customer message (role ``user``) in the
  range. Every other conversation figure is over these conversations.
- ``messages``: every stored message (customer, bot and agent) created in the range, in any
  conversation.
- A **handoff** is a bot reply with decision ``handoff`` (the bot gave up, or the customer asked
  for a person), counted once per conversation and reason: the first such reply of that reason
  in the range, on its day (in any conversation, so the days' handoffs add up to the range's).
  A conversation handed to a person without such a reply (its ``handoff_reason`` set by
  another path) counts once, on its ``waiting_since`` day.
- A counted conversation is **handed to a person** in the range when it has a handoff or an
  agent's message in the range. ``handoff_rate`` = handed / ``conversations``; ``deflection_rate`` =
  1 − ``handoff_rate`` (resolved without a person). Both are ``null`` when there are no
  conversations. ``handoffs_by_reason`` counts handoffs (reason → count).
- ``feedback``: ratings given in the range (``up``, ``down``); ``feedback_ratio`` = up / (up +
  down), ``null`` without ratings.
- ``answers``: bot replies with decision ``answer`` that cite a source (greetings and thanks
  do not) in the range. ``latency_ms``: p50 / p95 of their latency in milliseconds (inclusive
  linear quantiles, as ``chatbot eval``); ``null`` without answers.
- ``top_entries``: the knowledge-base items most often the top source of an answer in the range.
- ``unanswered``: unanswered questions (``chatbot.staff.questions``, resolved ones included)
  asked in the range.

The per-day series (``days``) use the same definitions with the day as the range, so a
conversation active on several days counts on each of them.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from chatbot.evaluation import percentile
from chatbot.models import ConversationRow, FeedbackRow, MessageRow
from chatbot.staff.accounts import StaffUser, require
from chatbot.staff.dates import DateRange, utc_day
from chatbot.staff.questions import collect

TOP_ENTRIES = 10
CSV_COLUMNS = (
    "date", "conversations", "messages", "handoffs", "handoff_rate", "deflection_rate",
    "feedback_up", "feedback_down", "feedback_ratio", "answers", "latency_p50_ms",
    "latency_p95_ms", "unanswered",
)


@dataclass
class _Facts:
    """What happened, reduced to (day, ...) tuples; figures are computed from these."""

    asked: set[tuple[date, str]]  # (day, conversation) with a customer message
    messages: Counter[date]
    handoffs: list[tuple[date, str, str]]  # (day, conversation, reason)
    agent_days: set[tuple[date, str]]
    ratings: list[tuple[date, str]]
    answers: list[tuple[date, float | None, str | None, str | None]]  # latency, top id, title
    unanswered: Counter[date]


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _figures(facts: _Facts, days: set[date]) -> dict[str, Any]:
    conversations = {c for d, c in facts.asked if d in days}
    handoffs = [(c, r) for d, c, r in facts.handoffs if d in days]
    handed = conversations & (
        {c for c, _ in handoffs} | {c for d, c in facts.agent_days if d in days}
    )
    ratings = Counter(r for d, r in facts.ratings if d in days)
    latencies = [ms for d, ms, _, _ in facts.answers if d in days and ms is not None]
    n = len(conversations)
    handoff_rate = _rate(len(handed), n)
    return {
        "conversations": n,
        "messages": sum(facts.messages[d] for d in days),
        "deflection_rate": None if handoff_rate is None else round(1 - handoff_rate, 4),
        "handoff_rate": handoff_rate,
        "handoffs": len(handoffs),
        "handoffs_by_reason": dict(sorted(Counter(r for _, r in handoffs).items())),
        "feedback": {"up": ratings["up"], "down": ratings["down"]},
        "feedback_ratio": _rate(ratings["up"], ratings["up"] + ratings["down"]),
        "answers": sum(1 for d, *_ in facts.answers if d in days),
        "latency_ms": {
            "p50": percentile(latencies, 50) if latencies else None,
            "p95": percentile(latencies, 95) if latencies else None,
        },
        "unanswered": sum(facts.unanswered[d] for d in days),
    }


def _first_per_reason(
    events: Iterable[tuple[datetime, str, str]],
) -> list[tuple[date, str, str]]:
    seen: set[tuple[str, str]] = set()
    out = []
    for at, conversation, reason in sorted(events):
        if (conversation, reason) not in seen:
            seen.add((conversation, reason))
            out.append((utc_day(at), conversation, reason))
    return out


class Analytics:
    def __init__(self, engine: Engine) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def report(
        self, actor: StaffUser, start: str | date | None = None, end: str | date | None = None
    ) -> dict[str, Any]:
        """The CONTRACT.md figures for the range, plus ``from``, ``to``, ``days`` (one object
        per day with the same figures), ``top_entries`` and the extra keys of the module
        docstring. Defaults: the last 30 days up to today (UTC)."""
        require(actor, "analytics")
        dates = DateRange.parse(start, end)
        with self._sessions() as session:
            facts = self._facts(session, dates)
        whole = _figures(facts, set(dates.each_day()))
        days = []
        for day in dates.each_day():
            figures = _figures(facts, {day})
            figures.pop("handoffs_by_reason")
            days.append({"date": day.isoformat(), **figures})
        top = Counter((entry, title) for _, _, entry, title in facts.answers if entry)
        return {
            "from": dates.start.isoformat(),
            "to": dates.end.isoformat(),
            **whole,
            "days": days,
            "top_entries": [
                {"id": entry, "title": title or entry, "answers": count}
                for (entry, title), count in sorted(top.items(), key=lambda x: (-x[1], x[0]))
            ][:TOP_ENTRIES],
        }

    def report_csv(
        self, actor: StaffUser, start: str | date | None = None, end: str | date | None = None
    ) -> str:
        """The figures as CSV: one row per day, then a ``total`` row for the whole range, then
        one ``handoffs:<reason>`` and one ``top_entry:<id>`` row each (count in ``handoffs`` /
        ``answers``)."""
        report = self.report(actor, start, end)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for row in [*report["days"], {**report, "date": "total"}]:
            writer.writerow([_cell(_flat(row).get(c)) for c in CSV_COLUMNS])
        for reason, count in report["handoffs_by_reason"].items():
            writer.writerow([_cell(_flat({"date": f"handoffs:{reason}", "handoffs": count}).get(c))
                             for c in CSV_COLUMNS])
        for entry in report["top_entries"]:
            writer.writerow([_cell({"date": f"top_entry:{entry['id']}",
                                    "answers": entry["answers"]}.get(c)) for c in CSV_COLUMNS])
        return out.getvalue()

    def _facts(self, session: Session, dates: DateRange) -> _Facts:
        in_range = (MessageRow.created_at >= dates.lower, MessageRow.created_at < dates.upper)
        rows = session.execute(
            select(MessageRow.conversation_id, MessageRow.role, MessageRow.decision,
                   MessageRow.sources, MessageRow.latency_ms, MessageRow.meta,
                   MessageRow.created_at).where(*in_range)
        ).all()
        asked, agent_days = set(), set()
        messages: Counter[date] = Counter()
        events, answers = [], []
        reasons = dict(session.execute(
            select(ConversationRow.id, ConversationRow.handoff_reason)
            .where(ConversationRow.id.in_({r.conversation_id for r in rows}))
        ).tuples().all()) if rows else {}
        for conv, role, decision, sources, latency, meta, at in rows:
            day = utc_day(at)
            messages[day] += 1
            if role == "user":
                asked.add((day, conv))
            elif role == "agent":
                agent_days.add((day, conv))
            elif decision == "handoff":
                reason = (meta or {}).get("reason") or reasons.get(conv) or "unknown"
                events.append((at, conv, reason))
            elif decision == "answer" and sources:  # greetings and thanks cite no source
                answers.append((day, latency, sources[0].get("id"), sources[0].get("title")))
        silent = session.execute(
            select(ConversationRow.id, ConversationRow.handoff_reason, ConversationRow.waiting_since)
            .where(ConversationRow.handoff_reason.is_not(None),
                   ConversationRow.waiting_since >= dates.lower,
                   ConversationRow.waiting_since < dates.upper)
        ).all()
        with_reply = set(session.scalars(
            select(MessageRow.conversation_id).where(
                MessageRow.role == "assistant", MessageRow.decision == "handoff",
                MessageRow.conversation_id.in_([conv for conv, _, _ in silent]))
        )) if silent else set()
        events += [(at, conv, reason) for conv, reason, at in silent if conv not in with_reply]
        ratings = [
            (utc_day(at), rating)
            for rating, at in session.execute(
                select(FeedbackRow.rating, FeedbackRow.created_at).where(
                    FeedbackRow.created_at >= dates.lower, FeedbackRow.created_at < dates.upper)
            ).tuples()
        ]
        unanswered = Counter(utc_day(q.at) for q in collect(session, dates, include_resolved=True))
        return _Facts(asked, messages, _first_per_reason(events), agent_days, ratings, answers,
                      unanswered)


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    flat = dict(row)
    flat["feedback_up"] = row.get("feedback", {}).get("up")
    flat["feedback_down"] = row.get("feedback", {}).get("down")
    flat["latency_p50_ms"] = row.get("latency_ms", {}).get("p50")
    flat["latency_p95_ms"] = row.get("latency_ms", {}).get("p95")
    return flat


def _cell(value: Any) -> Any:
    return "" if value is None else value
