"""Unanswered questions: which messages count, grouping by meaning, one-step resolution.

Resolution goes through the real ``KnowledgeEditor`` (``chatbot.staff.kb_editor``).
"""

from __future__ import annotations

import pytest
from api_helpers import module_services
from staff_helpers import add_staff_accounts, staff_user
from staff_seed import Seeder

from chatbot.errors import Conflict, Forbidden, InvalidInput, NotFound
from chatbot.staff.services import build_staff
from chatbot.staff.unanswered import suggest_id

# Questions the tiny shop KB cannot answer, a few wordings each (see chatbot.staff.unanswered
# for the threshold measured on a larger set). "Do you sell gift cards?" is asked twice.
PARAPHRASES = {
    "gift-card": ["Do you sell gift cards?", "can I buy a gift voucher",
                  "Is there a gift card I can give my friend?", "gift certificates available?",
                  "Do you sell gift cards?"],
    "store-hours": ["What time does your shop open?", "opening hours of the store",
                    "When are you open on Sundays?", "what are your store hours"],
    "australia": ["Do you ship to Australia?", "can you deliver to Sydney",
                  "is delivery to Australia possible"],
    "cancel": ["How do I cancel my order?", "I want to cancel the order I placed yesterday",
               "cancel my purchase please"],
    "newsletter": ["How do I unsubscribe from your emails?", "stop sending me newsletters",
                   "unsubscribe from the mailing list"],
}
MAY = ("2025-05-01", "2025-05-31")
JUNE = ("2025-06-01", "2025-06-30")


@pytest.fixture(scope="module")
def services(tmp_path_factory, shared_embedding_model, kb_template):
    with module_services(tmp_path_factory.mktemp("unanswered") / "data", kb_template) as services:
        yield services


@pytest.fixture(scope="module")
def staff(services):
    staff = build_staff(services)
    add_staff_accounts(staff)
    return staff


@pytest.fixture(scope="module")
def seeded(services):
    s = Seeder(services.engine)
    n = 0
    for texts in PARAPHRASES.values():
        for text in texts:
            n += 1
            cid = s.conversation(f"p{n}", f"2025-05-{n:02d} 10:00:00")
            s.turn(cid, f"2025-05-{n:02d} 10:00:00", text, "Passing you on.", decision="handoff",
                   reason="no_answer")
    ids = {}
    # June: one conversation per rule.
    s.conversation("typed", "2025-06-01 09:00:00")
    ids["price_match"], _ = s.turn("typed", "2025-06-01 09:00:00", "Do you price match?",
                                   "We sell at our own prices.", decision="answer", source="x")
    ids["human"], _ = s.turn("typed", "2025-06-01 09:01:00", "I want a human", "Passing you on.",
                             decision="handoff", reason="customer_request")
    # The button afterwards must not make "I want a human" a question either.
    s.message("typed", "2025-06-01 09:02:00", "assistant", "Still waiting.", decision="handoff",
              reason="customer_request", requested=True)
    s.conversation("button", "2025-06-02 09:00:00")
    ids["parking"], _ = s.turn("button", "2025-06-02 09:00:00", "Is there parking at the shop?",
                               "Do you mean A or B?", decision="clarify", reason="ambiguous")
    s.message("button", "2025-06-02 09:01:00", "assistant", "Passing you on.", decision="handoff",
              reason="customer_request", requested=True)
    s.conversation("clarify", "2025-06-03 09:00:00")
    ids["where"], _ = s.turn("clarify", "2025-06-03 09:00:00", "Where are you based?",
                             "Do you mean A or B?", decision="clarify", reason="ambiguous")
    ids["warehouse"], _ = s.turn("clarify", "2025-06-03 09:01:00", "the warehouse",
                                 "Do you mean C or D?", decision="clarify", reason="ambiguous")
    s.turn("clarify", "2025-06-03 09:02:00", "How long does delivery take?", "2 to 4 days.",
           decision="answer", source="delivery-time")
    s.conversation("once", "2025-06-04 09:00:00")  # one clarification, then an answer: fine
    s.turn("once", "2025-06-04 09:00:00", "delivery", "Do you mean A or B?", decision="clarify",
           reason="ambiguous")
    s.turn("once", "2025-06-04 09:01:00", "the UK one", "2 to 4 days.", decision="answer",
           source="delivery-time")
    s.conversation("down", "2025-06-05 09:00:00")
    ids["colour"], ids["colour_answer"] = s.turn(
        "down", "2025-06-05 09:00:00", "What colour is the Alpine jacket?", "It is waterproof.",
        decision="answer", source="x")
    s.rate("down", ids["colour_answer"], "down", "2025-06-05 09:01:00")
    s.conversation("up", "2025-06-06 09:00:00")
    _, liked = s.turn("up", "2025-06-06 09:00:00", "Where is my order?", "Use the link.",
                      decision="answer", source="order-tracking")
    s.rate("up", liked, "up", "2025-06-06 09:01:00")
    s.conversation("abstained", "2025-06-08 09:00:00")
    ids["abstained"], _ = s.turn("abstained", "2025-06-08 09:00:00", "Can I pay by invoice?",
                                 "Use the link.", decision="answer", source="x", abstained=True)
    s.turn("abstained", "2025-06-08 09:02:00", "And by card?", "Yes.", decision="answer",
           source="x", abstained=False)
    s.conversation("lowconf", "2025-06-07 09:00:00")
    ids["lowconf"], _ = s.turn("lowconf", "2025-06-07 09:00:00", "boots?", "Passing you on.",
                               decision="handoff", reason="low_confidence")
    return ids


