"""Transcripts (area "conversations"): search, read and export conversations.

Filters (``TranscriptFilter``), all optional and combined with AND:

- ``text``: the conversation id, or a case-insensitive substring of any message;
- ``start`` / ``end``: the conversation has a message (any role) on a day in that range (UTC,
  both ends included; either may be open);
- ``decision``: the bot replied at least once with ``answer`` / ``clarify`` / ``handoff``;
- ``feedback``: ``up`` / ``down``: at least one answer rated so; ``none``: no rating at all;
- ``handoff``: ``any``: handed to a person at least once (a handoff reply, or a handoff
  reason recorded on the conversation); ``none``: never; a reason such as ``no_answer``: handed
  off for that reason;
- ``status``: ``bot``, ``waiting``, ``agent`` or ``closed``.

The export is JSONL, one conversation a line, in the shape ``chatbot train`` reads
(``chatbot.training.data.read_conversations``): ``{"id", "status", "handoff_reason",
"created_at", "messages": [{"role", "content", "created_at", "decision"?, "sources"?,
"rating"?, "comment"?}]}``. Agent messages keep the role ``agent`` (training skips them); the
visitor id is not exported. With ``CHATBOT_REDACT_PII`` on, the customer's messages and comments
pass the redactor on the way out too, so rows stored before it was turned on are redacted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Engine, Select, exists, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from chatbot.conversations import check_conversation_id
from chatbot.errors import InvalidInput, NotFound
from chatbot.models import ConversationRow, FeedbackRow, MessageRow
from chatbot.privacy.redaction import Redactor
from chatbot.staff.accounts import StaffUser, require
from chatbot.staff.dates import Span

DECISIONS = ("answer", "clarify", "handoff")
FEEDBACK = ("up", "down", "none")
STATUSES = ("bot", "waiting", "agent", "closed")
HANDOFF_REASONS = ("customer_request", "no_answer", "low_confidence", "negative_feedback",
                   "repeated_clarification", "action_request")
MAX_PER_PAGE = 200
MAX_TEXT = 200
EXPORT_BATCH = 200


def _choice(value: str | None, name: str, allowed: tuple[str, ...]) -> str:
    value = (value or "").strip()
    if value and value not in allowed:
        raise InvalidInput(f"'{name}' must be one of {', '.join(allowed)} (got {value[:40]!r}).")
    return value


@dataclass(frozen=True)
class TranscriptFilter:
    text: str = ""
    span: Span = Span()
    decision: str = ""
    feedback: str = ""
    handoff: str = ""
    status: str = ""

    @classmethod
    def parse(
        cls,
        text: str | None = None,
        start: str | date | None = None,
        end: str | date | None = None,
        decision: str | None = None,
        feedback: str | None = None,
        handoff: str | None = None,
        status: str | None = None,
    ) -> TranscriptFilter:
        """Checked filters; a value outside its list is InvalidInput naming the choices."""
        text = " ".join((text or "").split())
        if len(text) > MAX_TEXT:
            raise InvalidInput(f"The search text is {len(text)} characters; the limit is {MAX_TEXT}.")
        return cls(
            text=text,
            span=Span.parse(start, end),
            decision=_choice(decision, "decision", DECISIONS),
            feedback=_choice(feedback, "feedback", FEEDBACK),
            handoff=_choice(handoff, "handoff", ("any", "none", *HANDOFF_REASONS)),
            status=_choice(status, "status", STATUSES),
        )

    def apply(self, query: Select[Any]) -> Select[Any]:
        conv = ConversationRow.id

        def has_message(*conditions: Any) -> Any:
            return exists().where(MessageRow.conversation_id == conv, *conditions)

        if self.text:
            pattern = "%" + self.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            query = query.where(or_(
                conv == self.text,
                has_message(func.lower(MessageRow.content).like(pattern.lower(), escape="\\")),
            ))
        if self.span.lower is not None or self.span.upper is not None:
            conditions = []
            if self.span.lower is not None:
                conditions.append(MessageRow.created_at >= self.span.lower)
            if self.span.upper is not None:
                conditions.append(MessageRow.created_at < self.span.upper)
            query = query.where(has_message(*conditions))
        if self.decision:
            query = query.where(has_message(
                MessageRow.role == "assistant", MessageRow.decision == self.decision))
        if self.feedback:
            rated = exists().where(FeedbackRow.conversation_id == conv)
            if self.feedback == "none":
                query = query.where(~rated)
            else:
                query = query.where(rated.where(FeedbackRow.rating == self.feedback))
        if self.handoff:
            handoff_reply = has_message(MessageRow.role == "assistant",
                                        MessageRow.decision == "handoff")
            if self.handoff == "any":
                query = query.where(or_(ConversationRow.handoff_reason.is_not(None), handoff_reply))
            elif self.handoff == "none":
                query = query.where(ConversationRow.handoff_reason.is_(None), ~handoff_reply)
            else:
                query = query.where(or_(
                    ConversationRow.handoff_reason == self.handoff,
                    has_message(MessageRow.role == "assistant", MessageRow.decision == "handoff",
                                MessageRow.meta["reason"].as_string() == self.handoff),
                ))
        if self.status:
            query = query.where(ConversationRow.status == self.status)
        return query


def _message_dict(
    row: MessageRow, rating: FeedbackRow | None, clean: Callable[[str], str]
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row.id,
        "role": row.role,
        "content": clean(row.content) if row.role == "user" else row.content,
        "created_at": row.created_at.isoformat(),
    }
    if row.role == "assistant":
        out.update(decision=row.decision, sources=row.sources or [], latency_ms=row.latency_ms,
                   grounded=row.grounded, reason=(row.meta or {}).get("reason"))
    if rating is not None:
        out["rating"] = rating.rating
        if rating.comment:
            out["comment"] = clean(rating.comment)
    return out


def _conversation_dict(
    row: ConversationRow, messages: list[MessageRow], ratings: dict[int, FeedbackRow],
    clean: Callable[[str], str],
) -> dict[str, Any]:
    return {
        "id": row.id,
        "status": row.status,
        "handoff_reason": row.handoff_reason,
        "assigned_agent": row.assigned_agent,
        "created_at": row.created_at.isoformat(),
        "messages": [_message_dict(m, ratings.get(m.id), clean) for m in messages],
    }


class Transcripts:
    def __init__(self, engine: Engine, *, redactor: Redactor | None = None) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._clean: Callable[[str], str] = (
            redactor.redact if redactor is not None and redactor.enabled else str
        )

    def _ordered(self, filters: TranscriptFilter) -> Select[Any]:
        last = (
            select(MessageRow.conversation_id, func.max(MessageRow.created_at).label("last_at"))
            .group_by(MessageRow.conversation_id)
            .subquery()
        )
        query = select(ConversationRow, last.c.last_at).outerjoin(
            last, last.c.conversation_id == ConversationRow.id
        )
        latest = func.coalesce(last.c.last_at, ConversationRow.created_at)
        return filters.apply(query).order_by(latest.desc(), ConversationRow.id)

    def search(
        self, actor: StaffUser, filters: TranscriptFilter, *, page: int = 1, per_page: int = 20
    ) -> dict[str, Any]:
        """One page of matching conversations, most recently active first:
        ``{"total", "page", "per_page", "items": [summary, ...]}``."""
        require(actor, "conversations")
        if page < 1:
            raise InvalidInput(f"'page' starts at 1 (got {page}).")
        if not 1 <= per_page <= MAX_PER_PAGE:
            raise InvalidInput(f"'per_page' must be between 1 and {MAX_PER_PAGE} (got {per_page}).")
        with self._sessions() as session:
            total = session.scalar(
                filters.apply(select(func.count()).select_from(ConversationRow))
            ) or 0
            rows = session.execute(
                self._ordered(filters).limit(per_page).offset((page - 1) * per_page)
            ).all()
            items = [self._summary(session, conv, last_at, filters.text) for conv, last_at in rows]
        return {"total": total, "page": page, "per_page": per_page, "items": items}

    def _summary(
        self, session: Session, conv: ConversationRow, last_at: Any, text: str
    ) -> dict[str, Any]:
        messages = session.scalars(
            select(MessageRow).where(MessageRow.conversation_id == conv.id).order_by(MessageRow.id)
        ).all()
        ratings = list(session.scalars(
            select(FeedbackRow.rating).where(FeedbackRow.conversation_id == conv.id)))
        first = next((m.content for m in messages if m.role == "user"), "")
        match = ""
        if text:
            needle = text.lower()
            match = next((m.content for m in messages if needle in m.content.lower()), "")
        return {
            "id": conv.id,
            "status": conv.status,
            "handoff_reason": conv.handoff_reason,
            "created_at": conv.created_at.isoformat(),
            "last_at": (last_at or conv.created_at).isoformat(),
            "messages": len(messages),
            "first_question": first[:200],
            "match": _snippet(match, text),
            "decisions": sorted({m.decision for m in messages if m.decision}),
            "feedback": {"up": ratings.count("up"), "down": ratings.count("down")},
        }

    def conversation(self, actor: StaffUser, conversation_id: str) -> dict[str, Any]:
        """One conversation in full: every message with its decision, sources and rating."""
        require(actor, "conversations")
        check_conversation_id(conversation_id)
        with self._sessions() as session:
            row = session.get(ConversationRow, conversation_id)
            if row is None:
                raise NotFound(f"There is no conversation '{conversation_id}'.")
            return self._full(session, [row])[0]

    def _full(self, session: Session, rows: list[ConversationRow]) -> list[dict[str, Any]]:
        ids = [r.id for r in rows]
        messages: dict[str, list[MessageRow]] = {i: [] for i in ids}
        for m in session.scalars(
            select(MessageRow).where(MessageRow.conversation_id.in_(ids)).order_by(MessageRow.id)
        ):
            messages[m.conversation_id].append(m)
        ratings = {
            f.message_id: f
            for f in session.scalars(select(FeedbackRow).where(FeedbackRow.conversation_id.in_(ids)))
        }
        return [_conversation_dict(r, messages[r.id], ratings, self._clean) for r in rows]

    def export_lines(self, actor: StaffUser, filters: TranscriptFilter) -> Iterator[str]:
        """JSONL lines (each ending in a newline) of every matching conversation, oldest first.

        The role is checked at once, not when the first line is read."""
        require(actor, "conversations")
        with self._sessions() as session:
            ids = list(session.scalars(
                filters.apply(select(ConversationRow.id)).order_by(
                    ConversationRow.created_at, ConversationRow.id)
            ))
        return self._lines(ids)

    def _lines(self, ids: list[str]) -> Iterator[str]:
        for start in range(0, len(ids), EXPORT_BATCH):
            batch = ids[start:start + EXPORT_BATCH]
            with self._sessions() as session:
                rows = {r.id: r for r in session.scalars(
                    select(ConversationRow).where(ConversationRow.id.in_(batch)))}
                present = [rows[i] for i in batch if i in rows]  # deleted meanwhile: skipped
                for item in self._full(session, present):
                    yield json.dumps(item, ensure_ascii=False) + "\n"


def _snippet(content: str, text: str, width: int = 160) -> str:
    if not content or not text:
        return ""
    at = content.lower().find(text.lower())
    start = max(0, at - width // 3)
    piece = content[start:start + width]
    return ("…" if start else "") + piece + ("…" if start + width < len(content) else "")
