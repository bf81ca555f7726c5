"""Build the retrieval query of a turn from the message and the recent conversation.

A follow-up such as "and to Canada?" or "how much does that cost?" names only what changed;
the topic is in an earlier user message. Such a message is searched twice, alone and blended
with the previous user question, and the two rankings are merged (``manager.merge``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_OPENERS = re.compile(
    r"^\s*(and|but|also|so|or|plus|then|what about|how about|what if|and if|ok(ay)? and|"
    r"same for|what else|anything else about|is that|does that|can i|could i|do i|how long|"
    r"how much|when|where|why|which one)\b",
    re.IGNORECASE,
)
_ANAPHORA = re.compile(
    r"\b(it|its|that|this|these|those|them|they|there|one|ones|same|such|the former|"
    r"the latter|the item|the order|the parcel|the package)\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"\w+")
SHORT_WORDS = 5


@dataclass(frozen=True)
class Query:
    text: str  # the message itself (greeting removed)
    context: str | None  # the previous user question, when the message looks like a follow-up


def looks_like_followup(text: str) -> bool:
    words = _WORD.findall(text)
    return bool(
        len(words) <= SHORT_WORDS or _OPENERS.search(text) or _ANAPHORA.search(text)
    )


def build_query(text: str, previous_user_messages: Sequence[str]) -> Query:
    """``previous_user_messages``: earlier user messages of this conversation, oldest first."""
    if not previous_user_messages or not looks_like_followup(text):
        return Query(text, None)
    # The previous message may itself be a follow-up ("and to Canada?"): resolve the chain.
    topic = ""
    for earlier in previous_user_messages[-3:]:
        topic = f"{topic} {earlier}".strip() if topic and looks_like_followup(earlier) else earlier
    return Query(text, topic)
