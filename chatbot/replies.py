"""Fixed replies the bot gives without the language model."""

from __future__ import annotations

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
}


def clarify_text(candidates: Sequence[Hit], reason: str) -> str:
    if len(candidates) == 1:
        return f'Just to be sure: is your question "{candidates[0].title}"?'
    options = "\n".join(f"{i}. {hit.title}" for i, hit in enumerate(candidates, start=1))
    return f"I want to make sure I answer the right question. Do you mean:\n{options}"
