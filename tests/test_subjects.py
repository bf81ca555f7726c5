"""The subject in focus: entries about one hotel or product, answered for the one the
conversation is about (named by the customer, the bot or an agent), asked about when none is."""

from __future__ import annotations

import json

import pytest
from helpers import FIXTURES

from chatbot.dialogue.focus import find_focus, is_bare_switch
from chatbot.errors import InvalidInput
from knowledge.formats import read_files
from knowledge.subjects import SubjectMatcher
from ui.chat_page import clarify_options

HOTELS = FIXTURES / "hotels.jsonl"
HOTEL_QUESTIONS = [
    ("The Cambridge Belfry", "Does it have free parking?"),
    ("Acorn Guest House", "Does it have free parking?"),
    ("Gonville Hotel", "Does it have free parking?"),
    ("", "How do I cancel my booking?"),
]


class Said:
    """A stored message, as much of it as the focus reads."""

    def __init__(self, role: str, content: str) -> None:
        self.role, self.content = role, content


def test_a_subject_is_named_in_full_or_by_a_word_only_its_name_has():
    matcher = SubjectMatcher.for_entries(HOTEL_QUESTIONS)
    assert matcher.mentions("I'd like to stay at the Cambridge Belfry") == ["The Cambridge Belfry"]
    assert matcher.mentions("what about acorn?") == ["Acorn Guest House"]
    assert matcher.mentions("the gonville then") == ["Gonville Hotel"]
    # "hotel", "house" and "guest" belong to no one subject; "parking" is the KB's vocabulary.
    assert matcher.mentions("a hotel with free parking for a guest") == []


def test_a_name_in_full_outweighs_a_word_that_happens_to_match():
    matcher = SubjectMatcher.for_entries([("Stormshell jacket", "Is it waterproof?"),
                                          ("Merino base layer", "Is it waterproof?"),
                                          ("Breeze softshell", "Is it waterproof?")])
    mentioned = matcher.mentions("the Stormshell jacket has a 3-layer merino lining")
    assert mentioned[-1] == "Stormshell jacket"  # the most salient comes last


def test_the_focus_is_the_subject_named_last_by_anyone():
    matcher = SubjectMatcher.for_entries(HOTEL_QUESTIONS)
    history = [Said("user", "I need a room in Cambridge"),
               Said("assistant", "The Cambridge Belfry has rooms free."),
               Said("user", "ok"),
               Said("agent", "Acorn Guest House has one too, by the way.")]
    focus = find_focus("does it have free parking?", history, matcher)
    assert (focus.subject, focus.named_now) == ("Acorn Guest House", False)
    assert find_focus("and the Belfry?", history, matcher).subject == "The Cambridge Belfry"
    other = find_focus("what about the other one?", history, matcher)
    assert (other.subject, other.switched) == ("The Cambridge Belfry", True)
    assert is_bare_switch("what about the other one?", other)
    assert find_focus("does it have wifi?", [], matcher).subject is None
    notice = [Said("notice", "Acorn Guest House closed this conversation")]
    assert find_focus("wifi?", notice, matcher).subject is None  # notices are nobody's words


def test_a_bare_switch_names_the_subject_and_nothing_else():
    matcher = SubjectMatcher.for_entries(HOTEL_QUESTIONS)
    assert is_bare_switch("I mean the Belfry, please", find_focus("I mean the Belfry", [], matcher))
    question = "is breakfast included at the Belfry?"
    assert not is_bare_switch(question, find_focus(question, [], matcher))


@pytest.fixture
def hotels(make_services):
    return make_services(records=read_files([HOTELS])).chat


def test_a_question_every_hotel_has_is_answered_for_the_one_in_focus(hotels):
    cid = hotels.start_conversation(history=[
        {"role": "user", "content": "Is there a room at Acorn Guest House next week?"},
        {"role": "assistant", "content": "Yes, Acorn Guest House has rooms from Monday."},
    ])
    result = hotels.send_message(cid, "Does it have free parking?")
    assert (result.decision, result.sources[0]["id"]) == ("answer", "acorn-parking")
    assert result.sources[0]["subject"] == "Acorn Guest House"
    # General entries are still answered while a hotel is in focus.
    general = hotels.send_message(cid, "how do I cancel my booking?")
    assert (general.decision, general.sources[0]["id"]) == ("answer", "cancel-booking")


