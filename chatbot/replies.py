"""Fixed replies the bot gives without the language model."""

from __future__ import annotations

import re
from collections.abc import Sequence

from knowledge.retrieval import Hit

SMALLTALK = {
    "greeting": "Hello! I'm the support assistant. What can I help you with today?",
    "thanks": "You're welcome! Is there anything else I can help you with?",
    "goodbye": "Thanks for chatting with us. Have a great day!",
}
HANDOFF = {
    "customer_request": (
        "Of course. I'm passing this conversation to a colleague from our support team; they "
        "will reply here as soon as they are available. You can keep writing in the meantime."
    ),
    "no_answer": (
        "I'm sorry, I couldn't find an answer to that in our help articles. I'm passing this "
        "conversation to a colleague from our support team, who will reply here."
    ),
    "low_confidence": (
        "I'm not sure I understood your question, so I'm passing this conversation to a "
        "colleague from our support team, who will reply here."
    ),
    "repeated_clarification": (
        "I'm having trouble finding the right answer, so I'm passing this conversation to a "
        "colleague from our support team, who will reply here."
    ),
    "negative_feedback": (
        "Sorry that didn't help. A colleague from our support team will look at this "
        "conversation and reply here."
    ),
    "action_request": (
        "I can't do that for you here, but a colleague from our support team can: I'm passing "
        "this conversation to them, and they will reply here."
    ),
}

# Replies to messages moderation flags (chatbot.moderation): no model, no sources.
MODERATED = {
    "injection": (
        "I can only help with questions about our shop, our products and your orders, and I "
        "can't share or change how I work. What can I help you with?"
    ),
    "harmful": (
        "I can't help with that. If you have a question about our products, your order or our "
        "services, I'm happy to help."
    ),
    "blocked": (
        "I can't help with that here. If you have a question about our products, your order or "
        "our services, I'm happy to help."
    ),
    "self_harm": (
        "I'm really sorry you're feeling this way. Please reach out to someone now: call your "
        "local emergency number, or a crisis line such as 988 in the US or 116 123 (Samaritans) "
        "in the UK and Ireland. You don't have to go through this alone."
    ),
}

# Notices: what the customer sees when a person joins, leaves or closes the conversation.
AGENT_JOINED = "{name} from our support team has joined the conversation."
AGENT_LEFT = "{name} has handed this conversation back to our assistant. Ask me anything."
RETURNED = "Our support team has handed this conversation back to our assistant. Ask me anything."
CLOSED = "{name} has closed this conversation. Write again any time if you need anything else."
# The answer to a customer's message while a person has the conversation (the bot is silent;
# this text is returned to API clients and not stored).
PASSED_ON = "{name} from our support team has your message and will reply here."


def agent_name(email: str | None) -> str:
    """The name the customer sees for a staff member: the first part of their email address,
    capitalised ("sam.lee@shop.example" -> "Sam"); the full address is never shown."""
    local = (email or "").partition("@")[0]
    first = re.split(r"[._+\-]", local, maxsplit=1)[0]
    return first[:1].upper() + first[1:].lower() if first else "A colleague"


VAGUE = ("Happy to help. What is your question? Tell me in a sentence or two, for example what "
         "you ordered and what went wrong, and I'll look it up.")
# Said before a clarifying question or a handoff of a message in another language.
OTHER_LANGUAGE = "I can only answer questions in {language} so far."


def clarify_text(candidates: Sequence[Hit], reason: str) -> str:
    if reason == "vague" or not candidates:
        return VAGUE
    subjects = list(dict.fromkeys(hit.subject for hit in candidates))
    if len(subjects) >= 2 and all(subjects):
        # One question asked of several products or places: ask which one.
        options = "\n".join(f"{i}. {name}" for i, name in enumerate(subjects, start=1))
        return f"Which one do you mean? Tell me its name, or pick one:\n{options}"
    if len(candidates) == 1:
        return f'Just to be sure: is your question "{candidates[0].title}"?'
    options = "\n".join(f"{i}. {hit.title}" for i, hit in enumerate(candidates, start=1))
    return f"I want to make sure I answer the right question. Do you mean:\n{options}"
