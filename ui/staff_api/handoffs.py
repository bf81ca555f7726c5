"""Staff API for the handoff inbox (area "inbox": admins and agents).

CONTRACT.md: ``GET /handoffs``, ``POST /handoffs/{id}/claim``, ``/reply`` ``{"text"}``,
``/release``. Added here: ``POST /handoffs/{id}/close`` and ``GET /handoffs/{id}`` (the
transcript). Each route is a thin edge over ``chatbot.staff.handoffs.HandoffDesk``, the
functions the console's inbox tab calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from chatbot.staff.accounts import StaffUser
from chatbot.staff.handoffs import message_dict
from ui.staff_api.auth import allow

if TYPE_CHECKING:
    from chatbot.staff.services import Staff

INBOX = allow("inbox")  # every route: admins and agents; the acting user


class InboxItem(BaseModel):
    conversation_id: str
    reason: str | None = Field(
        description="customer_request, no_answer, low_confidence, negative_feedback, "
        "repeated_clarification or action_request."
    )
    summary: str = Field(description="A few lines: the questions, what the bot did, the last "
                         "customer message.")
    status: str = Field(description="waiting (for a person) or agent (a person has it); bot or "
                        "closed after a release or close.")
    waiting_since: str | None = Field(description="ISO 8601, when it started waiting.")
    assigned_agent: str | None = Field(description="The email of the agent who has it.")
    updated_at: str | None
    last_customer_message: str
    messages: int = Field(description="How many messages the conversation has.")


class InboxMessage(BaseModel):
    id: int
    role: Literal["user", "assistant", "agent", "notice"]
    content: str
    created_at: str | None
    decision: str | None
    sources: list[dict[str, Any]]
    model: str | None
    latency_ms: float | None
    grounded: bool | None
    agent_name: str | None = Field(None, description="Agent replies and notices: the name the "
                                   "customer saw.")
    agent_email: str | None = None


class InboxTranscript(InboxItem):
    transcript: list[InboxMessage] = Field(description="Every message, oldest first.")


class AgentReplyIn(BaseModel):
    text: str = Field(description="What the customer sees (limit: CHATBOT_MAX_MESSAGE_CHARS).")


class AgentReplyOut(BaseModel):
    ok: bool = True
    conversation_id: str
    message: InboxMessage


def router(staff: Staff) -> APIRouter:
    desk = staff.handoffs
    router = APIRouter(prefix="/handoffs", tags=["staff: inbox"])

    @router.get("", response_model=list[InboxItem])
    def handoffs(
        status: Literal["waiting", "agent", "all"] = Query(
            "all", description="waiting, agent (a person has it) or all (both)."
        ),
        mine: bool = Query(False, description="Only the conversations you have."),
        user: StaffUser = INBOX,
    ) -> list[dict[str, Any]]:
        """Conversations waiting for a person (longest waiting first), then those an agent has."""
        return [h.to_dict() for h in desk.inbox(user, which=status, mine=mine)]

    @router.get("/{conversation_id}", response_model=InboxTranscript)
    def transcript(conversation_id: str, user: StaffUser = INBOX) -> dict[str, Any]:
        """One conversation: its inbox entry and every message."""
        found = desk.transcript(user, conversation_id)
        return {**found.handoff.to_dict(),
                "transcript": [message_dict(m) for m in found.messages]}

    @router.post("/{conversation_id}/claim", response_model=InboxItem)
    def claim(conversation_id: str, user: StaffUser = INBOX) -> dict[str, Any]:
        """Take the conversation over: the bot falls silent, the customer is told who joined.
        409 when another agent has it."""
        return desk.claim(user, conversation_id).to_dict()

    @router.post("/{conversation_id}/reply", response_model=AgentReplyOut)
    def reply(
        conversation_id: str, body: AgentReplyIn, user: StaffUser = INBOX
    ) -> dict[str, Any]:
        """Write to the customer (only the agent who has the conversation, or an admin)."""
        stored = desk.reply(user, conversation_id, body.text)
        return {"ok": True, "conversation_id": conversation_id, "message": message_dict(stored)}

    @router.post("/{conversation_id}/release", response_model=InboxItem)
    def release(conversation_id: str, user: StaffUser = INBOX) -> dict[str, Any]:
        """Hand the conversation back to the bot."""
        return desk.release(user, conversation_id).to_dict()

    @router.post("/{conversation_id}/close", response_model=InboxItem)
    def close(conversation_id: str, user: StaffUser = INBOX) -> dict[str, Any]:
        """Close the conversation; if the customer writes again, the bot answers."""
        return desk.close(user, conversation_id).to_dict()

    return router
