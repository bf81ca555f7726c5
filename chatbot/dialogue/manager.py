"""One turn's understanding: intent, retrieval query, hits and decision.

``plan_turn`` reads nothing but its arguments and the retriever; it does not store anything.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from chatbot.conversations import Message
from chatbot.dialogue.decision import Decision, Thresholds, decide
from chatbot.dialogue.focus import Focus, find_focus, is_bare_switch
from chatbot.dialogue.followup import Query, build_query
from chatbot.dialogue.intents import Intent, classify, is_action_request
from chatbot.dialogue.language import kb_language, other_language
from chatbot.dialogue.language import name as language_name
from chatbot.replies import OTHER_LANGUAGE
from knowledge.retrieval import Hit, Retriever
from knowledge.subjects import SubjectMatcher

# A follow-up that repeats the previous entry's topic usually asks about something new, so
# the entry just answered gives way a little to a close neighbour.
PREVIOUS_ENTRY_DISCOUNT = 0.7


SHORT_WORDS = 2
_WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class TurnPlan:
    intent: Intent
    query: Query
    decision: Decision
    language: str | None = None  # the message's language, when surely not the KB's
    kb_language: str = "en"
    focus: Focus = Focus(None)

    def with_language_note(self, reply: str) -> str:
        """A clarifying question or handoff of a message in another language says why first."""
        if self.language is None:
            return reply
        return f"{OTHER_LANGUAGE.format(language=language_name(self.kb_language))} {reply}"


def clarifications_in_a_row(history: Sequence[Message]) -> int:
    count = 0
    for message in reversed(history):
        if message.role == "user":
            continue
        if message.role == "assistant" and message.decision == "clarify":
            count += 1
        else:
            break
    return count


def _previous_answer_ids(history: Sequence[Message]) -> set[str]:
    for message in reversed(history):
        if message.role == "assistant":
            if message.decision == "answer" and message.sources:
                return {message.sources[0]["id"]}
            return set()
    return set()


def _earlier_question(previous_user: Sequence[str], matcher: SubjectMatcher) -> str | None:
    """The customer's last question that was more than a change of subject."""
    for text in reversed(previous_user):
        if not is_bare_switch(text, find_focus(text, (), matcher)):
            return text
    return None


def merge(alone: Sequence[Hit], contextual: Sequence[Hit], previous: set[str], k: int) -> list[Hit]:
    """Each item keeps its better score of the two searches; the previous answer is discounted
    in the contextual search, where the old topic alone would otherwise win."""
    best: dict[str, Hit] = {}
    for hit in alone:
        best[hit.id] = hit
    for hit in contextual:
        if hit.id in previous:
            hit = replace(hit, score=hit.score * PREVIOUS_ENTRY_DISCOUNT)
        if hit.id not in best or hit.score > best[hit.id].score:
            best[hit.id] = hit
    return sorted(best.values(), key=lambda h: (-h.score, h.id))[:k]


def plan_turn(
    text: str,
    history: Sequence[Message],
    retriever: Retriever,
    *,
    thresholds: Thresholds,
    k: int = 5,
) -> TurnPlan:
    intent = classify(text)
    # Earlier questions give a follow-up its topic; "help" or "hi" give none.
    previous_user = [m.content for m in history
                     if m.role == "user" and classify(m.content).kind == "question"]
    focus = Focus(None)
    matcher = retriever.index().subjects().matcher
    if matcher and intent.kind in ("question", "human"):
        focus = find_focus(intent.text, history, matcher)
    earlier_question = (_earlier_question(previous_user, matcher)
                        if is_bare_switch(intent.text, focus) else None)
    if earlier_question:
        # "The Belfry" after "which one do you mean?", "and the Daytripper?", "what about the
        # other one?": the earlier question, asked of the subject now in focus.
        query = Query(earlier_question, None)
    else:
        query = build_query(intent.text, previous_user)
    subject = focus.subject
    hits: list[Hit] = []
    language, kb = None, "en"
    if intent.kind == "question":
        texts = retriever.index().keyword_texts
        language, kb = other_language(intent.text, texts), kb_language(texts)
    if intent.kind in ("question", "human"):
        hits = retriever.search(query.text, k=k, subject=subject)
        # A message that is clear on its own ("what about returns?") needs no context.
        confident_alone = bool(hits) and hits[0].score >= thresholds.answer
        if query.context and not confident_alone:
            contextual = retriever.search(query.text, k=k, context=query.context, subject=subject)
            # The entry the earlier question was about: from the stored reply when there is
            # one, else (replayed or imported history) what that question retrieves.
            previous = _previous_answer_ids(history)
            earlier = retriever.search(query.context, k=1, subject=subject)
            if earlier and earlier[0].score >= thresholds.answer and not focus.switched:
                previous.add(earlier[0].id)
            hits = merge(hits, contextual, previous, k)
    decision = decide(
        intent.kind,
        hits,
        thresholds=thresholds,
        clarifications_in_a_row=clarifications_in_a_row(history),
        short=len(_WORD.findall(query.text)) <= SHORT_WORDS,
        other_language=language is not None,
        # An entry phrased as a request itself ("book a hotel room") is what was asked for.
        action=intent.kind == "question" and is_action_request(intent.text)
        and not (hits and is_action_request(hits[0].title)),
        subject_unknown=bool(matcher) and focus.subject is None,
    )
    return TurnPlan(intent, query, decision, language, kb, focus)
