"""What a turn produces: the streamed events (``Delta``, ``Reset``, ``Final``) and the result.

Kept apart from ``chatbot.service`` so the edges (HTTP, OpenAI, chat page) and the monitoring
can name them without the service's machinery; ``chatbot.service`` re-exports them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from chatbot import grounding
from chatbot.conversations import Conversation, Feedback, Message
from knowledge.retrieval import Hit


@dataclass
class TurnResult:
    conversation_id: str
    decision: str  # answer | clarify | handoff
    text: str
    sources: list[dict[str, Any]]
    grounded: bool | None
    latency_ms: float
    message_id: int | None = None
    reason: str = ""
    fallback: bool = False
    model: str | None = None
    tokens: int = 0  # tokens the language model produced for this turn
    # Where an answer's text came from: fast_path, kb_only (no model), generated, fallback;
    # "" for fixed replies (small talk, clarifying questions, handoffs).
    origin: str = ""
    subject: str | None = None  # the subject the conversation was about (chatbot.dialogue.focus)

    def to_dict(self) -> dict[str, Any]:
        """The ``chatbot ask --json`` object of CONTRACT.md."""
        return {
            "conversation_id": self.conversation_id,
            "decision": self.decision,
            "text": self.text,
            "sources": self.sources,
            "grounded": self.grounded,
            "latency_ms": round(self.latency_ms, 1),
        }


@dataclass
class Delta:
    text: str


@dataclass
class Reset:
    """The text streamed so far is withdrawn (it was not grounded); ``text`` replaces it."""

    text: str


@dataclass
class Final:
    result: TurnResult


Event = Delta | Reset | Final


@dataclass
class HandoffResult:
    conversation_id: str
    status: str  # waiting, or agent when a person already has the conversation
    text: str  # what the customer is told happens next (stored as an assistant message)
    message_id: int


@dataclass
class ConversationView:
    conversation: Conversation
    messages: list[Message]
    feedback: dict[int, Feedback]  # by message id


def source_of(hit: Hit) -> dict[str, Any]:
    source = {"id": hit.id, "title": hit.title, "score": round(hit.score, 4)}
    if hit.subject:
        source["subject"] = hit.subject
    return source



def sentences_of(pieces: Iterator[str]) -> Iterator[str]:
    """Finished sentences of a token stream as they complete, then the unfinished rest."""
    pending = ""
    try:
        for piece in pieces:
            pending += piece
            *done, pending = grounding.split_keep_tail(pending)
            yield from done
    finally:
        close = getattr(pieces, "close", None)  # a generator: stop the backend producing
        if close is not None:
            close()
    if pending.strip():
        yield pending.strip()


