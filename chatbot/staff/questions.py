"""Which customer questions the bot could not answer: the rules shared by the unanswered list
and the analytics' unanswered trend.

A customer message (role ``user``) is an unanswered question when:

- ``handoff``: the bot's reply to it handed the conversation to a person because it had no
  answer (``no_answer``, ``low_confidence``, ``repeated_clarification``, ``action_request``,
  or another reason the
  bot gives itself);
- ``customer_request``: the customer then asked for a person, either with the button (the
  question is their last message before it) or by typing it (the question is their message
  before "I want a human", never that message itself);
- ``repeated_clarification``: it is one of a run of turns the bot answered with a clarifying
  question, where the run has at least two such turns or ends in a handoff;
- ``thumbs_down``: the customer rated the bot's answer to it down;
- ``model_abstained``: the answer model said its passages do not answer it (the reply is the
  passage's own text instead, marked ``abstained``; see ``chatbot.answering``).

A question is dated by the customer's message. Messages resolved by an editor (rows in
``unanswered_resolutions``) are left out unless ``include_resolved``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from chatbot.models import FeedbackRow, MessageRow, UnansweredResolutionRow
from chatbot.staff.dates import DateRange, Span

REASONS = ("no_answer", "low_confidence", "repeated_clarification", "action_request",
           "customer_request", "thumbs_down", "model_abstained")


@dataclass
class Question:
    message_id: int
    conversation_id: str
    text: str
    at: datetime
    reasons: list[str] = field(default_factory=list)


def _turn_question(messages: list[MessageRow], i: int) -> MessageRow | None:
    """The customer's message the assistant message ``messages[i]`` replied to."""
    if i > 0 and messages[i - 1].role == "user":
        return messages[i - 1]
    return None


def _typed_request(messages: list[MessageRow], i: int) -> bool:
    """Whether ``messages[i]`` is a customer's typed "I want a human" (the bot handed off)."""
    reply = messages[i + 1] if i + 1 < len(messages) else None
    return (
        messages[i].role == "user"
        and reply is not None
        and reply.decision == "handoff"
        and (reply.meta or {}).get("reason") == "customer_request"
        and not (reply.meta or {}).get("requested")
    )


def _question_before_request(messages: list[MessageRow], i: int) -> MessageRow | None:
    """For a request for a person at ``messages[i]``: the customer's last message before it
    that is a question, not itself a request for a person."""
    for j in range(i - 1, -1, -1):
        if messages[j].role == "user" and not _typed_request(messages, j):
            return messages[j]
    return None


def questions_in(
    messages: list[MessageRow], rated_down: set[int]
) -> list[tuple[MessageRow, str]]:
    """(customer message, reason) pairs of one conversation's messages, oldest first."""
    found: list[tuple[MessageRow, str]] = []
    run: list[int] = []  # indexes of consecutive clarify replies

    def close_run(ended_in_handoff: bool) -> None:
        if len(run) >= 2 or (run and ended_in_handoff):
            for k in run:
                question = _turn_question(messages, k)
                if question is not None:
                    found.append((question, "repeated_clarification"))
        run.clear()

    for i, message in enumerate(messages):
        if message.role != "assistant":
            continue
        reason = (message.meta or {}).get("reason") or ""
        if message.decision == "clarify":
            run.append(i)
        elif message.decision == "handoff":
            close_run(ended_in_handoff=reason != "customer_request")
            if reason == "customer_request":
                question = _question_before_request(messages, i)
            else:
                question = _turn_question(messages, i)
            if question is not None:
                found.append((question, reason or "handoff"))
        else:
            close_run(ended_in_handoff=False)
            question = _turn_question(messages, i)
            if (message.meta or {}).get("abstained") and question is not None:
                found.append((question, "model_abstained"))
        if message.id in rated_down:
            question = _turn_question(messages, i)
            if question is not None:
                found.append((question, "thumbs_down"))
    close_run(ended_in_handoff=False)
    return found


def collect(
    session: Session,
    dates: DateRange | Span | None = None,
    *,
    include_resolved: bool = False,
) -> list[Question]:
    """Unanswered questions asked in ``dates`` (all time when None), oldest first."""
    flagged = select(MessageRow.conversation_id).where(
        MessageRow.role == "assistant",
        MessageRow.decision.in_(("handoff", "clarify"))
        | (MessageRow.meta["abstained"].as_boolean() == True),  # noqa: E712 (SQL, not Python)
    )
    down = select(FeedbackRow.conversation_id).where(FeedbackRow.rating == "down")
    conversation_ids = set(session.scalars(flagged)) | set(session.scalars(down))
    if dates is not None and conversation_ids:
        asked = select(MessageRow.conversation_id).where(MessageRow.role == "user")
        if dates.lower is not None:
            asked = asked.where(MessageRow.created_at >= dates.lower)
        if dates.upper is not None:
            asked = asked.where(MessageRow.created_at < dates.upper)
        conversation_ids &= set(session.scalars(asked))
    if not conversation_ids:
        return []
    rated_down = set(session.scalars(select(FeedbackRow.message_id).where(
        FeedbackRow.rating == "down", FeedbackRow.conversation_id.in_(conversation_ids))))
    resolved: set[int] = set()
    if not include_resolved:
        resolved = set(session.scalars(select(UnansweredResolutionRow.message_id)))
    rows = session.scalars(
        select(MessageRow)
        .where(MessageRow.conversation_id.in_(conversation_ids))
        .order_by(MessageRow.conversation_id, MessageRow.id)
    ).all()
    by_conversation: dict[str, list[MessageRow]] = {}
    for row in rows:
        by_conversation.setdefault(row.conversation_id, []).append(row)
    questions: dict[int, Question] = {}
    for messages in by_conversation.values():
        for message, reason in questions_in(messages, rated_down):
            if message.id in resolved or (dates is not None and message.created_at not in dates):
                continue
            question = questions.setdefault(
                message.id,
                Question(message.id, message.conversation_id, message.content, message.created_at),
            )
            if reason not in question.reasons:
                question.reasons.append(reason)
    return sorted(questions.values(), key=lambda q: (q.at, q.message_id))


OUT_OF_SCOPE = "out_of_scope"  # the resolution of a question staff marked as not for the KB
MAX_OUT_OF_SCOPE = 500  # the most recent ones feed each calibration


def out_of_scope_texts(session: Session, limit: int = MAX_OUT_OF_SCOPE) -> list[str]:
    """Customer questions staff marked out of scope, newest first: unanswerable cases for the
    next knowledge-base calibration (``knowledge.calibration``)."""
    rows = session.scalars(
        select(MessageRow.content)
        .join(UnansweredResolutionRow, UnansweredResolutionRow.message_id == MessageRow.id)
        .where(UnansweredResolutionRow.action == OUT_OF_SCOPE)
        .order_by(UnansweredResolutionRow.created_at.desc())
        .limit(limit)
    )
    return list(dict.fromkeys(" ".join(text.split()) for text in rows if text.strip()))
