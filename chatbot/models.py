"""Tables owned by the chatbot package: conversations, their messages and feedback on them.

Invariants: a customer's message is committed before any model work starts, so nothing the
customer said is lost when generation fails or the process dies mid-turn; a message has at most
one feedback row (a second rating replaces the first).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from knowledge.models import utcnow

__all__ = [
    "AuditRow",
    "Base",
    "ConversationRow",
    "FeedbackRow",
    "MessageRow",
    "RateLimitRow",
    "RegressionCaseRow",
    "StaffSessionRow",
    "StaffTokenRow",
    "StaffUserRow",
    "UnansweredResolutionRow",
    "utcnow",
]


class Base(DeclarativeBase):
    pass


class ConversationRow(Base):
    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), default="bot")  # bot | waiting | agent | closed
    visitor_id: Mapped[str | None] = mapped_column(String(200), index=True, nullable=True)
    # Why the conversation was last handed to a person: customer_request | no_answer |
    # low_confidence | repeated_clarification | action_request (the handoff reasons of
    # chatbot.dialogue.decision).
    handoff_reason: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # Set when the conversation starts waiting for a person; kept after it is claimed.
    waiting_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # The staff email of the agent who has claimed the conversation (status "agent").
    assigned_agent: Mapped[str | None] = mapped_column(String(200), nullable=True)
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


class StaffUserRow(Base):
    """A staff account. Only an argon2 hash of the password is stored; there is no default user."""

    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # stored lower-case
    role: Mapped[str] = mapped_column(String(20))  # admin | editor | agent
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class StaffTokenRow(Base):
    """A staff API bearer token; only its SHA-256 is stored (the token is shown once)."""

    __tablename__ = "staff_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # shown in lists, to tell tokens apart
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class StaffSessionRow(Base):
    """A signed-in console session; the cookie holds a random secret whose SHA-256 is the key."""

    __tablename__ = "staff_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class AuditRow(Base):
    """Who changed what and when (knowledge base, handoffs, accounts)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(60), index=True)  # e.g. entry.update, kb.publish
    target: Mapped[str] = mapped_column(String(300), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class UnansweredResolutionRow(Base):
    """A customer question the bot could not answer, dealt with by an editor.

    ``action``: entry (a new entry was made from it), paraphrase (added to ``entry_id``) or
    dismissed. Resolved questions leave the unanswered list.
    """

    __tablename__ = "unanswered_resolutions"

    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    action: Mapped[str] = mapped_column(String(20))
    entry_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    author: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RegressionCaseRow(Base):
    """One case of the knowledge base's regression set, checked before each publish.

    The shape of a ``chatbot eval --queries`` line: ``query``, ``expected_id`` (an entry or
    document id; None: the bot must not answer) and the ``history`` replayed before it.
    """

    __tablename__ = "kb_regression_cases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    query: Mapped[str] = mapped_column(Text)
    expected_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    history: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    author: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RateLimitRow(Base):
    """One rate-limit key's theoretical arrival time (``chatbot.ratelimit``), in seconds since
    the epoch; kept here only where ``CHATBOT_RATE_LIMIT_STORE`` counts in the database."""

    __tablename__ = "rate_limits"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    tat: Mapped[float] = mapped_column(Float)
