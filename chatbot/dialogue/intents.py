"""Recognise what needs no knowledge base: greetings, thanks, goodbyes, asking for a person,
and messages that say nothing yet ("help", "I have a question", "??", an emoji alone).

A greeting in front of a question ("hi, where is my order?") is stripped so the question is
answered; only a message that is nothing but small talk gets a small-talk reply. A message
that only announces a question is asked what it is about, instead of being searched (where
"I have a problem" would find some entry about problems) or handed to a person.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_GREETING = r"(hi+|hello+|hey+|hiya|howdy|yo|good (morning|afternoon|evening|day)|greetings|hallo|hola|bonjour|moin|dear (team|support|sir|madam))"
_THANKS = r"(thanks?( a lot| so much| you( so much| very much)?)?|thx|ty|cheers|much appreciated|great,? thanks?|perfect,? thanks?|ok(ay)?,? thanks?)"
_BYE = r"(bye+|goodbye|see y(a|ou)|have a (nice|good|great) (day|one|evening)|that'?s all|nothing else|no,? that'?s it)"
_FILLER = r"(there|all|team|folks|guys|again|!|\.|,|:|\)|\(|\s|:\)|😊|🙂|👋)*"

GREETING = re.compile(rf"^\s*{_GREETING}\b[\s,!.:;-]*", re.IGNORECASE)
_SMALLTALK_PART = rf"(ok(ay)?|great|perfect|{_THANKS}|{_BYE}|{_GREETING})\b{_FILLER}"
# Only small talk, in any order: "thank you, goodbye", "Goodbye, have a nice day".
ONLY_SMALLTALK = re.compile(rf"^\s*({_SMALLTALK_PART})+$", re.IGNORECASE)
HAS_THANKS = re.compile(rf"\b{_THANKS}\b", re.IGNORECASE)
HAS_BYE = re.compile(rf"\b{_BYE}\b", re.IGNORECASE)

_PERSON = r"(human|person|people|agent|representative|rep|operator|someone|somebody|staff|colleague|employee|manager|supervisor|real (person|human|agent)|live (agent|chat|person)|customer (service|support) (agent|rep(resentative)?))"
HUMAN_REQUEST = re.compile(
    rf"\b(talk|speak|chat|connect|transfer|escalate|put)\b.{{0,30}}\b(to|with|me)\b.{{0,20}}{_PERSON}\b"
    rf"|\b(want|need|get|give me|request)\b.{{0,15}}\b(a |an |the )?(real |live )?{_PERSON}\b"
    rf"|^\s*(a |an )?(real |live )?{_PERSON}\s*(please|pls|now)?\s*[.!?]*\s*$"
    rf"|\b(are you|is this) a (bot|robot|machine|real person|human)\b.{{0,40}}\b(human|person)\b"
    rf"|\b(is there|are there|do you have|can i (get|have)|could i (get|have))\b.{{0,10}}\b(a |an |any )?(real |live )?{_PERSON}\b.{{0,25}}\b(talk|speak|chat|help)"
    rf"|\bnot (a |the )?(bot|robot|machine)\b",
    re.IGNORECASE,
)


VAGUE = re.compile(
    r"^\s*((please|pls|can you|could you|can u|i need( some)?|need|i want|i('d| would) like)\s+)?"
    r"(help|help me( please| pls)?|some help|assistance|support)\s*[.!?]*\s*$"
    r"|^\s*(i (have|got) (a|one|another|some) (question|problem|issue|query)s?|"
    r"(a |one )?(quick )?(question|problem|issue|query)|(can|may) i ask (you )?(a|something)( question)?|"
    r"i need to ask (you )?something|something is wrong|there'?s a problem)\s*[.!?:]*\s*$",
    re.IGNORECASE,
)
# A request to do something for the customer ("book a table for four", "find me a cheap hotel in
# the north"), which an FAQ answer does not do. Describing verbs ("how do I book?") are questions.
ACTION_REQUEST = re.compile(
    r"^\s*((ok(ay)?|yes|great|please|so|then|and|now|can you|could you|would you|will you|i('d| would) like( you)? to|i want( you)? to|i need( you)? to|i'm looking to|let'?s|help me)[\s,]+)*"
    r"(book|reserve|find|recommend|suggest|look (for|up)|search( for)?|get me|order me|make (me )?a (booking|reservation)|check availability)\b"
    r"|\b(find|book|reserve|recommend|suggest) (me|us)\b"
    r"|\b(looking for|i need|i want|i'd like) (a|an|some) (cheap|expensive|moderate|nice|good|place|room|table|hotel|restaurant|taxi|train|ticket)",
    re.IGNORECASE,
)
_LETTER_OR_DIGIT = re.compile(r"[^\W_]")


@dataclass(frozen=True)
class Intent:
    kind: str  # "question" | "greeting" | "thanks" | "goodbye" | "human" | "vague"
    text: str  # the message with any leading greeting removed


def is_action_request(text: str) -> bool:
    """The message asks the bot to do something (book, find, reserve) rather than asks about
    something."""
    return bool(ACTION_REQUEST.search(text))


def classify(message: str) -> Intent:
    text = " ".join(message.split())
    if HUMAN_REQUEST.search(text):
        return Intent("human", text)
    if ONLY_SMALLTALK.match(text):
        if HAS_BYE.search(text):
            return Intent("goodbye", text)
        if HAS_THANKS.search(text):
            return Intent("thanks", text)
        return Intent("greeting", text)
    stripped = GREETING.sub("", text, count=1).strip() or text
    if VAGUE.match(stripped) or not _LETTER_OR_DIGIT.search(stripped):
        return Intent("vague", stripped)
    return Intent("question", stripped)
