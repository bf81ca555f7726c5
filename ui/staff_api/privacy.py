"""Staff API, admins only: one visitor's data exported or erased, expired conversations purged.

``ID`` is what ``chatbot privacy export|delete --user ID`` takes: a verified visitor id or
the conversation id of an anonymous visitor. Thin edges over ``chatbot.staff.privacy``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from chatbot.privacy.records import MAX_RETENTION_DAYS
from chatbot.staff.accounts import StaffUser
from ui.staff_api.auth import allow

if TYPE_CHECKING:
    from chatbot.staff.services import Staff

USERS = allow("users")  # privacy requests are account-level work: admins
USER_HELP = "A verified visitor id (widget) or the conversation id of an anonymous visitor"


class VisitorIn(BaseModel):
    user: str = Field(min_length=1, max_length=200, description=USER_HELP)


class PurgeIn(BaseModel):
    days: int | None = Field(None, ge=1, le=MAX_RETENTION_DAYS,
                             description="Default: CHATBOT_RETENTION_DAYS")


class DeletedOut(BaseModel):
    ok: bool = True
    conversations: int
    messages: int
    feedback: int


class PurgedOut(DeletedOut):
    days: int


class ExportedRating(BaseModel):
    rating: str
    comment: str | None
    created_at: str | None


class ExportedMessage(BaseModel):
    """Keys that do not apply to a message's role are left out."""

    id: int
    role: str
    content: str
    created_at: str | None
    decision: str | None = Field(None, description="The bot's messages.")
    sources: list[dict[str, Any]] = Field(default_factory=list, description="The bot's messages.")
    retrieval_query: str | None = Field(None, description="The customer's, when rewritten.")
    feedback: ExportedRating | None = None


class ExportedConversation(BaseModel):
    id: str
    visitor_id: str | None
    status: str
    handoff_reason: str | None
    created_at: str | None
    updated_at: str | None
    messages: list[ExportedMessage]


class VisitorExport(BaseModel):
    user: str
    exported_at: str
    conversations: list[ExportedConversation]


def router(staff: Staff) -> APIRouter:
    api = APIRouter(prefix="/privacy")

    # Unset keys stay out: the export is the same object as `chatbot privacy export` prints.
    @api.get("/export", response_model=VisitorExport, response_model_exclude_unset=True)
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
