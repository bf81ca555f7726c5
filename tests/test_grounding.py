"""Is a generated answer supported by its passages? And what the customer sees when it is not."""

from __future__ import annotations

import pytest

from chatbot import grounding
from chatbot.generation.scripted import ScriptedGenerator
from chatbot.service import Delta, Final, Reset

RETURNS = "You can return unworn items within 30 days of delivery for a full refund."
CANADA = "Delivery to Canada takes 7 to 10 business days after dispatch and costs £18."
PASSAGES = [RETURNS, CANADA]


@pytest.fixture(scope="module")
def embed(embedder):
    return embedder.embed_sentences


@pytest.mark.parametrize(
    "answer",
    [
        RETURNS,
        CANADA,
        f"{RETURNS} {CANADA}",
        "You have 30 days from delivery to return unworn items.",
        "Delivery to Canada costs £18.",
    ],
)
def test_supported_answers_are_grounded(embed, answer):
    verdict = grounding.check(answer, PASSAGES, embed)
    assert verdict.grounded, verdict
    assert verdict.unsupported == ()
    assert 0.0 <= verdict.support <= 1.0 + 1e-6


@pytest.mark.parametrize(
    "answer",
    [
        "Delivery to Canada takes 3 to 5 business days.",  # invented duration
        "Delivery to Canada costs £25.",  # invented price
        "You can return unworn items within 60 days of delivery for a full refund.",
        "Our stores are open on Sundays.",  # unrelated claim
    ],
)
def test_invented_facts_are_not_grounded(embed, answer):
    verdict = grounding.check(answer, PASSAGES, embed)
    assert not verdict.grounded
    assert verdict.unsupported == (answer,)


@pytest.mark.parametrize(
    ("answer", "passage"),
    [
        ("You cannot return unworn items within 30 days of delivery.", RETURNS),
        ("You can return gift cards.", "You cannot return gift cards."),
        ("Delivery to Canada is not possible.", "Delivery to Canada is possible."),
    ],
)
def test_negation_flip_is_not_grounded(embed, answer, passage):
    verdict = grounding.check(answer, [passage], embed)
    assert not verdict.grounded, verdict


def test_numbers_must_come_from_the_matching_passage(embed):
    """UK delivery takes 2 to 4 days; that does not make "Canada takes 2 to 4 days" true."""
    uk = "Standard delivery within the UK takes 2 to 4 business days after dispatch."
    verdict = grounding.check(
        "Delivery to Canada takes 2 to 4 business days.", [uk, CANADA], embed
    )
    assert not verdict.grounded, verdict


@pytest.mark.parametrize(
    "answer",
    [
        # What the bundled model wrote for "How do I reset my password?".
        'To reset your password, go to www.mywebsite.com/us/settings/forgbid/and select '
        '"Reset Password".',
        "Click Forgot password on https://shop.example.com/login to get a reset link.",
        "Click Forgot password on the sign-in page or write to help@shop.example.",
        "Click Forgot password on the sign-in page of northwind.com.",
    ],
)
def test_invented_links_and_addresses_are_not_grounded(embed, answer):
    passage = "Click Forgot password on the sign-in page and we will email you a reset link."
    assert grounding.check(passage, [passage], embed).grounded
    verdict = grounding.check(answer, [passage], embed)
    assert not verdict.grounded and verdict.unsupported == (answer,), verdict


def test_links_the_passage_gives_may_be_repeated(embed):
    passage = ("Track your parcel at https://track.northwind.example/orders. Questions: "
               "help@northwind.example.")
    answer = "You can track your parcel at https://track.northwind.example/orders."
    assert grounding.check(answer, [passage], embed).grounded


def test_one_unsupported_sentence_spoils_the_answer(embed):
    verdict = grounding.check(f"{CANADA} It is free for orders over £50.", PASSAGES, embed)
    assert not verdict.grounded
    assert verdict.unsupported == ("It is free for orders over £50.",)


@pytest.mark.parametrize(("answer", "passages"), [("", PASSAGES), (RETURNS, [])])
def test_nothing_to_compare_is_not_grounded(embed, answer, passages):
    assert not grounding.check(answer, passages, embed).grounded


def test_fallback_text_is_the_passage_own_words(embed):
    assert grounding.fallback_text("anything", "faq", RETURNS, embed) == RETURNS
    text = (
        "Wash jackets at 30 degrees. Close every zip. Use no fabric softener. "
        "Store sleeping bags loose. Keep tents dry."
    )
    picked = grounding.fallback_text("how do I store my sleeping bag?", "passage", text, embed)
    chosen = grounding.sentences(picked)
    assert len(chosen) == 3
    assert "Store sleeping bags loose." in chosen
    # Sentences keep the order they have in the passage.
    assert chosen == [s for s in grounding.sentences(text) if s in chosen]


# --- through the service ---------------------------------------------------------------


