"""The chat page at ``/`` in a real browser, as a customer uses it.

The app server, Chromium and screenshots come from ``conftest.py``; the generator is the
scripted one. ``docs/screenshot.png`` is ``chat-page.png`` from a run with
``$CHATBOT_SCREENSHOTS`` set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gradio_events import settle
from sqlalchemy import text

from chatbot.demo import demo_files
from chatbot.staff.services import build_staff
from knowledge.formats import read_files

POLL_WAIT_MS = 15_000  # the page refreshes a conversation with a person every few seconds


# Helpers that speak the page's visible interface.


def board(page: Any) -> Any:
    return page.locator("#chat")


def bot_messages(page: Any) -> Any:
    return board(page).locator('[data-testid="bot"]')


def user_messages(page: Any) -> Any:
    return board(page).locator('[data-testid="user"]')


def open_page(page: Any, url: str) -> None:
    page.goto(url)
    page.get_by_role("textbox", name="Your message").wait_for()
    settle(page)


def ask(page: Any, question: str) -> Any:
    """Type and press Enter; return the reply once the turn has ended."""
    users, bots = user_messages(page).count(), bot_messages(page).count()
    box = page.get_by_role("textbox", name="Your message")
    box.fill(question)
    box.press("Enter")
    user_messages(page).nth(users).wait_for()
    bot_messages(page).nth(bots).wait_for()
    settle(page)
    return bot_messages(page).nth(bots)


def conversation_ids(services: Any) -> list[str]:
    with services.engine.connect() as conn:
        return list(conn.execute(text("SELECT id FROM conversations ORDER BY created_at")).scalars())


def only_conversation(services: Any) -> str:
    ids = conversation_ids(services)
    assert len(ids) == 1, ids
    return ids[0]


# The tests.


def test_the_chat_page_answers_and_shows_its_sources(page, serve, make_services, screenshot):
    services = make_services(records=read_files(demo_files()), shop_name="Northwind Outfitters")
    with serve(services) as app:
        page.set_viewport_size({"width": 1280, "height": 800})
        open_page(page, app.url)
        assert page.title() == "Northwind Outfitters · Support chat"
        assert page.get_by_role("heading", name="Northwind Outfitters · Support chat").is_visible()
        examples = board(page).get_by_role("button", name="Select example")
        assert examples.count() == 4, "example questions from the knowledge base"
        assert page.get_by_role("textbox", name="Your message").evaluate(
            "el => el === document.activeElement"
        ), "the message box has the focus"

        reply = ask(page, "How long do I have to return an item?")
        assert "30 days" in reply.inner_text()
        source = reply.locator("details.source")
        assert source.count() >= 1
        summary = source.first.locator("summary")
        assert summary.inner_text() == "Source: How long do I have to return an item?"
        assert not source.first.evaluate("el => el.open")
        summary.click()  # the entry's own text unfolds under its title
        assert source.first.evaluate("el => el.open")
        assert "30 days of delivery" in source.first.inner_text()
        screenshot(page, "chat-page.png")

        messages = services.chat.conversation(only_conversation(services)).messages
        assert [(m.role, m.decision) for m in messages] == [("user", None), ("assistant", "answer")]
        assert messages[1].sources[0]["title"] == "How long do I have to return an item?"

        # An example question is a button that asks it.
        page.get_by_role("button", name="New conversation").click()
        examples.first.wait_for()
        question = examples.first.inner_text()
        examples.first.click()
        user_messages(page).first.wait_for()
        settle(page)
        assert user_messages(page).first.inner_text() == question
        assert len(conversation_ids(services)) == 2


def test_a_reload_keeps_the_conversation_and_new_conversation_starts_over(
    page, serve, make_services
):
    services = make_services()
    with serve(services) as app:
        open_page(page, app.url)
        ask(page, "How long does delivery take?")
        ask(page, "When will I get my refund?")
        cid = only_conversation(services)
        storage = page.evaluate("() => Object.keys(localStorage)")
        assert storage == ["support-chat-conversation"], "the browser keeps only the id"

        page.reload()
        bot_messages(page).nth(1).wait_for()
        settle(page)
        assert user_messages(page).first.inner_text() == "How long does delivery take?"
        assert "2 to 4 business days" in bot_messages(page).first.inner_text()
        assert bot_messages(page).first.locator("details.source").count() >= 1
        ask(page, "Which payment methods do you accept?")
        assert conversation_ids(services) == [cid], "the same conversation continues"
        assert len(services.chat.conversation(cid).messages) == 6

        page.get_by_role("button", name="New conversation").click()
        board(page).get_by_role("button", name="Select example").first.wait_for()
        assert user_messages(page).count() == 0
        ask(page, "How can I track my order?")
        page.reload()
        user_messages(page).first.wait_for()
        assert user_messages(page).all_inner_texts() == ["How can I track my order?"]
        assert len(conversation_ids(services)) == 2


def test_an_answer_with_markup_shows_as_text_and_never_runs(
    page, serve, make_services, tiny_records, with_entries, xss_entry
):
    services = make_services(records=with_entries(tiny_records, xss_entry))
    with serve(services) as app:
        open_page(page, app.url)
        reply = ask(page, xss_entry["question"])
        assert xss_entry["answer"] in reply.inner_text(), "the markup is shown as text"
        reply.locator("details.source summary").first.click()
        assert reply.inner_text().count(xss_entry["answer"]) == 2, "the source's text too"
        page.reload()  # the restored conversation takes another path into the page
        bot_messages(page).first.wait_for()
        settle(page)
        assert xss_entry["answer"] in bot_messages(page).first.inner_text()
        page.wait_for_timeout(300)  # an image error handler would have fired by now
        assert page.evaluate("() => window.__xss") is None
        content = "#chat .message-content"
        assert page.evaluate(f"() => document.querySelectorAll('{content} img, {content} script')"
                             ".length") == 0


def test_thumbs_up_and_down_with_a_comment_are_stored(page, serve, make_services):
    services = make_services()
    with serve(services) as app:
        open_page(page, app.url)
        ask(page, "How long does delivery take?")
        ask(page, "Which payment methods do you accept?")
        cid = only_conversation(services)
        first, second = [m.id for m in services.chat.conversation(cid).messages
                         if m.role == "assistant"]

        board(page).get_by_role("button", name="Like", exact=True).first.click()
        page.get_by_text("Thanks for your feedback!").wait_for()

        board(page).get_by_role("button", name="Dislike", exact=True).last.click()
        remark = page.get_by_label("Sorry this didn't help. What were you looking for? (optional)")
        remark.wait_for()
        remark.fill("I pay with iDEAL, is that possible?")
        page.get_by_role("button", name="Send comment").click()
        page.get_by_text("Thanks, your comment helps us improve our answers.").wait_for()
        remark.wait_for(state="hidden")
        # A thumbs-down passes the conversation to a colleague, and the customer is told.
        bot_messages(page).get_by_text("A colleague from our support team will look").wait_for()
        page.locator("#chat-status").get_by_text("Waiting for a colleague.").wait_for()
        assert services.chat.conversation(cid).conversation.status == "waiting"

        feedback = services.chat.conversation(cid).feedback
        assert (feedback[first].rating, feedback[first].comment) == ("up", None)
        assert (feedback[second].rating, feedback[second].comment) == (
            "down", "I pay with iDEAL, is that possible?"
        )

        page.reload()  # the ratings are shown again after a reload
        bot_messages(page).nth(1).wait_for()
        settle(page)
        pressed = board(page).locator('button[aria-label="Dislike"] svg path[fill="currentColor"]')
        assert pressed.count() >= 1


def test_talk_to_a_person_then_the_colleagues_reply_appears(
    page, serve, make_services, screenshot
):
    services = make_services()
    with serve(services) as app:
        open_page(page, app.url)
        ask(page, "How long does delivery take?")
        person = page.get_by_role("button", name="Talk to a person")
        person.click()
        status = page.locator("#chat-status")
        status.get_by_text("Waiting for a colleague.").wait_for()
        settle(page)
        assert "colleague" in bot_messages(page).last.inner_text()
        assert person.is_disabled()
        cid = only_conversation(services)
        assert services.chat.conversation(cid).conversation.status == "waiting"

        # A colleague claims it (through the inbox's service, as the console and API do).
        staff = build_staff(services)
        sam = staff.accounts.add_user("sam@example.com", "agent", "correct horse battery staple")
        staff.handoffs.claim(sam, cid)
        status.get_by_text("You're chatting with our support team.").wait_for(
            timeout=POLL_WAIT_MS
        )
        bot_messages(page).get_by_text("Sam from our support team has joined").wait_for()
        settle(page)

        # The bot is silent: the customer's message shows alone, and no answer is stored.
        bots = bot_messages(page).count()
        box = page.get_by_role("textbox", name="Your message")
        box.fill("Where is my parcel?")
        box.press("Enter")
        user_messages(page).get_by_text("Where is my parcel?").wait_for()
        settle(page)
        assert bot_messages(page).count() == bots
        assert services.chat.conversation(cid).messages[-1].role == "user"

        staff.handoffs.reply(sam, cid, "Hi, I'm Sam <b>from support</b>. How can I help?")
        reply = bot_messages(page).get_by_text("How can I help?")
        reply.wait_for(timeout=POLL_WAIT_MS)
        assert "Sam · support team" in bot_messages(page).last.inner_text()
        assert "<b>from support</b>" in bot_messages(page).last.inner_text()
        screenshot(page, "chat-page-agent.png")

        # Handed back to the bot: the page says so and offers a person again.
        staff.handoffs.release(sam, cid)
        status.wait_for(state="hidden", timeout=POLL_WAIT_MS)
        bot_messages(page).get_by_text("handed this conversation back").wait_for()
        assert person.is_enabled()


def test_a_clarifying_question_offers_the_candidates_as_buttons(page, serve, make_services):
    services = make_services(answer_threshold=1.0, clarify_threshold=0.01)
    with serve(services) as app:
        open_page(page, app.url)
        ask(page, "I forgot my password")
        option = board(page).get_by_role("button", name="How do I reset my password?")
        option.wait_for()
        option.click()
        user_messages(page).nth(1).wait_for()
        settle(page)
        assert user_messages(page).nth(1).inner_text() == "How do I reset my password?"
        messages = services.chat.conversation(only_conversation(services)).messages
        assert [m.content for m in messages if m.role == "user"] == [
            "I forgot my password", "How do I reset my password?"
        ]


def test_which_product_is_meant_is_asked_with_a_button_each(page, serve, make_services,
                                                           screenshot):
    hotels = Path(__file__).resolve().parent.parent / "fixtures" / "hotels.jsonl"
    services = make_services(records=read_files([hotels]))
    with serve(services) as app:
        open_page(page, app.url)
        ask(page, "Does it have free parking?")
        option = board(page).get_by_role("button", name="Acorn Guest House")
        option.wait_for()
        screenshot(page, "chat-which-subject.png")
        option.click()
        bot_messages(page).nth(1).wait_for()
        settle(page)
        reply = bot_messages(page).nth(1).inner_text()
        assert "Acorn Guest House has no parking" in reply, reply


def test_phone_width_and_keyboard_only_use(page, serve, make_services, screenshot):
    services = make_services()
    with serve(services) as app:
        page.set_viewport_size({"width": 375, "height": 720})
        open_page(page, app.url)
        page.keyboard.type("How long does delivery take?")  # the box has the focus
        page.keyboard.press("Enter")
        bot_messages(page).first.wait_for()
        settle(page)
        assert "2 to 4 business days" in bot_messages(page).first.inner_text()
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 375
        send = page.get_by_role("button", name="Send").bounding_box()
        box = page.get_by_role("textbox", name="Your message").bounding_box()
        assert box["width"] > 200 and send["x"] + send["width"] <= 375
        assert send["y"] + send["height"] <= 720, "the message row fits on the screen"
        # Tab reaches the buttons; Enter on a focused button presses it.
        page.get_by_role("button", name="Talk to a person").focus()
        page.keyboard.press("Enter")
        page.locator("#chat-status").get_by_text("Waiting for a colleague.").wait_for()
        settle(page)
        send = page.get_by_role("button", name="Send").bounding_box()
        assert send["y"] + send["height"] <= 720, "still with the status line shown"
        screenshot(page, "chat-page-phone.png")
        cid = only_conversation(services)
        assert services.chat.conversation(cid).conversation.status == "waiting"
