"""The subject in focus: which product, place or plan the conversation is about now.

A question such as "Does it have free parking?" exists once per hotel in a KB whose entries
name their ``subject``; it is answered for the subject the conversation is about. That is the
subject named last, by anyone: the customer, the bot, or a staff member who took over (replayed
history included), since an agent's "The Belfry has rooms free" puts the Belfry in focus as
much as the customer naming it. A message that names a subject itself brings it into focus;
"the other one" switches to the subject named before the one in focus.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from chatbot.conversations import Message
from knowledge.subjects import SubjectMatcher, words

# Messages whose text is read for subjects: everyone's but the system's notices.
SPEAKERS = ("user", "assistant", "agent")
OTHER_ONE = re.compile(
    r"\b(the|that|this)\s+other(\s+one)?\b"
    r"|\b(the|that)\s+(cheaper|more expensive|expensive|bigger|smaller|larger|nearer|closer|"
    r"first|second|former|latter|previous)(\s+one)?\b",
    re.IGNORECASE,
)
SWITCH_WORDS = 6  # "what about the other one then?"
# What a bare change of subject may hold beside the name: "I mean the Belfry, please".
_FILLER = frozenset("and the what about how or please then one ok okay i mean meant it's its it is "
                    "for that yes no sorry same question".split())


@dataclass(frozen=True)
class Focus:
    subject: str | None
    named_now: bool = False  # the message itself names it
    named: tuple[str, ...] = ()  # subjects named in the conversation, most recent first

    @property
    def switched(self) -> bool:
        return not self.named_now and len(self.named) > 1 and self.subject == self.named[1]


def named_in(history: Sequence[Message], matcher: SubjectMatcher) -> list[str]:
    """Subjects named in the conversation, most recently named first."""
    order: list[str] = []
    for message in history:
        if message.role not in SPEAKERS:
            continue
        for name in matcher.mentions(message.content):
            if name in order:
                order.remove(name)
            order.insert(0, name)
    return order


def find_focus(text: str, history: Sequence[Message], matcher: SubjectMatcher) -> Focus:
    if not matcher:
        return Focus(None)
    earlier = named_in(history, matcher)
    now = matcher.mentions(text)
    if now:
        subject = now[-1]
        return Focus(subject, True, (subject, *[n for n in earlier if n != subject]))
    if OTHER_ONE.search(text) and len(earlier) > 1:
        return Focus(earlier[1], False, tuple(earlier))
    return Focus(earlier[0] if earlier else None, False, tuple(earlier))


def is_bare_switch(text: str, focus: Focus) -> bool:
    """``text`` only changes the subject: its name nearly alone ("The Belfry, please", "and the
    Daytripper?"), or "what about the other one?"."""
    if focus.subject is None:
        return False
    if not focus.named_now:
        return focus.switched and len(words(text)) <= SWITCH_WORDS
    return not set(words(text)) - set(words(focus.subject)) - _FILLER
