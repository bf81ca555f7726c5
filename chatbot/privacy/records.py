"""Everything stored about one visitor: found, exported, erased; and retention.

A visitor is named by ``ID`` (CONTRACT.md, "Privacy CLI"): the verified user id of a signed-in
widget visitor (``conversations.visitor_id``: all their conversations), or the id of one
anonymous conversation. What is stored about them: the conversation rows, their messages
(the customer's, the bot's, the staff's), the customer's ratings and comments, and the
editors' resolutions of their unanswered questions. Deleting removes all of it in one
transaction (messages, feedback and resolutions go with the conversation: the foreign keys
cascade, and they are also deleted explicitly, for databases that do not enforce them). The
audit log keeps a ``privacy.delete`` line with a hash of the ID and the counts, not the ID.

Retention: ``purge(older_than_days)`` deletes conversations whose last activity
(``updated_at``) is older, the same way. ``RetentionJob`` runs it in the server every hour.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, delete, or_, select
from sqlalchemy.orm import Session, sessionmaker

from chatbot.errors import InvalidInput, NotFound
from chatbot.models import (
    AuditRow,
    ConversationRow,
    FeedbackRow,
    MessageRow,
    UnansweredResolutionRow,
    utcnow,
)
from chatbot.periodic import PeriodicJob

log = logging.getLogger(__name__)

# A century; far more would also reach before year 1, where dates end (OverflowError).
MAX_RETENTION_DAYS = 36_500


def id_hash(user_id: str) -> str:
    return "sha256:" + hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Deleted:
    conversations: int
    messages: int
    feedback: int

    def to_dict(self) -> dict[str, int]:
        return {"conversations": self.conversations, "messages": self.messages,
                "feedback": self.feedback}


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


class PrivacyRecords:
    def __init__(self, engine: Engine) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @staticmethod
    def _check(user_id: str) -> str:
        if not isinstance(user_id, str) or not user_id.strip() or len(user_id) > 200:
            raise InvalidInput("Name the visitor: a verified user id or a conversation id "
                               "(1 to 200 characters).")
        return user_id.strip()

    def _conversation_ids(self, session: Session, user_id: str) -> list[str]:
        query = select(ConversationRow.id).where(
            or_(ConversationRow.visitor_id == user_id, ConversationRow.id == user_id)
        ).order_by(ConversationRow.created_at, ConversationRow.id)
        return list(session.scalars(query))

    def export(self, user_id: str) -> dict[str, Any]:
        """Everything stored about the visitor; NotFound when nothing is."""
        user_id = self._check(user_id)
        with self._sessions() as session:
            ids = self._conversation_ids(session, user_id)
            if not ids:
                raise NotFound(f"Nothing is stored about '{user_id}' (no visitor or "
                               "conversation with that id).")
            rows = {r.id: r for r in session.scalars(
                select(ConversationRow).where(ConversationRow.id.in_(ids)))}
            messages: dict[str, list[MessageRow]] = {i: [] for i in ids}
            for m in session.scalars(select(MessageRow).where(
                    MessageRow.conversation_id.in_(ids)).order_by(MessageRow.id)):
                messages[m.conversation_id].append(m)
            ratings = {f.message_id: f for f in session.scalars(
                select(FeedbackRow).where(FeedbackRow.conversation_id.in_(ids)))}
            return {
                "user": user_id,
                "exported_at": utcnow().isoformat(),
                "conversations": [self._conversation(rows[i], messages[i], ratings) for i in ids],
            }

    @staticmethod
    def _conversation(row: ConversationRow, messages: list[MessageRow],
                      ratings: dict[int, FeedbackRow]) -> dict[str, Any]:
        out = []
        for m in messages:
            item: dict[str, Any] = {
                "id": m.id, "role": m.role, "content": m.content,
                "created_at": _iso(m.created_at),
            }
            if m.role == "assistant":
                item.update(decision=m.decision, sources=m.sources or [])
            if m.role == "user" and (m.meta or {}).get("query"):
                item["retrieval_query"] = m.meta["query"]
            rating = ratings.get(m.id)
            if rating is not None:
                item["feedback"] = {"rating": rating.rating, "comment": rating.comment,
                                    "created_at": _iso(rating.created_at)}
            out.append(item)
        return {
            "id": row.id, "visitor_id": row.visitor_id, "status": row.status,
            "handoff_reason": row.handoff_reason, "created_at": _iso(row.created_at),
            "updated_at": _iso(row.updated_at), "messages": out,
        }

    def delete(self, user_id: str, *, actor: str = "cli") -> Deleted:
        """Erase everything stored about the visitor; NotFound when nothing is."""
        user_id = self._check(user_id)
        with self._sessions.begin() as session:
            ids = self._conversation_ids(session, user_id)
            if not ids:
                raise NotFound(f"Nothing is stored about '{user_id}' (no visitor or "
                               "conversation with that id).")
            deleted = self._delete(session, ids)
            session.add(AuditRow(actor=actor, action="privacy.delete", target=id_hash(user_id),
                                 detail=deleted.to_dict()))
        return deleted

    def purge(self, older_than_days: int) -> Deleted:
        """Delete conversations with no activity for ``older_than_days`` days."""
        if older_than_days <= 0:
            raise InvalidInput("The retention period must be at least one day.")
        if older_than_days > MAX_RETENTION_DAYS:
            raise InvalidInput(f"The retention period is {older_than_days:,} days; the limit is "
                               f"{MAX_RETENTION_DAYS:,} (100 years).")
        cutoff = utcnow() - timedelta(days=older_than_days)
        with self._sessions.begin() as session:
            ids = list(session.scalars(
                select(ConversationRow.id).where(ConversationRow.updated_at < cutoff)))
            deleted = self._delete(session, ids)
            if ids:
                session.add(AuditRow(actor="retention", action="privacy.purge",
                                     target=f"older than {older_than_days} days",
                                     detail=deleted.to_dict()))
        return deleted

    @staticmethod
    def _delete(session: Session, ids: list[str]) -> Deleted:
        if not ids:
            return Deleted(0, 0, 0)
        message_ids = select(MessageRow.id).where(MessageRow.conversation_id.in_(ids))
        session.execute(delete(UnansweredResolutionRow).where(
            UnansweredResolutionRow.message_id.in_(message_ids)))
        feedback = session.execute(delete(FeedbackRow).where(FeedbackRow.conversation_id.in_(ids)))
        messages = session.execute(delete(MessageRow).where(MessageRow.conversation_id.in_(ids)))
        conversations = session.execute(delete(ConversationRow).where(ConversationRow.id.in_(ids)))
        return Deleted(conversations.rowcount, messages.rowcount, feedback.rowcount)


class RetentionJob(PeriodicJob):
    """Runs ``purge(days)`` at start and then every ``interval`` seconds, in a daemon thread."""

    thread_name = "retention"
    run_at_start = True
    failure = "retention purge failed"

    def __init__(self, records: PrivacyRecords, days: int, interval: float = 3600.0) -> None:
        super().__init__(interval)
        self.records, self.days = records, days
        self.runs = 0

    def enabled(self) -> bool:
        return self.days > 0

    def run_once(self) -> Deleted:
        deleted = self.records.purge(self.days)
        self.runs += 1
        if deleted.conversations:
            log.info("retention: deleted %d conversation(s) inactive for over %d days",
                     deleted.conversations, self.days)
        return deleted

    tick = run_once