def test_which_questions_count(staff, seeded):
    questions = staff.unanswered.questions(staff_user(staff, "editor"), *JUNE)
    found = {q.message_id: q.reasons for q in questions}
    assert found == {
        seeded["price_match"]: ["customer_request"],
        seeded["parking"]: ["customer_request"],
        seeded["where"]: ["repeated_clarification"],
        seeded["warehouse"]: ["repeated_clarification"],
        seeded["colour"]: ["thumbs_down"],
        seeded["lowconf"]: ["low_confidence"],
        seeded["abstained"]: ["model_abstained"],
    }
    assert seeded["human"] not in found  # "I want a human" is not the question


def test_paraphrases_group_together_and_topics_apart(staff, seeded):
    groups = staff.unanswered.groups(staff_user(staff, "editor"), *MAY)
    got = sorted(sorted(set(g.examples)) for g in groups)
    assert got == sorted(sorted(set(texts)) for texts in PARAPHRASES.values())
    assert [g.count for g in groups] == [5, 4, 3, 3, 3]  # largest first
    gift = groups[0]
    assert gift.question in PARAPHRASES["gift-card"] and gift.examples[0] == "Do you sell gift cards?"
    assert gift.reasons == {"no_answer": 5}
    assert gift.first_seen.day == 1 and gift.last_seen.day == 5
    australia = next(g for g in groups if "Do you ship to Australia?" in g.examples)
    assert australia.nearest["id"] in ("delivery-canada", "delivery-time")
    assert 0 < australia.nearest["score"] < 1 and australia.nearest["question"]
    assert all(g.suggested_id and " " not in g.suggested_id for g in groups)


def test_date_range_and_bad_input(staff, seeded):
    editor = staff_user(staff, "editor")
    assert staff.unanswered.groups(editor, "2025-05-01", "2025-05-01")[0].examples == [
        "Do you sell gift cards?"]
    assert staff.unanswered.groups(editor, "2024-01-01", "2024-12-31") == []
    with pytest.raises(InvalidInput, match="'from' .* is after 'to'"):
        staff.unanswered.groups(editor, "2025-06-02", "2025-06-01")
    with pytest.raises(InvalidInput, match="'limit'"):
        staff.unanswered.groups(editor, limit=0)
    with pytest.raises(Forbidden):
        staff.unanswered.groups(staff_user(staff, "agent"))


def group_with(staff, text):
    return next(g for g in staff.unanswered.groups(staff_user(staff, "editor"), *MAY)
                if text in g.examples)


def test_to_entry_in_one_step(staff, seeded):
    editor = staff_user(staff, "editor")
    group = group_with(staff, "Do you sell gift cards?")
    with pytest.raises(Conflict):  # the id is taken: nothing is resolved
        staff.unanswered.to_entry(editor, group.message_ids,
                                  {"id": "delivery-time", "question": "Gift cards?", "answer": "No."})
    assert group_with(staff, "Do you sell gift cards?").count == 5
    result = staff.unanswered.to_entry(editor, group.message_ids, {
        "question": "Do you sell gift cards?", "answer": "Yes, from £10 in any amount.",
        "paraphrases": ["can I buy a gift voucher"]})
    assert result["resolved"] == 5 and result["entry"]["id"] == suggest_id("Do you sell gift cards?")
    entry_id = result["entry"]["id"]
    assert entry_id == "sell-gift-cards"
    drafts = {e["id"]: e for e in staff.kb.entries(editor)}
    assert drafts[entry_id]["answer"] == "Yes, from £10 in any amount."
    assert all("Do you sell gift cards?" not in g.examples
               for g in staff.unanswered.groups(editor, *MAY))
    event = staff.audit.events(editor, action_prefix="unanswered.")[0]
    assert (event.action, event.target, event.actor) == ("unanswered.entry", entry_id, editor.email)
    assert event.detail["message_ids"] == sorted(group.message_ids)
    with pytest.raises(Conflict, match="already resolved"):
        staff.unanswered.dismiss(editor, group.message_ids[:1])


def test_to_paraphrase_in_one_step(staff, seeded):
    editor = staff_user(staff, "editor")
    group = group_with(staff, "Do you ship to Australia?")
    with pytest.raises(NotFound):
        staff.unanswered.to_paraphrase(editor, group.message_ids, "no-such-entry", "x")
    result = staff.unanswered.to_paraphrase(editor, group.message_ids, "delivery-canada",
                                            "Do you ship to Australia?")
    assert result["resolved"] == 3 and "Do you ship to Australia?" in result["entry"]["paraphrases"]
    assert staff.audit.events(editor, action_prefix="unanswered.")[0].action == "unanswered.paraphrase"
    assert all("Do you ship to Australia?" not in g.examples
               for g in staff.unanswered.groups(editor, *MAY))


