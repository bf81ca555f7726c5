"""The handoff inbox: conversations waiting for a person, and the agents who take them over.

An agent (or admin) claims a waiting conversation; from then on the bot is silent in it
(``ChatService.stream_message``) and the agent's replies are stored as ``agent`` messages that
the chat page and the widget show. The agent hands it back to the bot (release) or closes it.
The customer sees each change as a ``notice`` message ("Sam ... has joined").

Who may do what (beyond the ``inbox`` area of ``accounts.PERMISSIONS``): only the agent who
has a conversation, or an admin, may reply to it, hand it back or close it; claiming one that
another agent has is a Conflict (hand it back first). Every change is audited
(``handoff.claim``, ``handoff.reply``, ``handoff.release``, ``handoff.close``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from chatbot import replies
from chatbot.conversations import Conversation, ConversationStore, Message, check_conversation_id
from chatbot.errors import Conflict, Forbidden, InvalidInput
from chatbot.service import clean_message
from chatbot.settings import Settings
from chatbot.staff.accounts import StaffUser, require
from chatbot.staff.audit import AuditLog
from chatbot.staff.summary import summarize
from chatbot.staff.webhook import iso

AREA = "inbox"
REASONS = (
    "customer_request", "no_answer", "low_confidence", "negative_feedback",
    "repeated_clarification", "action_request",
)
LISTS = {"waiting": ("waiting",), "agent": ("agent",), "all": ("waiting", "agent")}


@dataclass(frozen=True)
class Handoff:
    """One conversation in the inbox, as the agent sees it in the list."""

    conversation_id: str
    reason: str | None
    summary: str
    status: str  # waiting | agent (| bot, closed for a transcript asked for by id)
    waiting_since: datetime | None
    assigned_agent: str | None
    updated_at: datetime
    last_customer_message: str
    messages: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "conversation_id": self.conversation_id,
            "reason": self.reason,
            "summary": self.summary,
            "status": self.status,
            "waiting_since": iso(self.waiting_since),
            "assigned_agent": self.assigned_agent,
            "updated_at": iso(self.updated_at),
            "last_customer_message": self.last_customer_message,
            "messages": self.messages,
        }


@dataclass(frozen=True)
class Transcript:
    handoff: Handoff
    messages: list[Message]


def message_dict(message: Message) -> dict[str, Any]:
    """A transcript message for staff: the customer's fields plus who wrote an agent's reply."""
    out = message.to_dict()
    out["created_at"] = iso(message.created_at)
    out["agent_name"] = message.meta.get("agent_name")
    out["agent_email"] = message.meta.get("agent_email")
    return out


class HandoffDesk:
    def __init__(
        self,
        engine: Engine,
        conversations: ConversationStore,
        settings: Settings,
        audit: AuditLog,
    ) -> None:
        self.engine = engine
        self.conversations = conversations
        self.settings = settings
        self.audit = audit

    # --- reading ----------------------------------------------------------------------

    def inbox(self, actor: StaffUser, *, which: str = "all", mine: bool = False) -> list[Handoff]:
        """Conversations waiting for a person (longest waiting first), then those an agent
        has. ``which``: waiting | agent | all; ``mine``: only those the actor has."""
        require(actor, AREA)
        if which not in LISTS:
            raise InvalidInput(f"Unknown list '{which}'; use waiting, agent or all.")
        found = self.conversations.in_statuses(LISTS[which])
        found.sort(key=lambda c: c.status != "waiting")  # stable: keeps the waiting order
        if mine:
            found = [c for c in found if c.assigned_agent == actor.email]
        return [self._handoff(c) for c in found]

    def transcript(self, actor: StaffUser, conversation_id: str) -> Transcript:
        """One conversation with every message, for the agent (any status)."""
        require(actor, AREA)
        conversation = self.conversations.get(check_conversation_id(conversation_id))
        messages = self.conversations.messages(conversation.id)
        return Transcript(self._handoff(conversation, messages), messages)

    # --- changing ---------------------------------------------------------------------

    def claim(self, actor: StaffUser, conversation_id: str) -> Handoff:
        """The actor takes the conversation over; the bot falls silent and the customer is
        told who joined. Claiming one you already have changes nothing."""
        require(actor, AREA)
        cid = check_conversation_id(conversation_id)
        if self.conversations.claim(cid, agent=actor.email):
            self._notice(cid, actor, replies.AGENT_JOINED, "agent_joined")
            self.audit.record(actor, "handoff.claim", cid)
        return self._handoff(self.conversations.get(cid))

    def reply(self, actor: StaffUser, conversation_id: str, text: str) -> Message:
        """The agent who has the conversation (or an admin) writes to the customer."""
        conversation = self._held(actor, conversation_id, "reply to")
        text = clean_message(text, self.settings.max_message_chars)
        stored = self.conversations.add_message(
            conversation.id, role="agent", content=text,
            meta={"agent_name": replies.agent_name(actor.email), "agent_email": actor.email},
        )
        self.audit.record(actor, "handoff.reply", conversation.id, message_id=stored.id,
                          chars=len(text))
        return stored

    def release(self, actor: StaffUser, conversation_id: str) -> Handoff:
        """Hand the conversation back to the bot (from an agent, or straight from waiting)."""
        require(actor, AREA)
        cid = check_conversation_id(conversation_id)
        current = self.conversations.get(cid)
        if current.status == "agent":
            self._held(actor, cid, "hand back", current)
            moved = self.conversations.move(cid, to="bot", status=("agent",),
                                            agent=current.assigned_agent)
            text, event = replies.AGENT_LEFT, "agent_left"
        elif current.status == "waiting":
            moved = self.conversations.move(cid, to="bot", status=("waiting",))
            text, event = replies.RETURNED, "returned"
        else:
            raise Conflict(f"Conversation '{cid}' is with the bot ({current.status}); there is "
                           "nothing to hand back.")
        if not moved:
            raise Conflict(f"Conversation '{cid}' changed meanwhile; reload and try again.")
        self._notice(cid, actor, text, event)
        self.audit.record(actor, "handoff.release", cid, was=current.status)
        return self._handoff(self.conversations.get(cid))

    def close(self, actor: StaffUser, conversation_id: str) -> Handoff:
        """Close the conversation; if the customer writes again, the bot answers."""
        require(actor, AREA)
        cid = check_conversation_id(conversation_id)
        current = self.conversations.get(cid)
        if current.status == "closed":
            raise Conflict(f"Conversation '{cid}' is already closed.")
        if current.status == "agent":
            self._held(actor, cid, "close", current)
        if not self.conversations.move(
            cid, to="closed", status=(current.status,),
            agent=current.assigned_agent if current.status == "agent" else None,
        ):
            raise Conflict(f"Conversation '{cid}' changed meanwhile; reload and try again.")
        self._notice(cid, actor, replies.CLOSED, "closed")
        self.audit.record(actor, "handoff.close", cid, was=current.status)
        return self._handoff(self.conversations.get(cid))

    # --- helpers ----------------------------------------------------------------------

    def _held(
        self,
        actor: StaffUser,
        conversation_id: str,
        doing: str,
        current: Conversation | None = None,
    ) -> Conversation:
        """The conversation, if the actor may act in it as the person who has it."""
        require(actor, AREA)
        current = current or self.conversations.get(check_conversation_id(conversation_id))
        if current.status != "agent":
            raise Conflict(
                f"Claim conversation '{current.id}' before you {doing} it (it is {current.status})."
            )
        if current.assigned_agent != actor.email and actor.role != "admin":
            raise Forbidden(
                f"{current.assigned_agent} has conversation '{current.id}'; only they or an "
                f"admin may {doing} it."
            )
        return current

    def _notice(self, cid: str, actor: StaffUser, template: str, event: str) -> None:
        name = replies.agent_name(actor.email)
        self.conversations.add_message(
            cid, role="notice", content=template.format(name=name),
            meta={"event": event, "agent_name": name, "agent_email": actor.email},
        )

    def _handoff(
        self, conversation: Conversation, messages: list[Message] | None = None
    ) -> Handoff:
        if messages is None:
            messages = self.conversations.messages(conversation.id)
        feedback = self.conversations.feedback(conversation.id)
        last = next((m.content for m in reversed(messages) if m.role == "user"), "")
        return Handoff(
            conversation_id=conversation.id,
            reason=conversation.handoff_reason,
            summary=summarize(messages, feedback, reason=conversation.handoff_reason),
            status=conversation.status,
            waiting_since=conversation.waiting_since,
            assigned_agent=conversation.assigned_agent,
            updated_at=conversation.updated_at,
            last_customer_message=last,
            messages=len(messages),
        )