def test_ungrounded_reply_is_replaced_by_the_entry_answer(make_services):
    generator = ScriptedGenerator()
    services = make_services(generator, fast_path_threshold=1.5)
    generator.enqueue("Delivery to Canada takes 3 weeks and costs £25.")
    cid = services.chat.start_conversation()
    events = list(services.chat.stream_message(cid, "How long does delivery to Canada take?"))

    result = events[-1].result
    assert isinstance(events[-1], Final)
    assert result.decision == "answer"
    assert result.sources[0]["id"] == "delivery-canada"
    assert result.fallback is True
    assert result.grounded is False
    assert result.text == services.knowledge.get("delivery-canada").answer
    # The invented text never reached the customer: nothing was streamed before the reset.
    assert not any(isinstance(e, Delta) and "25" in e.text for e in events)
    assert [type(e) for e in events] == [Reset, Final]
    stored = services.conversations.messages(cid)[-1]
    assert (stored.content, stored.grounded) == (result.text, False)
    assert stored.meta["fallback"] is True


def test_the_models_abstention_is_never_shown_and_is_marked_for_staff(make_services):
    """A tuned model's handoff sentence is no handoff: the entry's text answers, and the turn
    is marked so the question appears among the unanswered ones."""
    from chatbot.prompts import HANDOFF_REPLY

    generator = ScriptedGenerator()
    services = make_services(generator, fast_path_threshold=1.5)
    generator.enqueue(HANDOFF_REPLY.replace("I'm", "I am"), "Delivery to Canada takes 7 to 10 "
                      "business days after dispatch and costs £18.")
    cid = services.chat.start_conversation()
    events = list(services.chat.stream_message(cid, "How long does delivery to Canada take?"))
    result = events[-1].result
    assert [type(e) for e in events] == [Reset, Final]
    assert (result.decision, result.fallback, result.grounded) == ("answer", True, False)
    assert result.text == services.knowledge.get("delivery-canada").answer
    assert services.conversations.status(cid) == "bot"  # not handed over
    assert services.conversations.messages(cid)[-1].meta["abstained"] is True
    again = services.chat.send_message(cid, "How long does delivery to Canada take?")
    assert again.grounded is True  # a stated answer is not an abstention
    assert "abstained" not in services.conversations.messages(cid)[-1].meta


def test_reply_that_goes_wrong_midway_is_withdrawn(make_services):
    generator = ScriptedGenerator()
    services = make_services(generator, fast_path_threshold=1.5)
    answer = services.knowledge.get("delivery-canada").answer
    generator.enqueue(f"{answer} Express delivery to Canada takes 1 day.")
    events = list(
        services.chat.stream_message(
            services.chat.start_conversation(), "How long does delivery to Canada take?"
        )
    )
    kinds = [type(e) for e in events]
    assert kinds[0] is Delta and Reset in kinds
    assert events[-1].result.text == answer
    assert events[-1].result.grounded is False


@pytest.mark.parametrize("reply", [
    "Delivery to Canada takes 7 to 10 business days after dispatch.",
    # A reply that ends without a full stop, within its token budget, is kept whole.
    "Delivery to Canada takes 7 to 10 business days after dispatch. Delivery to Canada costs £18",
])
def test_grounded_reply_is_kept(make_services, reply):
    generator = ScriptedGenerator()
    services = make_services(generator, fast_path_threshold=1.5)
    generator.enqueue(reply)
    result = services.chat.send_message(
        services.chat.start_conversation(), "How long does delivery to Canada take?"
    )
    assert (result.text, result.grounded, result.fallback) == (reply, True, False)


def test_a_reply_cut_off_by_its_token_budget_ends_at_its_last_whole_sentence(make_services):
    generator = ScriptedGenerator()
    services = make_services(generator, fast_path_threshold=1.5, max_new_tokens=20)
    whole = "Delivery to Canada takes 7 to 10 business days after dispatch."
    # The scripted generator stops at 20 tokens (a word of n letters counts n // 4), mid-way
    # through the second sentence.
    generator.enqueue(f"{whole} Delivery to Canada costs £18 and the parcel is tracked all the way.")
    events = list(services.chat.stream_message(
        services.chat.start_conversation(), "How long does delivery to Canada take?"))
    result = events[-1].result
    assert (result.text, result.grounded, result.fallback) == (whole, True, False)
    assert "".join(e.text for e in events if isinstance(e, Delta)) == whole

    # A sentence finished with the budget's last token is kept.
    generator.enqueue(f"{whole} Delivery to Canada costs £18.")
    result = services.chat.send_message(
        services.chat.start_conversation(), "How long does delivery to Canada take?")
    assert result.text == f"{whole} Delivery to Canada costs £18."


def test_ungrounded_reply_about_a_document_falls_back_to_its_sentences(make_services):
    generator = ScriptedGenerator()
    services = make_services(
        generator, fast_path_threshold=1.5, answer_threshold=0.2, clarify_threshold=0.1
    )
    generator.enqueue("Wash it at 90 degrees with lots of fabric softener.")
    result = services.chat.send_message(
        services.chat.start_conversation(), "How should I wash my waterproof jacket?"
    )
    assert result.decision == "answer"
    assert result.sources[0]["id"] == "care-guide#1"
    assert (result.grounded, result.fallback) == (False, True)
    assert "90" not in result.text
    assert "30 degrees" in result.text
