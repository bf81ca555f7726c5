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
- a message in ``other_language`` than the knowledge base's is answered only from a hit at
  or above the fast-path threshold (the embedding model matches other languages poorly, and a
  confident wrong answer is worse than asking or handing over).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from knowledge.retrieval import Hit

SHORT_MARGIN = 0.1


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
) -> Decision:
    if intent == "human":
        return Decision("handoff", "customer_request", tuple(hits))
    if intent in ("greeting", "thanks", "goodbye"):
        return Decision("smalltalk", intent)
    if intent == "vague":
        return Decision("clarify", "vague")
    margin = max(thresholds.margin, SHORT_MARGIN) if short else thresholds.margin
    answer_at = max(thresholds.answer, thresholds.fast_path) if other_language else thresholds.answer
    relevant = [h for h in hits if h.score >= thresholds.clarify]
    if not relevant:
        return Decision("handoff", "no_answer", tuple(hits))
    top = relevant[0]
    # Several hits from one document are one candidate, not an ambiguity.
    rivals = [
        h
        for h in relevant[1:]
        if top.score - h.score < margin and h.parent != top.parent
    ]
    if top.score >= answer_at and not rivals:
        return Decision("answer", "confident", tuple(hits))
    candidates = _distinct_parents([top, *rivals])[:3]
    if clarifications_in_a_row >= thresholds.max_clarifications:
        reason = "repeated_clarification" if rivals else "low_confidence"
        return Decision("handoff", reason, tuple(hits))
    if len(candidates) >= 2:
        return Decision("clarify", "ambiguous", tuple(candidates))
    return Decision("clarify", "low_confidence", tuple(_distinct_parents(relevant)[:3]))


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
