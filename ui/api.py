"""The customer HTTP API (``/api/v1/conversations...``), a thin edge over ``ChatService``.

Routes are sync functions: FastAPI runs them in its threadpool, so retrieval and generation
never block the event loop. A message sent with ``Accept: text/event-stream`` is answered with
server-sent events::

    event: delta   data: {"text": "..."}      a piece of the reply
    event: reset   data: {"text": "..."}      the text so far is withdrawn; this replaces it
    event: final   data: {<ask --json object>, "message_id": int}
    event: error   data: {"ok": false, ...}   only if something fails after streaming began

Errors before the first event (unknown conversation, empty or too long text) are ordinary
JSON error responses with their status.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from chatbot.errors import ChatbotError
from chatbot.service import Delta, Event, Final, Reset, TurnResult
from ui.api_schema import RowId
from ui.errors import ERROR_RESPONSES, REASONS

if TYPE_CHECKING:
    from chatbot.service import ChatService

log = logging.getLogger(__name__)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class HistoryTurn(BaseModel):
    role: Literal["user", "assistant"]
    content: str


class NewConversation(BaseModel):
    history: list[HistoryTurn] = Field(
        default_factory=list, max_length=200, description="Earlier turns, replayed in order."
    )
    # A plain object, checked by chatbot.identity: a malformed one is a 400, a bad signature 403.
    visitor: dict[str, Any] | None = Field(
        None,
        description="A signed-in visitor of the embedding site: {user_id, name?, email?, "
        "signature: '<ts>.<hex>', ts?}, signed with CHATBOT_WIDGET_SECRET (README, 'Signed "
        "visitor identity'). Verified visitors' conversations share their user id.",
        examples=[{"user_id": "u-42", "name": "Ada Lovelace", "email": "ada@example.com",
                   "signature": "1700000000." + "0" * 64}],
    )


class ConversationCreated(BaseModel):
    id: str


class NewMessage(BaseModel):
    text: str = Field(description="The customer's message (limit: CHATBOT_MAX_MESSAGE_CHARS).")


class Source(BaseModel):
    id: str
    title: str
    score: float


class Turn(BaseModel):
    """The ``chatbot ask --json`` object, plus the id of the stored reply (to rate it)."""

    conversation_id: str
    decision: Literal["answer", "clarify", "handoff"]
    text: str
    sources: list[Source] = Field(description="Ranked best first; for clarify, the candidates.")
    grounded: bool | None
    latency_ms: float
    origin: str = Field(
        "", description="Where an answer's text came from: fast_path (a confident FAQ match), "
        "generated, fallback (the model's text failed a check or the model was busy: the "
        "knowledge base's own text), kb_only (no model); empty for clarify and handoff."
    )
    message_id: int | None = Field(
        description="The stored reply; null while a person has the conversation (the bot is "
        "silent: the message was passed on, decision handoff)."
    )


class Rating(BaseModel):
    message_id: int
    rating: Literal["up", "down"]
    comment: str | None
    created_at: str


class FeedbackOut(Rating):
    ok: bool = True


class MessageOut(BaseModel):
    id: int
    role: Literal["user", "assistant", "agent", "notice"] = Field(
        description="user (the customer), assistant (the bot), agent (a person from the support "
        "team), notice (a person joined, left or closed the conversation)."
    )
    content: str
    created_at: str
    decision: str | None
    sources: list[Source]
    model: str | None
    latency_ms: float | None
    grounded: bool | None
    feedback: Rating | None = Field(None, description="The customer's rating, if any.")
    agent_name: str | None = Field(
        None, description="Messages of a person (agent, notice): the name the customer sees."
    )


class ConversationOut(BaseModel):
    id: str
    status: str = Field(description="bot, waiting (for a person), agent (a person has it), closed.")
    handoff_reason: str | None
    messages: list[MessageOut]


class FeedbackIn(BaseModel):
    message_id: RowId = Field(description="An assistant message of this conversation.")
    rating: Literal["up", "down"]
    comment: str | None = Field(None, description="Optional, up to 2,000 characters.")


class HandoffOut(BaseModel):
    ok: bool = True
    status: Literal["waiting", "agent"]
    text: str = Field(description="What happens next, as told to the customer (also stored).")
    message_id: int


def turn_dict(result: TurnResult) -> dict[str, Any]:
    return {**result.to_dict(), "origin": result.origin, "message_id": result.message_id}


def wants_events(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")


def sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def event_stream(events: Iterator[Event]) -> Iterator[str]:
    try:
        for event in events:
            if isinstance(event, Delta):
                yield sse("delta", {"text": event.text})
            elif isinstance(event, Reset):
                yield sse("reset", {"text": event.text})
            elif isinstance(event, Final):
                yield sse("final", turn_dict(event.result))
    except ChatbotError as exc:
        yield sse("error", {"ok": False, "error": exc.message, "status": exc.status})
    except Exception:
        log.exception("a streamed turn failed")
        yield sse("error", {"ok": False, "error": REASONS[500], "status": 500})


def started(events: Iterator[Event]) -> Iterator[Event]:
    """Runs a turn up to its first event, so failures before it are plain HTTP errors."""
    first = next(events)
    return itertools.chain([first], events)


def customer_api(chat: ChatService) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["customer"], responses=ERROR_RESPONSES)

    @router.post("/conversations", response_model=ConversationCreated)
    def create_conversation(body: NewConversation | None = None) -> dict[str, Any]:
        """Start a conversation, optionally with earlier turns and a signed visitor identity."""
        history = [t.model_dump() for t in body.history] if body else []
        visitor = body.visitor if body else None
        return {"id": chat.start_conversation(history=history, visitor=visitor)}

    @router.post(
        "/conversations/{conversation_id}/messages",
        response_model=Turn,
        responses={
            200: {
                "description": "The reply; with `Accept: text/event-stream`, server-sent events "
                "`delta` / `reset` {\"text\"} then `final` (this object).",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            }
        },
    )
    def send_message(conversation_id: str, body: NewMessage, request: Request) -> Any:
        """One customer turn: the reply, its decision and sources."""
        if wants_events(request):
            events = started(chat.stream_message(conversation_id, body.text))
            return StreamingResponse(
                event_stream(events), media_type="text/event-stream", headers=SSE_HEADERS
            )
        return turn_dict(chat.send_message(conversation_id, body.text))

    @router.get("/conversations/{conversation_id}", response_model=ConversationOut)
    def get_conversation(conversation_id: str) -> dict[str, Any]:
        """The conversation's status and every message, oldest first."""
        view = chat.conversation(conversation_id)
        return {
            "id": view.conversation.id,
            "status": view.conversation.status,
            "handoff_reason": view.conversation.handoff_reason,
            "messages": [
                {
                    **m.to_dict(),
                    "feedback": view.feedback[m.id].to_dict() if m.id in view.feedback else None,
                }
                for m in view.messages
            ],
        }

    @router.post("/conversations/{conversation_id}/feedback", response_model=FeedbackOut)
    def feedback(conversation_id: str, body: FeedbackIn) -> dict[str, Any]:
        """Rate an answer of the assistant; rating it again replaces the earlier rating."""
        stored = chat.record_feedback(conversation_id, body.message_id, body.rating, body.comment)
        return {"ok": True, **stored.to_dict()}

    @router.post("/conversations/{conversation_id}/handoff", response_model=HandoffOut)
    def handoff(conversation_id: str) -> dict[str, Any]:
        """The customer asks for a person: the conversation waits for a colleague."""
        result = chat.request_handoff(conversation_id)
        return {"ok": True, "status": result.status, "text": result.text,
                "message_id": result.message_id}

    return router
