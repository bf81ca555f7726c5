"""Privacy requests from the staff side (admins): one visitor's data exported or erased, and
expired conversations purged; the same ``chatbot.privacy.records`` functions as the CLI."""

from __future__ import annotations

from typing import Any

from chatbot.privacy.records import Deleted, PrivacyRecords
from chatbot.staff.accounts import StaffUser, require


class PrivacyDesk:
    def __init__(self, records: PrivacyRecords, retention_days: int) -> None:
        self.records = records
        self.retention_days = retention_days

    def export(self, actor: StaffUser, user_id: str) -> dict[str, Any]:
        require(actor, "users")
        return self.records.export(user_id)

    def delete(self, actor: StaffUser, user_id: str) -> Deleted:
        require(actor, "users")
        return self.records.delete(user_id, actor=actor.email)

    def purge(self, actor: StaffUser, days: int | None = None) -> tuple[int, Deleted]:
        require(actor, "users")
        days = days or self.retention_days
        return days, self.records.purge(days)
