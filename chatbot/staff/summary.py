"""A short extractive summary of a conversation for the agent who picks it up.

No language model: the customer's questions, what became of each (answered from which
article, a clarifying question, no answer, rated unhelpful), and the customer's last message,
each cut to one line. The first question and the most recent ones are kept, so a long
conversation still fits in a few lines; small talk ("hi", "thanks") is left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from chatbot.conversations import Feedback, Message
from chatbot.dialogue.intents import classify

LINE_CHARS = 140
MAX_TURNS = 3  # the first question and the two most recent ones
SMALLTALK = ("greeting", "thanks", "goodbye")
REASONS = {
    "customer_request": "asked for a person",
    "no_answer": "the bot found no answer",
    "low_confidence": "the bot was not confident",
    "repeated_clarification": "the bot kept asking what was meant",
    "action_request": "the customer asked the bot to do something it cannot",
    "negative_feedback": "the customer rated an answer unhelpful",
}


def clip(text: str, limit: int = LINE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


@dataclass
class _Turn:
    question: str
    outcomes: list[str]


def _outcome(message: Message, feedback: Mapping[int, Feedback]) -> str:
    if message.role == "agent":
        return f"{message.meta.get('agent_name') or 'an agent'} replied"
    decision, reason = message.decision, (message.meta or {}).get("reason", "")
    if decision == "answer":
        title = message.sources[0]["title"] if message.sources else ""
        text = f"answered from “{clip(title, 60)}”" if title else "answered"
        rating = feedback.get(message.id)
        if rating is not None and rating.rating == "down":
            text += ", rated unhelpful" + (f": “{clip(rating.comment, 60)}”" if rating.comment
                                           else "")
        return text
    if decision == "clarify":
        return "the bot asked what was meant"
    if decision == "handoff":
        return REASONS.get(reason, "handed to a person")
    return ""


def summarize(
    messages: Sequence[Message],
    feedback: Mapping[int, Feedback] | None = None,
    *,
    reason: str | None = None,
) -> str:
    """A few lines: why it needs a person, the questions and their outcomes, the last message."""
    feedback = feedback or {}
    turns: list[_Turn] = []
    last_customer = ""
    for message in messages:
        if message.role == "user":
            last_customer = message.content
            kind = classify(message.content).kind
            if kind in SMALLTALK:
                continue
            turns.append(_Turn("asked for a person" if kind == "human" else
                               f"“{clip(message.content)}”", []))
        elif message.role in ("assistant", "agent") and turns:
            outcome = _outcome(message, feedback)
            if outcome and outcome not in turns[-1].outcomes and outcome != turns[-1].question:
                turns[-1].outcomes.append(outcome)
    lines = []
    if reason:
        lines.append(f"Needs a person: {REASONS.get(reason, reason)}.")
    shown = turns if len(turns) <= MAX_TURNS else [turns[0], *turns[-(MAX_TURNS - 1):]]
    for i, turn in enumerate(shown):
        outcome = "; ".join(turn.outcomes)
        lines.append(f"- {turn.question}" + (f" → {outcome}" if outcome else ""))
        if i == 0 and len(turns) > MAX_TURNS:
            skipped = len(turns) - MAX_TURNS
            lines.append(f"  … {skipped} more question{'s' if skipped > 1 else ''} …")
    if last_customer and all(clip(last_customer) not in t.question for t in shown):
        lines.append(f"Last message: “{clip(last_customer)}”")
    if not turns and not last_customer:
        lines.append("The customer has not written anything yet.")
    return "\n".join(lines)
