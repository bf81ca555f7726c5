"""The service layer: one function per user action, shared by the CLI, HTTP API and web pages.

``chatbot.services.build_services(settings)`` builds it and everything else a process needs
once; nothing heavy happens at import. A turn (``ChatService.stream_message``) stores the customer's message
first, then plans the turn, then produces and stores the reply.

While a person has the conversation (status ``agent``) the bot is silent: the customer's
message is stored and the turn ends at once with decision ``handoff``, an unstored note
("Sam ... has your message") and no ``message_id``; nothing is retrieved or generated. A
closed conversation the customer writes to again goes back to the bot. Every move to
``waiting`` (the bot's decision, the customer's request, a thumbs-down) fires the handoff
webhook (``chatbot.staff.webhook``) from a background thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from chatbot import replies
from chatbot.answering import answer
from chatbot.conversations import (
    Conversation,
    ConversationStore,
    Feedback,
    check_conversation_id,
)
from chatbot.dialogue.decision import Thresholds
from chatbot.dialogue.manager import plan_turn
from chatbot.errors import Conflict, InvalidInput
from chatbot.generation import GenerationParams, Generator
from chatbot.identity import verify_identity
from chatbot.inputs import checked_history, checked_rating, clean_message
from chatbot.moderation import Flag, Moderator
from chatbot.monitoring import Metrics
from chatbot.settings import Settings
from chatbot.staff.webhook import HandoffWebhook, announce_waiting
from chatbot.turns import (  # the edges import the turn types from here too
    ConversationView,
    Delta,
    Event,
    Final,
    HandoffResult,
    Reset,
    TurnResult,
    source_of,
)
from knowledge.calibration import Calibration, operating_point, threshold_for_precision
from knowledge.embeddings import Embedder
from knowledge.records import Entry
from knowledge.retrieval import Retriever

log = logging.getLogger(__name__)

__all__ = [
    "ChatService", "ConversationView", "Delta", "Event", "Final", "HandoffResult", "Reset",
    "TurnResult", "clean_message",
]

# A KB whose calibration cases miss the precision target still answers what it is sure of.
MAX_TUNED_ANSWER_THRESHOLD = 0.6
AGENT_PRESENT = (
    "A colleague from our support team is already looking after this conversation and will "
    "reply here."
)


@dataclass
class ChatService:
    settings: Settings
    conversations: ConversationStore
    retriever: Retriever
    generator: Generator | None  # None: answer from the knowledge base's own text only
    thresholds: Thresholds
    params: GenerationParams
    embedder: Embedder = field(repr=False)
    webhook: HandoffWebhook | None = field(default=None, repr=False)
    metrics: Metrics | None = field(default=None, repr=False)
    moderator: Moderator = field(default_factory=lambda: Moderator.build(False), repr=False)
    _examples: dict[int, list[str]] = field(default_factory=dict, init=False, repr=False)
    _tuned: tuple[Calibration, Thresholds] | None = field(default=None, init=False, repr=False)

    def turn_thresholds(self) -> Thresholds:
        """The thresholds for the live KB version: ``thresholds`` with the answer bar raised,
        when needed, to reach ``CHATBOT_ANSWER_PRECISION`` on the version's calibration cases
        (``knowledge.calibration.threshold_for_precision``)."""
        calibration = self.retriever.calibration
        target = self.settings.answer_precision
        if not target or not calibration.fitted:
            return self.thresholds
        tuned = self._tuned
        if tuned is None or tuned[0] is not calibration:
            answer_at = threshold_for_precision(
                calibration, target, floor=self.thresholds.answer,
                ceiling=max(self.thresholds.answer, MAX_TUNED_ANSWER_THRESHOLD),
            )
            tuned = (calibration, replace(self.thresholds, answer=answer_at))
            self._tuned = tuned
        return tuned[1]

    def calibration_report(self) -> dict[str, Any]:
        """The live version's calibration and its operating point at the thresholds in force
        (answer precision, answer rate, out-of-scope recall on its own held-out cases)."""
        calibration = self.retriever.calibration
        thresholds = self.turn_thresholds()
        return {
            **calibration.describe(),
            "kb_version": self.retriever.version,
            "operating_point": operating_point(
                calibration, answer=thresholds.answer, clarify=thresholds.clarify
            ),
        }

    def start_conversation(
        self,
        conversation_id: str | None = None,
        history: list[Mapping[str, Any]] | None = None,
        visitor: Mapping[str, Any] | None = None,
    ) -> str:
        """Create a conversation, optionally with earlier turns replayed into it.

        ``visitor`` is a signed identity from the embedding site (``chatbot.identity``); it is
        verified before anything is stored, and the conversation is linked to the verified
        user id. A forged, expired or malformed one raises ``Forbidden`` / ``InvalidInput``.
        """
        visitor_id = None
        if visitor is not None:
            visitor_id = verify_identity(self.settings.widget_secret, visitor).user_id
        turns = checked_history(
            history or [], self.settings.max_message_chars, self.settings.max_conversation_turns
        )
        cid = self.conversations.create(conversation_id, visitor_id=visitor_id)
        for role, content in turns:
            self.conversations.add_message(cid, role=role, content=content)
        return cid

    def resume_or_start(
        self, conversation_id: str | None, history: list[Mapping[str, Any]] | None = None
    ) -> str:
        """Continue ``conversation_id`` if it exists; otherwise start it, replaying ``history``."""
        if conversation_id is not None:
            check_conversation_id(conversation_id)
            if self.conversations.exists(conversation_id):
                return conversation_id
        try:
            return self.start_conversation(conversation_id, history)
        except InvalidInput:
            if conversation_id is not None and self.conversations.exists(conversation_id):
                return conversation_id  # another request started it meanwhile
            raise

    def ensure_conversation(self, conversation_id: str | None) -> str:
        if conversation_id is None:
            return self.conversations.create()
        check_conversation_id(conversation_id)
        if not self.conversations.exists(conversation_id):
            self.conversations.create(conversation_id)
        return conversation_id

    def conversation(self, conversation_id: str) -> ConversationView:
        """A conversation, all its messages (oldest first) and the customer's ratings."""
        check_conversation_id(conversation_id)
        return ConversationView(
            self.conversations.get(conversation_id),
            self.conversations.messages(conversation_id),
            self.conversations.feedback(conversation_id),
        )

    def source_texts(self, ids: Iterable[str]) -> dict[str, str]:
        """The text of each source id in the published knowledge base (answer or passage)."""
        wanted = set(ids)
        if not wanted:
            return {}
        return {item.id: item.text for item in self.retriever.index().items if item.id in wanted}

    def example_questions(self, limit: int = 4) -> list[str]:
        """Questions to suggest before the first message: for each of the largest topics (an
        entry's first tag), its shortest question. Cached per knowledge-base version."""
        version = self.retriever.store.current_version()
        if version not in self._examples:
            topics: dict[str, list[str]] = {}
            for record in self.retriever.store.published(version):
                if isinstance(record, Entry):
                    topics.setdefault(record.tags[0] if record.tags else "", []).append(
                        record.question
                    )
            biggest = sorted(topics.values(), key=len, reverse=True)
            self._examples = {version: [min(qs, key=lambda q: (len(q), q)) for qs in biggest]}
        return self._examples[version][:limit]

    def record_feedback(
        self, conversation_id: str, message_id: int, rating: str, comment: str | None = None
    ) -> Feedback:
        """The customer rates one of the assistant's answers ("up" or "down")."""
        check_conversation_id(conversation_id)
        comment = checked_rating(rating, comment)
        stored = self.conversations.set_feedback(
            conversation_id, message_id=message_id, rating=rating, comment=comment
        )
        # A thumbs-down asks for a person: the conversation goes to the staff inbox.
        if rating == "down" and self.conversations.hand_off(
            conversation_id, reason="negative_feedback"
        ):
            self.conversations.add_message(
                conversation_id,
                role="assistant",
                content=replies.HANDOFF["negative_feedback"],
                decision="handoff",
                meta={"reason": "negative_feedback", "rated_message_id": message_id},
            )
            self._waiting(conversation_id, "negative_feedback")
        return stored

    def request_handoff(self, conversation_id: str) -> HandoffResult:
        """The customer asks for a person: the conversation waits for one (or has one already)."""
        check_conversation_id(conversation_id)
        started = self.conversations.hand_off(conversation_id, reason="customer_request")
        status = self.conversations.status(conversation_id)
        text = AGENT_PRESENT if status == "agent" else replies.HANDOFF["customer_request"]
        stored = self.conversations.add_message(
            conversation_id,
            role="assistant",
            content=text,
            decision="handoff",
            meta={"reason": "customer_request", "requested": True},
        )
        if started:
            self._waiting(conversation_id, "customer_request")
        return HandoffResult(conversation_id, status, text, stored.id)

    def send_message(
        self, conversation_id: str, text: str, params: Mapping[str, Any] | None = None
    ) -> TurnResult:
        for event in self.stream_message(conversation_id, text, params):
            if isinstance(event, Final):
                return event.result
        raise AssertionError("stream_message ends with a Final event")

    def stream_message(
        self, conversation_id: str, text: str, params: Mapping[str, Any] | None = None
    ) -> Iterator[Event]:
        started = time.perf_counter()
        text = clean_message(text, self.settings.max_message_chars)
        sampling = self.params.merged(params)
        conversation = self.conversations.get(conversation_id)
        self._check_room(conversation_id)
        if conversation.status == "closed":  # the customer is back: the bot answers again
            self.conversations.move(conversation_id, to="bot", status=("closed",))
        elif conversation.status == "agent":
            yield from self._passed_on(conversation, text, started)
            return
        history = self.conversations.messages(conversation_id, limit=40)
        flag = self.moderator.check_input(text)
        # Committed before any model work: nothing the customer said is lost.
        self.conversations.add_message(
            conversation_id, role="user", content=text,
            meta={"moderation": flag.category} if flag else None,
        )
        if flag is not None:
            self.count_moderated(flag)
            if flag.category != "injection":  # harmful requests: a fixed reply, nothing else
                yield from self._refuse(conversation_id, flag.category, started)
                return
        plan = plan_turn(
            text,
            history,
            self.retriever,
            thresholds=self.turn_thresholds(),
            k=self.settings.retrieval_top_k,
        )
        decision = plan.decision
        if flag is not None and not (decision.kind == "answer" or decision.reason == "customer_request"):
            # An injection attempt the knowledge base has no answer for: refuse, politely.
            yield from self._refuse(conversation_id, flag.category, started)
            return
        grounded: bool | None = None
        waiting = False
        model: str | None = None
        origin, tokens, abstained = "", 0, False
        sources = [source_of(h) for h in decision.hits]
        if decision.kind == "smalltalk":
            reply, kind, sources = replies.SMALLTALK[decision.reason], "answer", []
            yield Delta(reply)
        elif decision.kind == "handoff":
            reply, kind = replies.HANDOFF[decision.reason], "handoff"
            waiting = self.conversations.hand_off(conversation_id, reason=decision.reason)
            yield Delta(reply := plan.with_language_note(reply))
        elif decision.kind == "clarify":
            reply, kind = replies.clarify_text(decision.hits, decision.reason), "clarify"
            yield Delta(reply := plan.with_language_note(reply))
        else:
            kind = "answer"
            answered = yield from answer(
                self, plan.intent.text, history, decision, sampling, model_allowed=flag is None
            )
            reply, grounded, origin, model, tokens, abstained = answered
        fallback = origin == "fallback"
        latency = (time.perf_counter() - started) * 1000
        stored = self.conversations.add_message(
            conversation_id,
            role="assistant",
            content=reply,
            decision=kind,
            sources=sources,
            model=model,
            latency_ms=latency,
            grounded=grounded,
            meta={
                "reason": decision.reason,
                "query": plan.query.text,
                "context": plan.query.context,
                "fallback": fallback,
                "kb_version": self.retriever.version,
                **({"abstained": True} if abstained else {}),
                **({"subject": plan.focus.subject} if plan.focus.subject else {}),
            },
        )
        if decision.kind == "handoff" and waiting:
            self._waiting(conversation_id, decision.reason)
        result = TurnResult(
            conversation_id=conversation_id,
            decision=kind,
            text=reply,
            sources=sources,
            grounded=grounded,
            latency_ms=latency,
            message_id=stored.id,
            reason=decision.reason,
            fallback=fallback,
            model=model,
            tokens=tokens,
            origin=origin,
            subject=plan.focus.subject,
        )
        if self.metrics is not None:
            self.metrics.turn(result)
        yield Final(result)

    def _waiting(self, conversation_id: str, reason: str) -> None:
        """The conversation has just started waiting for a person: tell the staff and count it."""
        announce_waiting(self.webhook, self.conversations, conversation_id)
        if self.metrics is not None:
            self.metrics.handoff(reason)

    def _check_room(self, conversation_id: str) -> None:
        """Conflict when the conversation already holds its limit of customer messages."""
        limit = self.settings.max_conversation_turns
        if self.conversations.count(conversation_id, role="user") >= limit:
            raise Conflict(
                f"This conversation has reached its limit of {limit:,} messages. Please start a "
                "new conversation to go on; everything said so far is kept."
            )

    def _passed_on(
        self, conversation: Conversation, text: str, started: float
    ) -> Iterator[Event]:
        """A person has the conversation: store the message, say who has it, generate nothing."""
        self.conversations.add_message(
            conversation.id, role="user", content=text,
            meta={"agent": conversation.assigned_agent},
        )
        note = replies.PASSED_ON.format(name=replies.agent_name(conversation.assigned_agent))
        result = TurnResult(
            conversation_id=conversation.id,
            decision="handoff",
            text=note,
            sources=[],
            grounded=None,
            latency_ms=(time.perf_counter() - started) * 1000,
            message_id=None,
            reason="agent",
        )
        if self.metrics is not None:
            self.metrics.turn(result)
        yield Final(result)

    def count_moderated(self, flag: Flag) -> None:
        if self.metrics is not None:
            self.metrics.moderated.labels(flag.direction, flag.category).inc()

    def _refuse(self, conversation_id: str, category: str, started: float) -> Iterator[Event]:
        """A fixed reply to a message moderation flagged (no sources, no model)."""
        reply = replies.MODERATED[category]
        yield Delta(reply)
        latency = (time.perf_counter() - started) * 1000
        stored = self.conversations.add_message(
            conversation_id, role="assistant", content=reply, decision="clarify",
            latency_ms=latency, meta={"reason": f"moderated_{category}"},
        )
        # Not an answer from the knowledge base: the reply asks what the customer needs.
        result = TurnResult(conversation_id=conversation_id, decision="clarify", text=reply,
                            sources=[], grounded=None, latency_ms=latency, message_id=stored.id,
                            reason=f"moderated_{category}")
        if self.metrics is not None:
            self.metrics.turn(result)
        yield Final(result)
