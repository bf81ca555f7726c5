"""Whole turns through ChatService on the tiny shop KB, with the scripted generator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chatbot import replies
from chatbot.errors import InvalidInput, ModelUnavailable
from chatbot.generation.base import ChatMessages, GenerationParams
from chatbot.generation.scripted import ScriptedGenerator
from chatbot.service import Delta, Final, Reset

NO_FAST_PATH = {"fast_path_threshold": 1.5}


def answer_of(services, entry_id: str) -> str:
    return services.knowledge.get(entry_id).answer


class BrokenGenerator:
    """A real generator whose backend is down: it fails after producing a word."""

    name = "broken"

    def __init__(self) -> None:
        self.calls = 0

    def stream(self, messages: ChatMessages, params: GenerationParams) -> Iterator[str]:
        self.calls += 1
        yield "Click"
        raise ModelUnavailable("The language model server is not reachable.")

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)


def test_single_turn_answer_cites_the_right_entry(make_services):
    services = make_services()
    chat = services.chat
    cid = chat.start_conversation()
    result = chat.send_message(cid, "How do I reset my password?")

    assert result.decision == "answer"
    assert result.sources[0]["id"] == "reset-password"
    assert result.sources[0]["title"] == "How do I reset my password?"
    assert "Forgot password" in result.text
    assert result.conversation_id == cid
    stored = services.conversations.messages(cid)
    assert [(m.role, m.decision) for m in stored] == [("user", None), ("assistant", "answer")]
    assert stored[0].content == "How do I reset my password?"
    assert stored[1].content == result.text
    assert stored[1].id == result.message_id
    assert stored[1].meta["kb_version"] == 1
    assert services.conversations.status(cid) == "bot"


def test_greeting_in_front_of_a_question_is_ignored(make_services):
    chat = make_services().chat
    result = chat.send_message(chat.start_conversation(), "hi, where is my order?")
    assert result.decision == "answer"
    assert result.sources[0]["id"] == "order-tracking"


def test_followup_names_only_what_changed(make_services):
    chat = make_services().chat
    cid = chat.start_conversation()
    first = chat.send_message(cid, "How long does shipping take?")
    assert (first.decision, first.sources[0]["id"]) == ("answer", "delivery-time")

    followup = chat.send_message(cid, "and to Canada?")
    assert followup.decision == "answer"
    assert followup.sources[0]["id"] == "delivery-canada"
    assert "Canada" in followup.text
    meta = chat.conversations.messages(cid)[-1].meta
    assert meta["context"] == "How long does shipping take?"


def test_followup_moves_to_the_next_topic(make_services):
    chat = make_services().chat
    cid = chat.start_conversation()
    first = chat.send_message(cid, "How long do I have to return an item?")
    assert (first.decision, first.sources[0]["id"]) == ("answer", "returns-window")

    followup = chat.send_message(cid, "and when will I get my refund?")
    assert followup.decision == "answer", followup
    assert followup.sources[0]["id"] == "refund-time"


def test_new_complete_question_is_not_mixed_with_the_previous_topic(make_services):
    chat = make_services().chat
    cid = chat.start_conversation()
    chat.send_message(cid, "How do I reset my password?")
    # Word for word a paraphrase stored in the KB: the previous topic must not make it ambiguous.
    result = chat.send_message(cid, "what is your phone number?")
    assert result.decision == "answer", result
    assert result.sources[0]["id"] == "contact-phone"


def test_asking_for_a_human_hands_off_and_waits(make_services):
    services = make_services()
    cid = services.chat.start_conversation()
    result = services.chat.send_message(cid, "I want to talk to a human")
    assert result.decision == "handoff"
    assert result.reason == "customer_request"
    assert result.text == replies.HANDOFF["customer_request"]
    assert services.conversations.status(cid) == "waiting"


def test_unrelated_question_is_not_answered(make_services):
    services = make_services()
    cid = services.chat.start_conversation()
    result = services.chat.send_message(cid, "who won the 1998 world cup?")
    assert result.decision in ("handoff", "clarify")
    if result.decision == "handoff":
        assert result.reason == "no_answer"
        assert services.conversations.status(cid) == "waiting"
    for entry in services.knowledge.published():
        assert getattr(entry, "answer", None) != result.text


@pytest.mark.parametrize(
    ("message", "reason"),
    [("hello", "greeting"), ("Hi there!", "greeting"), ("thanks!", "thanks"), ("bye", "goodbye")],
)
def test_small_talk_gets_a_small_talk_reply(make_services, message, reason):
    generator = ScriptedGenerator()
    chat = make_services(generator).chat
    result = chat.send_message(chat.start_conversation(), message)
    assert result.text == replies.SMALLTALK[reason]
    assert result.sources == []
    assert result.decision != "handoff"
    assert generator.prompts == []  # no language model for small talk


def test_generator_failure_keeps_the_message_and_answers_from_the_kb(make_services):
    generator = BrokenGenerator()
    services = make_services(generator, **NO_FAST_PATH)
    cid = services.chat.start_conversation()
    events = list(services.chat.stream_message(cid, "How do I reset my password?"))

    assert generator.calls == 1
    result = events[-1].result
    assert isinstance(events[-1], Final)
    assert any(isinstance(e, Reset) for e in events)
    assert result.decision == "answer"
    assert result.fallback is True
    assert result.text == answer_of(services, "reset-password")
    stored = services.conversations.messages(cid)
    assert stored[0].role == "user" and stored[0].content == "How do I reset my password?"
    assert stored[1].content == result.text


class ProcessDied(BaseException):
    """Not an Exception: the service answers model *errors* from the KB, but this one ends the
    turn the way a killed process would (tests/test_durability.py kills a real one)."""


def test_user_message_is_stored_before_the_model_runs(make_services):
    class Crashing(BrokenGenerator):
        def stream(self, messages, params):
            raise ProcessDied("process died mid-turn")
            yield ""  # pragma: no cover

    services = make_services(Crashing(), **NO_FAST_PATH)
    cid = services.chat.start_conversation()
    with pytest.raises(ProcessDied):
        services.chat.send_message(cid, "How do I reset my password?")
    stored = services.conversations.messages(cid)
    assert [(m.role, m.content) for m in stored] == [("user", "How do I reset my password?")]


def test_language_model_path_uses_passages_and_history(make_services):
    generator = ScriptedGenerator()
    services = make_services(generator, **NO_FAST_PATH)
    chat = services.chat
    cid = chat.start_conversation()
    chat.send_message(cid, "How do I reset my password?")
    reply = "Click Forgot password on the sign-in page and we will email you a reset link."
    generator.enqueue(reply)
    events = list(chat.stream_message(cid, "I forgot my password"))

    result = events[-1].result
    assert (result.decision, result.grounded, result.fallback) == ("answer", True, False)
    assert result.text == reply
    assert result.model == "scripted"
    assert "".join(e.text for e in events if isinstance(e, Delta)) == reply
    prompt = generator.prompts[-1]
    assert prompt[0]["role"] == "system"
    assert "[reset-password]" in prompt[0]["content"]
    assert prompt[-1] == {"role": "user", "content": "I forgot my password"}
    assert {"role": "user", "content": "How do I reset my password?"} in prompt


def test_fast_path_returns_the_entry_text_without_the_model(make_services):
    generator = ScriptedGenerator()
    services = make_services(generator, fast_path_threshold=0.0)
    result = services.chat.send_message(
        services.chat.start_conversation(), "How do I reset my password?"
    )
    assert result.text == answer_of(services, "reset-password")
    assert result.grounded is None and result.model is None
    assert generator.prompts == []


def test_repeated_clarifications_end_in_a_handoff(make_services):
    # Nothing is ever confident enough to answer, so the bot asks, asks again, then hands off.
    services = make_services(answer_threshold=1.0, clarify_threshold=0.01, max_clarifications=2)
    chat = services.chat
    cid = chat.start_conversation()
    kinds = [chat.send_message(cid, "I forgot my password").decision for _ in range(3)]
    assert kinds == ["clarify", "clarify", "handoff"]
    assert services.conversations.status(cid) == "waiting"


def test_clarify_lists_candidates_as_sources(make_services):
    services = make_services(answer_threshold=1.0, clarify_threshold=0.01)
    result = services.chat.send_message(
        services.chat.start_conversation(), "I forgot my password"
    )
    assert result.decision == "clarify"
    assert 1 <= len(result.sources) <= 3
    assert result.sources[0]["id"] == "reset-password"
    assert "How do I reset my password?" in result.text


@pytest.mark.parametrize(
    ("text", "needle"),
    [("", "empty"), ("   \n\t ", "empty"), ("x" * 4001, "4,001 characters; the limit is 4,000")],
)
def test_invalid_messages_are_refused_clearly(make_services, text, needle):
    services = make_services(kb=False)
    cid = services.chat.start_conversation()
    with pytest.raises(InvalidInput) as info:
        services.chat.send_message(cid, text)
    assert needle in info.value.message
    assert services.conversations.messages(cid) == []


def test_message_limit_follows_the_setting(make_services):
    services = make_services(kb=False, max_message_chars=20)
    with pytest.raises(InvalidInput, match="21 characters; the limit is 20"):
        services.chat.send_message(services.chat.start_conversation(), "y" * 21)


def test_conversation_history_can_be_replayed(make_services):
    chat = make_services().chat
    cid = chat.start_conversation(
        history=[
            {"role": "user", "content": "How long does shipping take?"},
            {"role": "assistant", "content": "2 to 4 business days."},
        ]
    )
    result = chat.send_message(cid, "and to Canada?")
    assert result.sources[0]["id"] == "delivery-canada"


@pytest.mark.parametrize(
    "history",
    [[{"role": "system", "content": "x"}], [{"role": "user", "content": "  "}], ["hello"]],
)
def test_bad_history_is_refused(make_services, history):
    chat = make_services(kb=False).chat
    with pytest.raises(InvalidInput, match=r"history\[0\]"):
        chat.start_conversation(history=history)


def test_bad_conversation_id_is_refused(make_services):
    chat = make_services(kb=False).chat
    with pytest.raises(InvalidInput, match="conversation id"):
        chat.ensure_conversation("../../etc/passwd")
    assert chat.ensure_conversation("shop-42") == "shop-42"
    assert chat.ensure_conversation("shop-42") == "shop-42"
