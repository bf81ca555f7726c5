"""The decision of a turn, as a pure function of intent, retrieval hits and thresholds.

Invariants (tested in ``tests/test_decision.py``):
- no hit at or above ``clarify_threshold`` means hand off (``no_answer``);
- asking for a person always hands off (``customer_request``);
- ``answer`` only when the best hit reaches ``answer_threshold`` and no other entry is within
  ``clarify_margin`` of it;
- after ``max_clarifications`` clarifying questions in a row, hand off instead of asking again;
- a message that says nothing yet ("help") is asked what it is about (``clarify``, ``vague``);
- a ``short`` message (one or two words) is answered only when its best entry leads the next
  one by ``SHORT_MARGIN``: "order" could mean placing, changing or tracking one, so it is
  asked about (a follow-up such as "Canada?" usually leads clearly once merged with its topic);
- entries that say the same thing (the same question, or answers that share
  ``SAME_ANSWER_OVERLAP`` of their words, ``SAME_ANSWER_MIN_WORDS`` or more, about the same
  subject) are one candidate: "Should I
  wear a mask?" from two sources is no ambiguity to ask about;
- with no subject in focus (``subject_unknown``), entries of different subjects whose raw
  scores are within ``SUBJECT_TIE`` of the best one are rivals whatever their calibrated
  scores: "how much does it weigh?" is asked about every product alike, and which one is
  meant decides the answer;
- a request to act (``action``: "book a table for four") is answered only by an entry that
  matches it at or above the fast-path threshold; otherwise it is handed off
  (``action_request``): an FAQ that describes something is no way of doing it;
- a message in ``other_language`` than the knowledge base's is answered only from a hit at
  or above the fast-path threshold (the embedding model matches other languages poorly, and a
  confident wrong answer is worse than asking or handing over).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from knowledge.retrieval import Hit
from knowledge.subjects import words

SHORT_MARGIN = 0.1
SAME_ANSWER_OVERLAP = 0.8
SAME_ANSWER_MIN_WORDS = 6
SUBJECT_TIE = 0.05


@dataclass(frozen=True)
class Thresholds:
    answer: float = 0.3
    clarify: float = 0.2
    margin: float = 0.005
    fast_path: float = 0.75
    max_clarifications: int = 2


@dataclass(frozen=True)
class Decision:
    kind: str  # "answer" | "clarify" | "handoff" | "smalltalk"
    reason: str  # why: confident, ambiguous, low_confidence, no_answer, customer_request, ...
    hits: tuple[Hit, ...] = field(default=())  # for answer: ranked hits; for clarify: candidates

    @property
    def top(self) -> Hit | None:
        return self.hits[0] if self.hits else None


def decide(
    intent: str,
    hits: Sequence[Hit],
    *,
    thresholds: Thresholds,
    clarifications_in_a_row: int = 0,
    short: bool = False,
    other_language: bool = False,
    action: bool = False,
    subject_unknown: bool = False,
) -> Decision:
    if intent == "human":
        return Decision("handoff", "customer_request", tuple(hits))
    if intent in ("greeting", "thanks", "goodbye"):
        return Decision("smalltalk", intent)
    if intent == "vague":
        return Decision("clarify", "vague")
    margin = max(thresholds.margin, SHORT_MARGIN) if short else thresholds.margin
    strict = other_language or action
    answer_at = max(thresholds.answer, thresholds.fast_path) if strict else thresholds.answer
    relevant = [h for h in hits if h.score >= thresholds.clarify]
    if not relevant:
        return Decision("handoff", "no_answer", tuple(hits))
    top = relevant[0]
    # Several hits from one document are one candidate, not an ambiguity.
    rivals = [
        h
        for h in relevant[1:]
        if top.score - h.score < margin and h.parent != top.parent and not same_answer(top, h)
    ]
    if subject_unknown and top.subject:
        rivals += [h for h in hits[1:] if h.subject and h.subject != top.subject
                   and top.raw - h.raw < SUBJECT_TIE and h not in rivals]
    if top.score >= answer_at and not rivals:
        return Decision("answer", "confident", tuple(hits))
    if action:
        return Decision("handoff", "action_request", tuple(hits))
    candidates = _distinct_parents([top, *rivals])[:3]
    if clarifications_in_a_row >= thresholds.max_clarifications:
        reason = "repeated_clarification" if rivals else "low_confidence"
        return Decision("handoff", reason, tuple(hits))
    if len(candidates) >= 2:
        return Decision("clarify", "ambiguous", tuple(candidates))
    return Decision("clarify", "low_confidence", tuple(_distinct_parents(relevant)[:3]))


def same_answer(a: Hit, b: Hit) -> bool:
    """Two entries that answer the same thing: about the same subject (or none), with the same
    question or answers sharing most of their words."""
    if a.subject != b.subject or a.kind != "faq" or b.kind != "faq":
        return False
    if set(words(a.title)) == set(words(b.title)):
        return True
    x, y = set(words(a.text)), set(words(b.text))
    # Short answers share most of their few words by chance ("Text of place-order.").
    return min(len(x), len(y)) >= SAME_ANSWER_MIN_WORDS and len(x & y) / len(x | y) >= SAME_ANSWER_OVERLAP


def _distinct_parents(hits: Sequence[Hit]) -> list[Hit]:
    seen: set[str] = set()
    out = []
    for hit in hits:
        if hit.parent not in seen:
            seen.add(hit.parent)
            out.append(hit)
    return out


def is_fast_path(decision: Decision, thresholds: Thresholds) -> bool:
    top = decision.top
    return (
        decision.kind == "answer"
        and top is not None
        and top.kind == "faq"
        and top.score >= thresholds.fast_path
    )
