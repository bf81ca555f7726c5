"""Tables owned by the chatbot package: conversations, their messages and feedback on them.

Invariants: a customer's message is committed before any model work starts, so nothing the
customer said is lost when generation fails or the process dies mid-turn; a message has at most
one feedback row (a second rating replaces the first).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from knowledge.models import utcnow

__all__ = ["Base", "ConversationRow", "FeedbackRow", "MessageRow", "utcnow"]


class Base(DeclarativeBase):
    pass


class ConversationRow(Base):
    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), default="bot")  # bot | waiting | agent | closed
    visitor_id: Mapped[str | None] = mapped_column(String(200), index=True, nullable=True)
    # Why the conversation was last handed to a person: customer_request | no_answer |
    # low_confidence | repeated_clarification (the handoff reasons of chatbot.dialogue.decision).
    handoff_reason: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MessageRow(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(20))  # user | assistant | agent
    content: Mapped[str] = mapped_column(Text)
    decision: Mapped[str | None] = mapped_column(String(20), nullable=True)
    sources: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    model: Mapped[str | None] = mapped_column(String(300), nullable=True)
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    grounded: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class FeedbackRow(Base):
    """A customer's rating of one assistant message; unique per message (re-rating replaces)."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), unique=True
    )
    rating: Mapped[str] = mapped_column(String(10))  # up | down
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