def test_the_subject_the_bot_named_is_in_focus(hotels):
    cid = hotels.start_conversation(history=[
        {"role": "user", "content": "I want somewhere with a good breakfast"},
        {"role": "assistant", "content": "Gonville Hotel is popular for that."},
    ])
    result = hotels.send_message(cid, "can I get online in my room?")
    assert (result.decision, result.sources[0]["id"]) == ("answer", "gonville-wifi")


def test_with_no_subject_in_focus_the_bot_asks_which_one_with_buttons(hotels):
    cid = hotels.start_conversation()
    asked = hotels.send_message(cid, "Does it have free parking?")
    assert asked.decision == "clarify"
    subjects = {s["subject"] for s in asked.sources}
    assert len(subjects) >= 2 and subjects <= {"The Cambridge Belfry", "Acorn Guest House",
                                               "Gonville Hotel"}
    assert "Which one do you mean" in asked.text
    buttons = clarify_options(asked.sources)
    assert {b["label"] for b in buttons} == subjects
    # Clicking a button sends the subject's name: the earlier question is answered for it.
    chosen = buttons[0]["value"]
    answered = hotels.send_message(cid, chosen)
    expected = {"The Cambridge Belfry": "belfry-parking", "Acorn Guest House": "acorn-parking",
                "Gonville Hotel": "gonville-parking"}[chosen]
    assert (answered.decision, answered.sources[0]["id"]) == ("answer", expected)


def test_the_other_one_switches_the_subject(hotels):
    cid = hotels.start_conversation(history=[
        {"role": "user", "content": "Acorn Guest House or Gonville Hotel?"},
        {"role": "assistant", "content": "Both are close to the centre."},
    ])
    first = hotels.send_message(cid, "is breakfast included at Gonville Hotel?")
    assert first.sources[0]["id"] == "gonville-breakfast"
    other = hotels.send_message(cid, "and the other one?")
    assert (other.decision, other.sources[0]["id"]) == ("answer", "acorn-breakfast")


def test_a_request_to_act_is_handed_over_not_answered_with_an_faq(hotels):
    cid = hotels.start_conversation()
    result = hotels.send_message(cid, "find me a cheap hotel in the north")
    assert (result.decision, result.reason) == ("handoff", "action_request")
    assert "can't do that for you here" in result.text


def test_subject_is_validated_on_import_and_survives_export(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "x", "question": "q?", "answer": "a.", "subject": 7}) + "\n")
    with pytest.raises(InvalidInput, match="line 1.*'subject' must be a non-empty string"):
        read_files([bad])
    csv = tmp_path / "kb.csv"
    csv.write_text("id,question,answer,subject\nbelfry-pets,Are dogs allowed?,Yes.,The Cambridge Belfry\n"
                   "general,How do I pay?,By card.,\n")
    entries = read_files([csv])
    assert [e.subject for e in entries] == ["The Cambridge Belfry", ""]
    assert entries[0].to_dict()["subject"] == "The Cambridge Belfry"
    assert "subject" not in entries[1].to_dict()


def test_subjects_named_in_the_questions_are_inferred():
    from knowledge.subjects import infer_subjects

    questions = {f"{n}-{q}": t.format(name) for n, name in (("a", "Acorn Guest House"),
                                                            ("g", "Gonville Hotel"),
                                                            ("b", "the Cambridge Belfry"))
                 for q, t in (("p", "Does {} have free parking?"), ("w", "Does {} have wifi?"),
                              ("b", "Is breakfast included at {}?"))}
    questions |= {"pets": "Are dogs allowed at Acorn Guest House?",
                  "paypal": "Can I pay with PayPal?", "klarna": "Can I pay with Klarna?",
                  "reset": "How do I reset my Password?"}
    inferred = infer_subjects(questions)
    assert inferred["a-p"] == inferred["pets"] == "Acorn Guest House"
    assert inferred["b-w"] == "Cambridge Belfry"
    # One shared question makes no subject, and a capitalised word alone is no name.
    assert not {"paypal", "klarna", "reset"} & set(inferred)


def test_a_kb_that_names_its_places_in_its_questions_is_answered_for_the_one_in_focus(
        make_services):
    chat = make_services(records=read_files([FIXTURES / "hotels_named.jsonl"])).chat
    cid = chat.start_conversation(history=[
        {"role": "user", "content": "I'm thinking of Gonville Hotel"},
        {"role": "assistant", "content": "Gonville Hotel is near the station."},
    ])
    result = chat.send_message(cid, "is there internet?")
    assert (result.decision, result.sources[0]["id"]) == ("answer", "gonville-wifi")
    asked = chat.send_message(chat.start_conversation(), "can I park my car?")
    assert asked.decision == "clarify" and "Which one do you mean" in asked.text
