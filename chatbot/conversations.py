"""ConversationStore: conversations, their messages and feedback (tables in ``chatbot.models``).

The server holds the conversation: every client sends a conversation id and new text, and
history is read from here. ``add_message`` commits before it returns, so a customer's message
is durable before any model work starts. Feedback rates one assistant message of the same
conversation; rating a message again replaces the earlier rating.

Message roles: ``user`` (the customer), ``assistant`` (the bot), ``agent`` (a person from the
support team; ``meta["agent_name"]`` is the name the customer sees) and ``notice`` (a line the
customer sees about the conversation itself: a person joined, left or closed it; never shown
to the language model and never rated).

Status: ``bot`` -> ``waiting`` (for a person; ``waiting_since`` and ``handoff_reason`` set) ->
``agent`` (``assigned_agent`` has it; the bot is silent) -> ``bot`` again or ``closed``. The
staff transitions are conditional updates (``_update_if``), so two agents claiming at the same
moment cannot both win.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from chatbot.errors import Conflict, InvalidInput, NotFound
from chatbot.models import ConversationRow, FeedbackRow, MessageRow, utcnow
from chatbot.privacy.redaction import Redactor

ROLES = ("user", "assistant", "agent", "notice")
STATUSES = ("bot", "waiting", "agent", "closed")
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


@dataclass(frozen=True)
class Message:
    id: int
    role: str
    content: str
    created_at: datetime
    decision: str | None = None
    sources: list[dict[str, Any]] = field(default_factory=list)
    model: str | None = None
    latency_ms: float | None = None
    grounded: bool | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "role": self.role,
            "content": self.content,
            "created_at": self.created_at.isoformat(),
            "decision": self.decision,
            "sources": self.sources,
            "model": self.model,
            "latency_ms": self.latency_ms,
            "grounded": self.grounded,
            **({"agent_name": self.meta["agent_name"]} if "agent_name" in self.meta else {}),
        }


@dataclass(frozen=True)
class Conversation:
    id: str
    status: str  # bot | waiting | agent | closed
    handoff_reason: str | None
    created_at: datetime
    updated_at: datetime
    visitor_id: str | None = None  # the verified user id of a signed-in widget visitor
    waiting_since: datetime | None = None  # when it last started waiting for a person
    assigned_agent: str | None = None  # the staff email of the agent who has it (or had it)


@dataclass(frozen=True)
class Feedback:
    conversation_id: str
    message_id: int
    rating: str  # up | down
    comment: str | None
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "rating": self.rating,
            "comment": self.comment,
            "created_at": self.created_at.isoformat(),
        }


def _conversation(row: ConversationRow) -> Conversation:
    return Conversation(
        row.id, row.status, row.handoff_reason, row.created_at, row.updated_at, row.visitor_id,
        row.waiting_since, row.assigned_agent,
    )


def _feedback(row: FeedbackRow) -> Feedback:
    return Feedback(row.conversation_id, row.message_id, row.rating, row.comment, row.created_at)


def _message(row: MessageRow) -> Message:
    return Message(
        id=row.id,
        role=row.role,
        content=row.content,
        created_at=row.created_at,
        decision=row.decision,
        sources=row.sources or [],
        model=row.model,
        latency_ms=row.latency_ms,
        grounded=row.grounded,
        meta=row.meta or {},
    )


def check_conversation_id(conversation_id: str) -> str:
    if not _ID.match(conversation_id):
        raise InvalidInput(
            "A conversation id is 1 to 64 letters, digits, '-', '_', '.' or ':' "
            f"(got {conversation_id[:80]!r})."
        )
    return conversation_id


REDACTED_META = ("query", "context")  # meta keys that hold the customer's words


class ConversationStore:
    def __init__(self, engine: Engine, *, redactor: Redactor | None = None) -> None:
        """``redactor``: personal data in the customer's messages, feedback comments and the
        stored retrieval query is replaced before it is written (``CHATBOT_REDACT_PII``). The
        bot's and the staff's replies are kept as written: they quote the knowledge base (a
        generated sentence must be grounded in it), which holds the shop's own phone numbers
        and addresses, not personal data."""
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self.redactor = redactor if redactor is not None and redactor.enabled else None

    def _clean(self, text: str) -> str:
        return self.redactor.redact(text) if self.redactor is not None else text

    def _clean_meta(self, meta: dict[str, Any]) -> dict[str, Any]:
        if self.redactor is None:
            return meta
        out = dict(meta)
        for key in REDACTED_META:
            if isinstance(out.get(key), str):
                out[key] = self._clean(out[key])
        return out

    def create(self, conversation_id: str | None = None, *, visitor_id: str | None = None) -> str:
        cid = check_conversation_id(conversation_id) if conversation_id else uuid.uuid4().hex
        with self._sessions.begin() as session:
            if session.get(ConversationRow, cid) is not None:
                raise InvalidInput(f"The conversation '{cid}' already exists.")
            session.add(ConversationRow(id=cid, status="bot", visitor_id=visitor_id))
        return cid

    def exists(self, conversation_id: str) -> bool:
        with self._sessions() as session:
            return session.get(ConversationRow, conversation_id) is not None

    def status(self, conversation_id: str) -> str:
        with self._sessions() as session:
            row = session.get(ConversationRow, conversation_id)
            if row is None:
                raise NotFound(f"There is no conversation '{conversation_id}'.")
            return row.status

    def get(self, conversation_id: str) -> Conversation:
        with self._sessions() as session:
            row = session.get(ConversationRow, conversation_id)
            if row is None:
                raise NotFound(f"There is no conversation '{conversation_id}'.")
            return _conversation(row)

    def hand_off(self, conversation_id: str, *, reason: str) -> bool:
        """The conversation waits for a person; ``reason`` says why (see ``models``).

        True when it starts waiting now (``waiting_since`` is set); False when it already
        waits (its first reason and time are kept) or a person already has it.
        """
        started = self._update_if(
            conversation_id,
            status=("bot", "closed"),
            values={"status": "waiting", "handoff_reason": reason, "waiting_since": utcnow(),
                    "assigned_agent": None},
        )
        if not started:
            # Rows from before reasons were recorded wait without one: give them this one.
            self._update_if(
                conversation_id, status=("waiting",), reason_missing=True,
                values={"handoff_reason": reason},
            )
            self.status(conversation_id)  # NotFound for an unknown conversation
        return started

    def claim(self, conversation_id: str, *, agent: str) -> bool:
        """``agent`` (a staff email) takes the conversation: True when they take it now, False
        when they already had it; Conflict when another agent has it."""
        if self._update_if(
            conversation_id, status=("bot", "waiting", "closed"),
            values={"status": "agent", "assigned_agent": agent},
        ):
            return True
        current = self.get(conversation_id)
        if current.status == "agent" and current.assigned_agent == agent:
            return False
        raise Conflict(
            f"{current.assigned_agent or 'Another agent'} already has conversation "
            f"'{conversation_id}'; they can hand it back, or an admin can release it."
        )

    def move(
        self,
        conversation_id: str,
        *,
        to: str,
        status: tuple[str, ...],
        agent: str | None = None,
    ) -> bool:
        """Set the status to ``to`` if it is one of ``status`` (and, given ``agent``, that agent
        has it). Going back to the bot drops the assigned agent; closing keeps the name."""
        values: dict[str, Any] = {"status": to}
        if to == "bot":
            values["assigned_agent"] = None
        return self._update_if(conversation_id, status=status, agent=agent, values=values)

    def in_statuses(self, statuses: tuple[str, ...]) -> list[Conversation]:
        """Conversations with one of ``statuses``, longest waiting first."""
        with self._sessions() as session:
            rows = session.scalars(
                select(ConversationRow)
                .where(ConversationRow.status.in_(statuses))
                .order_by(ConversationRow.waiting_since.is_(None), ConversationRow.waiting_since,
                          ConversationRow.updated_at)
            )
            return [_conversation(r) for r in rows]

    def _update_if(
        self,
        conversation_id: str,
        *,
        status: tuple[str, ...],
        values: dict[str, Any],
        agent: str | None = None,
        reason_missing: bool = False,
    ) -> bool:
        """One conditional UPDATE: True if the conversation was in ``status`` (and held by
        ``agent``) and is now changed. Atomic, so concurrent transitions cannot both win."""
        query = update(ConversationRow).where(
            ConversationRow.id == conversation_id, ConversationRow.status.in_(status)
        )
        if agent is not None:
            query = query.where(ConversationRow.assigned_agent == agent)
        if reason_missing:
            query = query.where(ConversationRow.handoff_reason.is_(None))
        with self._sessions.begin() as session:
            result = session.execute(query.values(**values, updated_at=utcnow()))
            return bool(result.rowcount)

    def set_status(self, conversation_id: str, status: str) -> None:
        with self._sessions.begin() as session:
            row = session.get(ConversationRow, conversation_id)
            if row is None:
                raise NotFound(f"There is no conversation '{conversation_id}'.")
            row.status = status
            row.updated_at = utcnow()

    def add_message(
        self,
        conversation_id: str,
        *,
        role: str,
        content: str,
        decision: str | None = None,
        sources: list[dict[str, Any]] | None = None,
        model: str | None = None,
        latency_ms: float | None = None,
        grounded: bool | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Message:
        if role not in ROLES:
            raise InvalidInput(f"Unknown message role '{role}'; use one of {', '.join(ROLES)}.")
        with self._sessions.begin() as session:
            conv = session.get(ConversationRow, conversation_id)
            if conv is None:
                raise NotFound(f"There is no conversation '{conversation_id}'.")
            row = MessageRow(
                conversation_id=conversation_id,
                role=role,
                content=self._clean(content) if role == "user" else content,
                decision=decision,
                sources=sources or [],
                model=model,
                latency_ms=latency_ms,
                grounded=grounded,
                meta=self._clean_meta(meta or {}),
            )
            session.add(row)
            conv.updated_at = utcnow()
            session.flush()
            return _message(row)

    def count(self, conversation_id: str, *, role: str | None = None) -> int:
        """How many messages (of ``role``, if given) the conversation holds."""
        query = select(func.count(MessageRow.id)).where(MessageRow.conversation_id == conversation_id)
        if role is not None:
            query = query.where(MessageRow.role == role)
        with self._sessions() as session:
            return int(session.scalar(query) or 0)

    def messages(self, conversation_id: str, *, limit: int | None = None) -> list[Message]:
        """Messages oldest first; with ``limit``, only the most recent ones."""
        with self._sessions() as session:
            if session.get(ConversationRow, conversation_id) is None:
                raise NotFound(f"There is no conversation '{conversation_id}'.")
            query = select(MessageRow).where(MessageRow.conversation_id == conversation_id)
            if limit is not None:
                query = query.order_by(MessageRow.id.desc()).limit(limit)
                return [_message(r) for r in reversed(list(session.scalars(query)))]
            return [_message(r) for r in session.scalars(query.order_by(MessageRow.id))]

    def set_feedback(
        self, conversation_id: str, *, message_id: int, rating: str, comment: str | None = None
    ) -> Feedback:
        """Rate an assistant message of this conversation; a second rating replaces the first."""
        for attempt in (1, 2):
            try:
                with self._sessions.begin() as session:
                    return _feedback(
                        self._upsert_feedback(session, conversation_id, message_id, rating, comment)
                    )
            except IntegrityError:  # a concurrent first rating of the same message won
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _upsert_feedback(
        self, session: Any, conversation_id: str, message_id: int, rating: str, comment: str | None
    ) -> FeedbackRow:
        if session.get(ConversationRow, conversation_id) is None:
            raise NotFound(f"There is no conversation '{conversation_id}'.")
        message = session.get(MessageRow, message_id)
        if message is None or message.conversation_id != conversation_id:
            raise NotFound(f"There is no message {message_id} in conversation '{conversation_id}'.")
        if message.role != "assistant":
            raise InvalidInput(
                f"Message {message_id} is not an answer of the assistant; only answers can be rated."
            )
        row = session.scalars(select(FeedbackRow).where(FeedbackRow.message_id == message_id)).first()
        if row is None:
            row = FeedbackRow(conversation_id=conversation_id, message_id=message_id)
            session.add(row)
        comment = self._clean(comment) if comment is not None else None
        row.rating, row.comment, row.created_at = rating, comment, utcnow()
        session.flush()
        session.refresh(row)  # the stored values (SQLite returns naive UTC datetimes)
        return row

    def feedback(self, conversation_id: str) -> dict[int, Feedback]:
        """The feedback of a conversation by message id."""
        with self._sessions() as session:
            rows = session.scalars(
                select(FeedbackRow).where(FeedbackRow.conversation_id == conversation_id)
            )
            return {row.message_id: _feedback(row) for row in rows}
