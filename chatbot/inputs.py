"""Checks on text a customer sends, before anything is stored.

``clean_message`` is the one gate for a customer's message (HTTP API, OpenAI endpoint, chat
page, widget and CLI all call it through the service): it normalises the text (Unicode NFC,
Windows line ends to ``\\n``, surrounding blanks trimmed) and refuses, with a message that says
what and where, text that is not text: control characters other than tab and line breaks, and
unpaired UTF-16 surrogates (what a JSON ``"\\ud800"`` escape decodes to; it cannot be stored as
UTF-8). Refusing is better than silently dropping characters: the customer learns what was
wrong, and what is stored is exactly what they sent. ``checked_history`` applies the same
checks to the earlier turns a new conversation is started with, and ``checked_rating`` checks
a customer's rating of an answer.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from typing import Any

from chatbot.errors import InvalidInput

ALLOWED_CONTROLS = frozenset("\t\n")
RATINGS = ("up", "down")
MAX_COMMENT_CHARS = 2000


def describe_char(char: str) -> str:
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" {name}" if name else "")


def check_characters(text: str, what: str = "The message") -> None:
    """InvalidInput naming the first control character or unpaired surrogate in ``text``."""
    for position, char in enumerate(text, start=1):
        if char in ALLOWED_CONTROLS:
            continue
        category = unicodedata.category(char)
        if category == "Cs":
            raise InvalidInput(
                f"{what} contains an invalid character ({describe_char(char)}, an unpaired "
                f"surrogate) at position {position}; send text encoded as UTF-8."
            )
        if category == "Cc":
            raise InvalidInput(
                f"{what} contains a control character ({describe_char(char)}) at position "
                f"{position}; remove it and send the message again."
            )


def normalize(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize("NFC", text)


def clean_message(text: Any, limit: int, what: str = "The message") -> str:
    if not isinstance(text, str):
        raise InvalidInput(f"{what} must be text.")
    text = normalize(text)
    check_characters(text, what)
    text = text.strip()
    if not text:
        raise InvalidInput(f"{what} is empty; type a question.")
    if len(text) > limit:
        raise InvalidInput(
            f"{what} is {len(text):,} characters; the limit is {limit:,}. Please shorten it."
        )
    return text


def checked_history(
    history: list[Mapping[str, Any]], max_chars: int, max_customer_turns: int
) -> list[tuple[str, str]]:
    """``(role, content)`` of each turn, normalised, or InvalidInput naming the first bad one."""
    turns = []
    for i, turn in enumerate(history):
        if not isinstance(turn, Mapping) or turn.get("role") not in ("user", "assistant"):
            raise InvalidInput(f"history[{i}] must be an object with role 'user' or 'assistant'.")
        content = turn.get("content")
        if not isinstance(content, str) or not content.strip():
            raise InvalidInput(f"history[{i}].content must be non-empty text.")
        content = normalize(content)
        check_characters(content, f"history[{i}].content")
        if len(content) > max_chars:
            raise InvalidInput(
                f"history[{i}].content is {len(content):,} characters; the limit is "
                f"{max_chars:,}."
            )
        turns.append((turn["role"], content))
    customer_turns = sum(1 for role, _ in turns if role == "user")
    if customer_turns > max_customer_turns:
        raise InvalidInput(
            f"The history holds {customer_turns:,} customer messages; a conversation may "
            f"hold {max_customer_turns:,}."
        )
    return turns


def checked_rating(rating: Any, comment: str | None) -> str | None:
    """The comment of a rating, trimmed (None when blank), once the rating is "up" or "down"."""
    if rating not in RATINGS:
        raise InvalidInput(f"The rating must be 'up' or 'down' (got {rating!r}).")
    comment = (comment or "").strip() or None
    if comment is not None and len(comment) > MAX_COMMENT_CHARS:
        raise InvalidInput(
            f"The comment is {len(comment):,} characters; the limit is {MAX_COMMENT_CHARS:,}."
        )
    return comment
