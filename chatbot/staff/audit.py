"""The audit log: who changed what and when, for the knowledge base, handoffs and accounts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import sessionmaker

from chatbot.models import AuditRow
from chatbot.staff.accounts import StaffUser, require


@dataclass(frozen=True)
class AuditEvent:
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "actor": self.actor, "action": self.action,
                "target": self.target, "detail": self.detail}


class AuditLog:
    def __init__(self, engine: Engine) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def record(
        self, actor: StaffUser | str, action: str, target: str = "", **detail: Any
    ) -> None:
        """Append one event; ``actor`` is a staff user or a name such as ``cli``."""
        name = actor.email if isinstance(actor, StaffUser) else actor
        with self._sessions.begin() as session:
            session.add(AuditRow(actor=name, action=action, target=target[:300], detail=detail))

    def events(
        self,
        actor: StaffUser,
        *,
        limit: int = 200,
        action_prefix: str = "",
        target: str = "",
    ) -> list[AuditEvent]:
        """Newest first. Admins and editors see the log (it is mostly knowledge-base work)."""
        require(actor, "kb")
        with self._sessions() as session:
            query = select(AuditRow).order_by(AuditRow.id.desc()).limit(max(1, min(limit, 5000)))
            if action_prefix:
                query = query.where(AuditRow.action.startswith(action_prefix))
            if target:
                query = query.where(AuditRow.target == target)
            return [
                AuditEvent(r.at, r.actor, r.action, r.target, r.detail or {})
                for r in session.scalars(query)
            ]
