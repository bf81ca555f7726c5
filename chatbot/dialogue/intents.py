"""Recognise what needs no knowledge base: greetings, thanks, goodbyes, and asking for a person.

A greeting in front of a question ("hi, where is my order?") is stripped so the question is
answered; only a message that is nothing but small talk gets a small-talk reply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_GREETING = r"(hi+|hello+|hey+|hiya|howdy|yo|good (morning|afternoon|evening|day)|greetings|hallo|hola|bonjour|moin|dear (team|support|sir|madam))"
_THANKS = r"(thanks?( a lot| so much| you( so much| very much)?)?|thx|ty|cheers|much appreciated|great,? thanks?|perfect,? thanks?|ok(ay)?,? thanks?)"
_BYE = r"(bye+|goodbye|see y(a|ou)|have a (nice|good|great) (day|one|evening)|that'?s all|nothing else|no,? that'?s it)"
_FILLER = r"(there|all|team|folks|guys|again|!|\.|,|:|\)|\(|\s|:\)|😊|🙂|👋)*"

GREETING = re.compile(rf"^\s*{_GREETING}\b[\s,!.:;-]*", re.IGNORECASE)
ONLY_GREETING = re.compile(rf"^\s*{_GREETING}\b{_FILLER}$", re.IGNORECASE)
ONLY_THANKS = re.compile(rf"^\s*(ok(ay)?,?\s*|great,?\s*|perfect,?\s*)?{_THANKS}\b{_FILLER}$", re.I)
ONLY_BYE = re.compile(rf"^\s*(ok(ay)?,?\s*|thanks?,?\s*)?{_BYE}\b{_FILLER}$", re.IGNORECASE)

_PERSON = r"(human|person|people|agent|representative|rep|operator|someone|somebody|staff|colleague|employee|manager|supervisor|real (person|human|agent)|live (agent|chat|person)|customer (service|support) (agent|rep(resentative)?))"
HUMAN_REQUEST = re.compile(
    rf"\b(talk|speak|chat|connect|transfer|escalate|put)\b.{{0,30}}\b(to|with|me)\b.{{0,20}}{_PERSON}\b"
    rf"|\b(want|need|get|give me|request)\b.{{0,15}}\b(a |an |the )?(real |live )?{_PERSON}\b"
    rf"|^\s*(a |an )?(real |live )?{_PERSON}\s*(please|pls|now)?\s*[.!?]*\s*$"
    rf"|\b(are you|is this) a (bot|robot|machine|real person|human)\b.{{0,40}}\b(human|person)\b"
    rf"|\bnot (a |the )?(bot|robot|machine)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Intent:
    kind: str  # "question" | "greeting" | "thanks" | "goodbye" | "human"
    text: str  # the message with any leading greeting removed


def classify(message: str) -> Intent:
    text = " ".join(message.split())
    if HUMAN_REQUEST.search(text):
        return Intent("human", text)
    if ONLY_GREETING.match(text):
        return Intent("greeting", text)
    if ONLY_THANKS.match(text):
        return Intent("thanks", text)
    if ONLY_BYE.match(text):
        return Intent("goodbye", text)
    stripped = GREETING.sub("", text, count=1).strip()
    return Intent("question", stripped or text)
