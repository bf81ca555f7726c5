"""Pure parts of a turn: the decision, intent classification and the prompt's token budget."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from chatbot.dialogue.decision import Thresholds, decide, is_fast_path
from chatbot.dialogue.intents import classify
from chatbot.prompts import SYSTEM_PROMPT, PromptPassage, build_messages
from knowledge.retrieval import Hit

T = Thresholds(answer=0.5, clarify=0.3, margin=0.08, fast_path=0.75, max_clarifications=2)


def hit(entry_id: str, score: float, *, parent: str | None = None, kind: str = "faq") -> Hit:
    return Hit(
        id=entry_id,
        kind=kind,
        title=f"Title of {entry_id}",
        text=f"Text of {entry_id}.",
        parent=parent or entry_id,
        score=score,
        dense=0.0,
        lead=0.0,
        keyword=0.0,
    )


def ranked(*scores: float) -> list[Hit]:
    return [hit(f"e{i}", s) for i, s in enumerate(sorted(scores, reverse=True))]


# Score lists covering the interesting regions around the thresholds.
SCORE_LISTS = [
    list(combo)
    for n in (1, 2, 3)
    for combo in itertools.combinations([0.95, 0.8, 0.76, 0.55, 0.5, 0.45, 0.32, 0.3, 0.29, 0.1, 0.0], n)
]


@pytest.mark.parametrize("scores", [[], [0.29], [0.29, 0.2, 0.1], [0.0, 0.0], [0.1]])
def test_no_hit_above_clarify_threshold_hands_off(scores):
    decision = decide("question", ranked(*scores), thresholds=T)
    assert (decision.kind, decision.reason) == ("handoff", "no_answer")


@pytest.mark.parametrize("scores", [[], [0.99], [0.6, 0.58], [0.1]])
@pytest.mark.parametrize("in_a_row", [0, 5])
def test_asking_for_a_person_always_hands_off(scores, in_a_row):
    decision = decide("human", ranked(*scores), thresholds=T, clarifications_in_a_row=in_a_row)
    assert (decision.kind, decision.reason) == ("handoff", "customer_request")


@pytest.mark.parametrize("intent", ["greeting", "thanks", "goodbye"])
def test_small_talk_needs_no_knowledge(intent):
    decision = decide(intent, ranked(0.9), thresholds=T)
    assert (decision.kind, decision.reason) == ("smalltalk", intent)


def test_confident_answer():
    decision = decide("question", ranked(0.9, 0.4), thresholds=T)
    assert (decision.kind, decision.reason) == ("answer", "confident")
    assert decision.top.id == "e0"


@pytest.mark.parametrize("scores", SCORE_LISTS, ids=str)
@pytest.mark.parametrize("in_a_row", [0, 1, 2])
def test_decision_invariants(scores, in_a_row):
    hits = ranked(*scores)
    decision = decide("question", hits, thresholds=T, clarifications_in_a_row=in_a_row)
    top = hits[0].score
    rivals = [h for h in hits[1:] if h.score >= T.clarify and top - h.score < T.margin]
    if top < T.clarify:
        assert (decision.kind, decision.reason) == ("handoff", "no_answer")
    elif decision.kind == "answer":
        # Answering requires the threshold and no close rival.
        assert top >= T.answer
        assert not rivals
        assert decision.top is hits[0]
    elif decision.kind == "clarify":
        assert in_a_row < T.max_clarifications
        assert 1 <= len(decision.hits) <= 3
        assert decision.hits[0] is hits[0]
        assert all(h.score >= T.clarify for h in decision.hits)
        assert len({h.parent for h in decision.hits}) == len(decision.hits)
    else:
        assert decision.kind == "handoff"
        assert in_a_row >= T.max_clarifications
    # Something relevant and unambiguous above the answer threshold is always answered.
    if top >= T.answer and not rivals:
        assert decision.kind == "answer"
    # Close rivals are never answered: ask (or, after enough questions, hand off).
    if rivals:
        assert decision.kind in ("clarify", "handoff")
        if decision.kind == "clarify":
            assert decision.reason == "ambiguous"
            assert len(decision.hits) == min(3, 1 + len(rivals))


def test_close_rivals_clarify_with_at_most_three_candidates():
    hits = ranked(0.7, 0.69, 0.68, 0.67, 0.66)
    decision = decide("question", hits, thresholds=T)
    assert (decision.kind, decision.reason) == ("clarify", "ambiguous")
    assert [h.id for h in decision.hits] == ["e0", "e1", "e2"]


def test_passages_of_one_document_are_not_rivals():
    hits = [
        hit("guide#1", 0.8, parent="guide", kind="passage"),
        hit("guide#2", 0.78, parent="guide", kind="passage"),
        hit("other", 0.2),
    ]
    decision = decide("question", hits, thresholds=T)
    assert (decision.kind, decision.top.id) == ("answer", "guide#1")


def test_rival_passages_count_once_per_document():
    hits = [
        hit("faq-a", 0.6),
        hit("guide#1", 0.58, parent="guide", kind="passage"),
        hit("guide#2", 0.57, parent="guide", kind="passage"),
    ]
    decision = decide("question", hits, thresholds=T)
    assert decision.kind == "clarify"
    assert [h.id for h in decision.hits] == ["faq-a", "guide#1"]


def test_low_confidence_clarifies_with_a_single_candidate():
    decision = decide("question", ranked(0.4, 0.1), thresholds=T)
    assert (decision.kind, decision.reason) == ("clarify", "low_confidence")
    assert [h.id for h in decision.hits] == ["e0"]


@pytest.mark.parametrize(
    ("scores", "reason"),
    [((0.7, 0.69), "repeated_clarification"), ((0.4,), "low_confidence")],
)
def test_max_clarifications_reached_hands_off(scores, reason):
    hits = ranked(*scores)
    assert decide("question", hits, thresholds=T, clarifications_in_a_row=1).kind == "clarify"
    decision = decide("question", hits, thresholds=T, clarifications_in_a_row=2)
    assert (decision.kind, decision.reason) == ("handoff", reason)


def test_confident_answer_is_given_even_after_clarifications():
    decision = decide("question", ranked(0.9), thresholds=T, clarifications_in_a_row=5)
    assert decision.kind == "answer"


def test_answer_threshold_is_inclusive():
    assert decide("question", ranked(0.5), thresholds=T).kind == "answer"
    assert decide("question", ranked(0.4999), thresholds=T).kind == "clarify"


@pytest.mark.parametrize(
    ("top", "kind", "fast"),
    [(0.75, "faq", True), (0.9, "faq", True), (0.74, "faq", False), (0.9, "passage", False)],
)
def test_fast_path_only_for_confident_faq_answers(top, kind, fast):
    hits = [hit("x", top, kind=kind, parent="x")]
    decision = decide("question", hits, thresholds=T)
    assert decision.kind == "answer"
    assert is_fast_path(decision, T) is fast
    no_fast = Thresholds(fast_path=1.01)
    assert not is_fast_path(decide("question", hits, thresholds=no_fast), no_fast)


# --- intents -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "kind", "text"),
    [
        ("hi", "greeting", None),
        ("Hello there!", "greeting", None),
        ("good morning :)", "greeting", None),
        ("hi, where is my order?", "question", "where is my order?"),
        ("Hello! How do I reset my password?", "question", "How do I reset my password?"),
        ("thanks", "thanks", None),
        ("Thank you so much!", "thanks", None),
        ("ok thanks", "thanks", None),
        ("bye", "goodbye", None),
        ("Goodbye!", "goodbye", None),
        ("Goodbye, have a nice day", "goodbye", None),
        ("thank you, goodbye", "goodbye", None),
        ("I want to talk to a human", "human", None),
        ("can I speak to an agent", "human", None),
        ("let me chat with a real person please", "human", None),
        ("agent please", "human", None),
        ("is there a human I can talk to?", "human", None),
        ("how do I contact support by phone?", "question", "how do I contact support by phone?"),
        ("What is your phone number?", "question", "What is your phone number?"),
        ("thanks for the refund, when will it arrive?", "question", None),
        ("high heels returns", "question", "high heels returns"),
    ],
)
def test_classify(message, kind, text):
    intent = classify(message)
    assert intent.kind == kind, intent
    if text is not None:
        assert intent.text == text


def test_classify_normalises_whitespace():
    assert classify("  where   is\nmy order? ").text == "where is my order?"


# --- prompt budget -----------------------------------------------------------------------


def words(text: str) -> int:
    return len(text.split())


def total(messages, count=words) -> int:
    return sum(count(m["content"]) for m in messages)


def history_of(n: int, size: int) -> list[tuple[str, str]]:
    return [
        ("user" if i % 2 == 0 else "assistant", f"turn{i} " + "word " * (size - 1))
        for i in range(n)
    ]


PASSAGES = [PromptPassage(f"p{i}", f"Passage {i}", "fact " * 40) for i in range(3)]


@pytest.mark.parametrize("budget", [150, 200, 260, 400, 1000, 5000])
@pytest.mark.parametrize("n_history", [0, 1, 5, 6, 12])
@pytest.mark.parametrize("max_history", [0, 2, 6])
def test_prompt_never_exceeds_budget(budget, n_history, max_history):
    messages = build_messages(
        question="How long does delivery take?",
        passages=PASSAGES,
        history=history_of(n_history, 20),
        count_tokens=words,
        budget=budget,
        max_history=max_history,
    )
    assert total(messages) <= budget
    assert messages[0]["role"] == "system" and messages[0]["content"].startswith(SYSTEM_PROMPT)
    assert messages[-1] == {"role": "user", "content": "How long does delivery take?"}
    window = messages[1:-1]
    assert len(window) <= max_history
    # The window starts with the customer; a history of whole turns (ending with the
    # assistant) keeps the roles alternating.
    if window:
        assert window[0]["role"] == "user"
    if n_history % 2 == 0:
        roles = [m["role"] for m in messages[1:]]
        assert all(a != b for a, b in itertools.pairwise(roles))


@pytest.mark.parametrize("budget", [200, 300, 350])
def test_prompt_keeps_the_newest_history(budget):
    history = history_of(10, 20)  # ends with the assistant's reply, as stored turns do
    messages = build_messages(
        question="and to Canada?",
        passages=PASSAGES[:1],
        history=history,
        count_tokens=words,
        budget=budget,
        max_history=10,
    )
    window = [m["content"] for m in messages[1:-1]]
    contents = [text for _, text in history]
    assert window, "some history fits"
    assert len(window) < len(contents), "the budget is too small for all of it"
    # The window is the newest part of the history, in order, ending with the last reply.
    assert window == contents[len(contents) - len(window) :]
    assert window[-1].startswith("turn9")
    assert total(messages) <= budget


def test_prompt_drops_passages_from_the_end_before_history():
    messages = build_messages(
        question="q",
        passages=PASSAGES,
        history=[],
        count_tokens=words,
        budget=120,
    )
    system = messages[0]["content"]
    assert "[p0]" in system and "[p2]" not in system
    assert total(messages) <= 120


def test_prompt_with_one_passage_larger_than_the_budget_still_fits():
    huge = PromptPassage("big", "Big passage", "fact " * 5000)
    messages = build_messages(
        question="q", passages=[huge], history=[], count_tokens=words, budget=500
    )
    assert total(messages) <= 500


def test_entries_that_say_the_same_thing_are_one_candidate():
    mask = replace(hit("mask-who", 0.8), title="Should I wear a mask?",
                   text="Wear a mask in crowded indoor places and on public transport.")
    twin = replace(hit("mask-gov", 0.78), title="Do I need to wear a face mask?",
                   text="Wear a face mask in crowded indoor places and on public transport.")
    decision = decide("question", [mask, twin], thresholds=T)
    assert (decision.kind, decision.top.id) == ("answer", "mask-who")
    other = replace(twin, title="Where can I get tested?", text="At any pharmacy, for free.")
    assert decide("question", [mask, other], thresholds=T).kind == "clarify"


def test_one_question_of_several_subjects_with_none_in_focus_is_asked_about():
    a = replace(hit("belfry-parking", 0.9), subject="The Belfry", dense=0.8)
    b = replace(hit("acorn-parking", 0.6), subject="Acorn", dense=0.79)
    decision = decide("question", [a, b], thresholds=T, subject_unknown=True)
    assert decision.kind == "clarify" and {h.subject for h in decision.hits} == {"The Belfry", "Acorn"}
    # A subject in focus (or one named) settles it; so does a clearly better match.
    assert decide("question", [a, b], thresholds=T).kind == "answer"
    far = replace(b, dense=0.6)
    assert decide("question", [a, far], thresholds=T, subject_unknown=True).kind == "answer"


@pytest.mark.parametrize("score", [0.55, 0.7])
def test_a_request_to_act_needs_an_entry_that_matches_it_closely(score):
    decision = decide("question", ranked(score), thresholds=T, action=True)
    assert (decision.kind, decision.reason) == ("handoff", "action_request")
    assert decide("question", ranked(0.9), thresholds=T, action=True).kind == "answer"


@pytest.mark.parametrize(("text", "action"), [
    ("book a table for four", True),
    ("find me a cheap one in the north", True),
    ("Please find a train to Cambridge", True),
    ("can you recommend a restaurant?", True),
    ("How do I book a table?", False),
    ("Does it have free parking?", False),
    ("what is my balance", False),
])
def test_requests_to_act_are_told_from_questions(text, action):
    from chatbot.dialogue.intents import is_action_request

    assert is_action_request(text) is action