def test_dismiss_and_bad_ids(staff, seeded):
    editor = staff_user(staff, "editor")
    group = group_with(staff, "stop sending me newsletters")
    for bad, error, needle in [([], InvalidInput, "empty"), ([10**9], NotFound, "no message"),
                               ("12", InvalidInput, "list"), ([True], InvalidInput, "whole numbers")]:
        with pytest.raises(error, match=needle):
            staff.unanswered.dismiss(editor, bad)
    reply_id = group.message_ids[0] + 1  # the bot's reply to the first question
    with pytest.raises(InvalidInput, match="not a customer's question"):
        staff.unanswered.dismiss(editor, [reply_id])
    with pytest.raises(Forbidden):
        staff.unanswered.dismiss(staff_user(staff, "agent"), group.message_ids)
    assert staff.unanswered.dismiss(editor, group.message_ids)["resolved"] == 3
    remaining = staff.unanswered.groups(editor, *MAY)
    assert all("stop sending me newsletters" not in g.examples for g in remaining)
    assert staff.audit.events(editor, action_prefix="unanswered.")[0].action == "unanswered.dismiss"


def test_suggested_ids():
    assert suggest_id("Do you sell gift cards?") == "sell-gift-cards"
    assert suggest_id("How can I return my order to the UK warehouse quickly?") == (
        "return-order-uk-warehouse-quickly")
    assert suggest_id("???") == "new-entry"


def test_out_of_scope_questions_feed_the_next_calibration(staff, seeded, services):
    from chatbot.models import UnansweredResolutionRow
    from chatbot.staff.questions import out_of_scope_texts
    from knowledge.calibration import generic_unanswerable

    editor = staff_user(staff, "editor")
    group = group_with(staff, "What time does your shop open?")
    with pytest.raises(Forbidden):
        staff.unanswered.mark_out_of_scope(staff_user(staff, "agent"), group.message_ids)
    result = staff.unanswered.mark_out_of_scope(editor, group.message_ids)
    assert result == {"resolved": len(group.message_ids), "action": "out_of_scope", "entry": None}
    assert all("What time does your shop open?" not in g.examples
               for g in staff.unanswered.groups(editor, *MAY))
    event = staff.audit.events(editor, action_prefix="unanswered.")[0]
    assert event.action == "unanswered.out_of_scope"
    from sqlalchemy.orm import Session

    with Session(services.engine) as session:
        texts = out_of_scope_texts(session)
        assert session.get(UnansweredResolutionRow, group.message_ids[0]).action == "out_of_scope"
    assert "What time does your shop open?" in texts
    # The retriever's calibration counts them as unanswerable beside the generic messages.
    assert set(texts) <= set(services.retriever.unanswerable())
    calibration = services.retriever.fit_calibration(services.retriever.index())
    removed_entry_phrasings = calibration.unanswerable - len(generic_unanswerable()) - len(texts)
    assert removed_entry_phrasings >= 0


def test_the_operating_point_of_the_live_version(staff, seeded):
    report = staff.unanswered.calibration(staff_user(staff, "editor"))
    assert report["fitted"] is True and report["kb_version"] >= 1
    point = report["operating_point"]
    assert point["answer_threshold"] >= 0.3
    assert 0.0 <= point["answer_precision"] <= 1.0 and 0.0 <= point["oos_recall"] <= 1.0
    assert report["marked_out_of_scope"] >= 0
    with pytest.raises(Forbidden):
        staff.unanswered.calibration(staff_user(staff, "agent"))
    from ui.staff_console.unanswered_tab import calibration_markdown

    assert "answer precision" in calibration_markdown(report)
    assert "built-in calibration" in calibration_markdown({"fitted": False})


@pytest.fixture(scope="module")
def either_database(tmp_path_factory, shared_embedding_model, kb_template, module_database):
    folder = tmp_path_factory.mktemp("unanswered-db") / "data"
    with module_services(folder, kb_template, **module_database) as services:
        yield services


def test_abstentions_are_found_in_sqlite_and_postgresql(either_database):
    """The JSON test on ``meta`` that picks out conversations holding an abstention is SQL
    that each database spells its own way."""
    staff = build_staff(either_database)
    add_staff_accounts(staff)
    s = Seeder(either_database.engine)
    s.conversation("abst", "2025-07-01 09:00:00")
    asked, _ = s.turn("abst", "2025-07-01 09:00:00", "Can I pay by invoice?", "Use the link.",
                      decision="answer", source="x", abstained=True)
    s.conversation("fine", "2025-07-02 09:00:00")
    s.turn("fine", "2025-07-02 09:00:00", "Where is my order?", "Use the link.",
           decision="answer", source="x", abstained=False, fallback=True)
    questions = staff.unanswered.questions(staff_user(staff, "editor"), "2025-07-01", "2025-07-31")
    assert [(q.message_id, q.reasons) for q in questions] == [(asked, ["model_abstained"])]
