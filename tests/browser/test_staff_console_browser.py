"""The staff console at ``/staff`` in a real browser: sign-in, tabs by role, sign-out.

Screenshots of each tab: ``CHATBOT_SCREENSHOTS=/tmp/shots .venv/bin/python -m pytest
tests/browser/test_staff_console_browser.py``.
"""

from __future__ import annotations

from typing import Any

from gradio_events import settle

from chatbot.staff.accounts import Accounts

PASSWORD = "correct horse battery staple"


def add_account(services: Any, email: str, role: str) -> None:
    Accounts(services.engine).add_user(email, role, PASSWORD)


def sign_in(page: Any, url: str, email: str, password: str = PASSWORD) -> None:
    page.goto(f"{url}/staff")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def tab(page: Any, name: str) -> Any:
    return page.get_by_role("tab", name=name)


def test_sign_in_shows_the_tabs_of_the_role_and_sign_out_ends_it(page, serve, make_services):
    services = make_services()
    add_account(services, "agent@example.com", "agent")
    with serve(services) as app:
        sign_in(page, app.url, "agent@example.com", "not the password!!")
        page.get_by_role("alert").wait_for()
        assert "not right" in page.get_by_role("alert").inner_text()

        sign_in(page, app.url, "agent@example.com")
        page.get_by_text("Signed in as").wait_for()
        assert "agent@example.com" in page.locator(".staff-header").inner_text()
        tab(page, "Inbox").wait_for()
        assert tab(page, "Knowledge base").count() == 0
        assert tab(page, "Users").count() == 0

        page.get_by_role("button", name="Sign out").click()
        page.get_by_label("Password").wait_for()
        page.goto(f"{app.url}/staff")
        assert page.url.endswith("/staff/login")


def seed_conversations(services: Any) -> None:
    """A few customer turns: answered, unanswered (handed off), and a request for a person."""
    chat = services.chat
    for questions in (
        ["How do I return an item?", "and how long do I have?"],
        ["Do you sell gift cards for horses?"],
        ["Can I change the delivery address?"],
    ):
        cid = chat.start_conversation()
        for question in questions:
            chat.send_message(cid, question)
    chat.request_handoff(chat.start_conversation())


def test_every_tab_opens_for_an_admin(page, serve, make_services, screenshot):
    services = make_services()
    add_account(services, "admin@example.com", "admin")
    seed_conversations(services)
    with serve(services) as app:
        sign_in(page, app.url, "admin@example.com")
        page.get_by_text("Signed in as").wait_for()
        from ui.staff_console import TABS

        for label, _area, _module in TABS:
            tab(page, label).click()
            page.wait_for_timeout(1500)  # let the tab's tables fill
            assert not page.locator(".toast-body.error").count(), f"an error on the {label} tab"
            slug = label.lower().replace(" ", "-")
            screenshot(page, f"staff-{slug}.png", full_page=True)


def test_an_editor_edits_an_entry_publishes_and_the_chat_page_answers_with_the_new_text(
    page, serve, make_services, screenshot
):
    services = make_services()
    add_account(services, "editor@example.com", "editor")
    new_answer = "You can return unworn items within 60 days of delivery, and returns are free."
    with serve(services) as app:
        sign_in(page, app.url, "editor@example.com")
        page.get_by_text("Signed in as").wait_for()
        assert tab(page, "Inbox").count() == 0  # an editor has no inbox
        settle(page)

        # Pick the entry in the table, change its answer, save the draft.
        page.get_by_role("gridcell", name="returns-window").first.click()
        answer = page.get_by_label("Answer", exact=True)
        answer.wait_for()
        page.wait_for_function(
            "() => [...document.querySelectorAll('textarea')].some(t => t.value.includes('30 days'))"
        )
        answer.fill(new_answer)
        settle(page)
        page.get_by_role("button", name="Save draft").first.click()
        page.get_by_text("as a draft. Publish to make it live.").filter(visible=True).first.wait_for()

        # A draft is not live: the customer still gets the published answer.
        cid = services.chat.start_conversation()
        assert "30 days" in services.chat.send_message(cid, "How long do I have to return an item?").text

        tab(page, "Publish").click()
        page.get_by_text("returns-window").filter(visible=True).first.wait_for()
        page.get_by_label("Note (what changed)").fill("longer returns window")
        # Opening the tab runs the pending list and the regression check: let them finish
        # (gradio_events says why the event stream must be settled too).
        settle(page)
        page.get_by_role("button", name="Publish", exact=True).click()
        page.get_by_text("Published version").filter(visible=True).first.wait_for(timeout=90_000)
        screenshot(page, "staff-published.png", full_page=True)

        # The chat page, as a customer, answers from the new text.
        customer = page.context.new_page()
        customer.goto(app.url)
        box = customer.get_by_role("textbox", name="Your message")
        box.wait_for()
        box.fill("How long do I have to return an item?")
        box.press("Enter")
        replies = customer.locator("#chat").locator("[data-testid=bot]")
        replies.get_by_text("within 60 days of delivery").first.wait_for()
        customer.close()
