"""Seeding conversations with chosen timestamps for the staff report tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import sessionmaker

from chatbot.models import ConversationRow, FeedbackRow, MessageRow


def at(text: str) -> datetime:
    """``"2025-03-01 10:00:00"`` → an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class Seeder:
    """Writes conversations, messages and ratings straight through SQLAlchemy."""

    def __init__(self, engine: Any) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def conversation(self, cid: str, when: str, **columns: Any) -> str:
        with self._sessions.begin() as session:
            session.add(ConversationRow(id=cid, created_at=at(when), updated_at=at(when), **columns))
        return cid

    def message(
        self,
        cid: str,
        when: str,
        role: str,
        content: str,
        *,
        decision: str | None = None,
        reason: str | None = None,
        source: str | None = None,
        latency: float | None = None,
        **meta: Any,
    ) -> int:
        if reason is not None:
            meta["reason"] = reason
        sources = [{"id": source, "title": f"Title of {source}", "score": 0.9}] if source else []
        with self._sessions.begin() as session:
            row = MessageRow(
                conversation_id=cid, role=role, content=content, decision=decision,
                sources=sources, latency_ms=latency, meta=meta, created_at=at(when),
            )
            session.add(row)
            session.flush()
            return row.id

    def rate(self, cid: str, message_id: int, rating: str, when: str, comment: str | None = None) -> None:
        with self._sessions.begin() as session:
            session.add(FeedbackRow(conversation_id=cid, message_id=message_id, rating=rating,
                                    comment=comment, created_at=at(when)))

    def turn(
        self, cid: str, when: str, question: str, reply: str, **assistant: Any
    ) -> tuple[int, int]:
        """A customer message and the bot's reply one second later (same minute)."""
        user = self.message(cid, when, "user", question)
        later = when[:-2] + f"{int(when[-2:]) + 1:02d}"
        return user, self.message(cid, later, "assistant", reply, **assistant)
