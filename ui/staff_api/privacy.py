"""Staff API, admins only: one visitor's data exported or erased, expired conversations purged.

``ID`` is what ``chatbot privacy export|delete --user ID`` takes: a verified visitor id or
the conversation id of an anonymous visitor. Thin edges over ``chatbot.staff.privacy``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from chatbot.staff.accounts import StaffUser
from ui.staff_api.auth import allow

if TYPE_CHECKING:
    from chatbot.staff.services import Staff

USERS = allow("users")  # privacy requests are account-level work: admins
USER_HELP = "A verified visitor id (widget) or the conversation id of an anonymous visitor"


class VisitorIn(BaseModel):
    user: str = Field(min_length=1, max_length=200, description=USER_HELP)


class PurgeIn(BaseModel):
    days: int | None = Field(None, ge=1, description="Default: CHATBOT_RETENTION_DAYS")


class DeletedOut(BaseModel):
    ok: bool = True
    conversations: int
    messages: int
    feedback: int


class PurgedOut(DeletedOut):
    days: int


def router(staff: Staff) -> APIRouter:
    api = APIRouter(prefix="/privacy")

    @api.get("/export")
    def export(user: str = Query(description=USER_HELP, min_length=1, max_length=200),
               actor: StaffUser = USERS) -> dict[str, Any]:
        """Everything stored about one visitor: `{"user", "exported_at", "conversations": [...]}`."""
        return staff.privacy.export(actor, user)

    @api.post("/delete", response_model=DeletedOut)
    def delete(body: VisitorIn, actor: StaffUser = USERS) -> dict[str, Any]:
        """Erase everything stored about one visitor; the counts of what went."""
        return {"ok": True, **staff.privacy.delete(actor, body.user).to_dict()}

    @api.post("/purge", response_model=PurgedOut)
    def purge(body: PurgeIn, actor: StaffUser = USERS) -> dict[str, Any]:
        """Delete conversations inactive for more than `days` days now (the server also does
        it every hour)."""
        days, deleted = staff.privacy.purge(actor, body.days)
        return {"ok": True, "days": days, **deleted.to_dict()}

    return api
