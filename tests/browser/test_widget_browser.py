"""The widget in a real browser: the real app on one port, the sample host page on another.

``docs/widget-host.html`` is served by ``http.server`` from a second port, so the widget is
cross-origin exactly as on a customer's site. The app server, Chromium and screenshots come
from ``conftest.py`` (``docs/widget.png`` is ``widget.png`` from a run with
``$CHATBOT_SCREENSHOTS`` set).
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatbot.demo import demo_files
from chatbot.identity import sign_identity
from chatbot.staff.services import build_staff
from knowledge.formats import read_files

ROOT = Path(__file__).resolve().parents[2]
HOST_PAGE = ROOT / "docs" / "widget-host.html"
SNIPPET_BASE = "http://127.0.0.1:7860"
WIDGET = "support-chat-widget"
POLL_WAIT_MS = 15_000  # the widget refreshes a conversation with a person every 4 s


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def host_site(tmp_path: Path) -> Iterator[Any]:
    """``site(app_url, **attrs)`` → URL of the sample host page, on its own origin."""
    folder = tmp_path / "site"
    folder.mkdir()
    handler = functools.partial(QuietHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    counter = iter(range(1000))

    def site(app_url: str, **attrs: str) -> str:
        page = HOST_PAGE.read_text(encoding="utf-8")
        assert f'src="{SNIPPET_BASE}/widget.js"' in page, "the sample page's snippet changed"
        extra = "".join(f' data-{k.replace("_", "-")}="{v}"' for k, v in attrs.items())
        page = page.replace(f'src="{SNIPPET_BASE}/widget.js"', f'src="{app_url}/widget.js"{extra}')
        name = f"shop-{next(counter)}.html"
        (folder / name).write_text(page, encoding="utf-8")
        return f"http://127.0.0.1:{httpd.server_address[1]}/{name}"

    yield site
    httpd.shutdown()
    httpd.server_close()


# Helpers that speak the widget's visible interface (roles and labels).


def widget(page: Any) -> Any:
    return page.locator(WIDGET)


def open_chat(page: Any) -> None:
    widget(page).get_by_role("button", name="Open chat").click()
    widget(page).get_by_role("dialog").wait_for(state="visible")


def ask(page: Any, text: str) -> Any:
    """Type and press Enter; return the reply bubble once its final event has arrived."""
    before = bot_replies(page).count()
    box = widget(page).get_by_role("textbox", name="Your message")
    box.fill(text)
    box.press("Enter")
    reply = bot_replies(page).nth(before)
    reply.wait_for()
    page.wait_for_function(
        f"() => !document.querySelector('{WIDGET}').shadowRoot.querySelector('.typing')"
    )
    return reply


def bot_replies(page: Any) -> Any:
    return widget(page).locator(".msg.bot:not(.greet)")


def stored_conversation(page: Any) -> str | None:
    return page.evaluate(
        "() => Object.keys(localStorage).filter(k => k.startsWith('support-chat:'))"
        ".map(k => localStorage.getItem(k))[0] || null"
    )


# The tests.


def test_the_widget_answers_with_sources_on_a_hostile_page(
    page, host_site, serve, make_services, screenshot
):
    with serve(make_services(records=read_files(demo_files()))) as app:
        page.goto(host_site(app.url))
        launcher = widget(page).get_by_role("button", name="Open chat")
        launcher.wait_for(state="visible")
        open_chat(page)
        dialog = widget(page).get_by_role("dialog", name="Help")
        assert dialog.is_visible()
        box = widget(page).get_by_role("textbox", name="Your message")
        assert box.evaluate("el => el.getRootNode().activeElement === el"), "focus goes to input"
        assert widget(page).locator(".greet").inner_text() == "Hi! How can I help you today?"

        reply = ask(page, "How long do I have to return an item?")
        assert "30 days" in reply.locator(".body").inner_text()
        sources = reply.locator(".src li")
        assert sources.first.inner_text() == "How long do I have to return an item?"
        reply.get_by_role("button", name="Yes").click()
        reply.get_by_text("Thanks for your feedback!").wait_for()
        assert reply.get_by_role("button", name="Yes").get_attribute("aria-pressed") == "true"

        # The host's CSS (Comic Sans, red buttons) does not reach inside the widget ...
        send = widget(page).get_by_role("button", name="Send")
        style = send.evaluate(
            "el => [getComputedStyle(el).fontFamily, getComputedStyle(el).backgroundColor]"
        )
        assert "comic" not in style[0].lower()
        assert style[1] == "rgb(11, 95, 255)"
        # ... and the widget's CSS does not leak out.
        shop_button = page.get_by_role("button", name="Add to basket").first
        assert shop_button.evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(255, 0, 0)"
        screenshot(page, "widget.png")

        # What the browser showed is what the server stored, rating included.
        cid = stored_conversation(page)
        conv = httpx.get(f"{app.url}/api/v1/conversations/{cid}").json()
        assert [m["role"] for m in conv["messages"]] == ["user", "assistant"]
        assert conv["messages"][1]["feedback"]["rating"] == "up"

        # Escape closes the panel and gives focus back to the launcher.
        box.press("Escape")
        dialog.wait_for(state="hidden")
        assert launcher.evaluate("el => el.getRootNode().activeElement === el")


def test_a_reload_keeps_the_conversation_and_new_conversation_starts_over(
    page, host_site, serve, make_services
):
    with serve(make_services()) as app:
        url = host_site(app.url)
        page.goto(url)
        open_chat(page)
        ask(page, "How long does delivery take?")
        cid = stored_conversation(page)
        assert cid

        page.reload()
        open_chat(page)
        reply = bot_replies(page).first
        reply.locator(".src li").first.wait_for()
        assert "2 to 4 business days" in reply.inner_text()
        assert widget(page).locator(".msg.user").inner_text() == "How long does delivery take?"
        assert stored_conversation(page) == cid

        # Another page of the same site continues the same conversation.
        page.goto(host_site(app.url, title="Support"))
        open_chat(page)
        widget(page).locator(".msg.user").wait_for()
        ask(page, "When will I get my refund?")
        assert stored_conversation(page) == cid
        messages = httpx.get(f"{app.url}/api/v1/conversations/{cid}").json()["messages"]
        assert len(messages) == 4

        widget(page).get_by_role("button", name="New conversation").click()
        assert widget(page).locator(".msg.user").count() == 0
        ask(page, "Which payment methods do you accept?")
        assert stored_conversation(page) not in (None, cid)


def test_an_answer_with_markup_shows_as_text_and_never_runs(
    page, host_site, serve, make_services, tiny_records, with_entries, xss_entry
):
    with serve(make_services(records=with_entries(tiny_records, xss_entry))) as app:
        page.goto(host_site(app.url))
        open_chat(page)
        reply = ask(page, xss_entry["question"])
        assert reply.locator(".body").inner_text() == xss_entry["answer"]
        page.reload()  # the restored history takes another path into the page
        open_chat(page)
        bot_replies(page).first.locator(".src").wait_for()
        assert bot_replies(page).first.locator(".body").inner_text() == xss_entry["answer"]
        page.wait_for_timeout(300)  # an image error handler would have fired by now
        assert page.evaluate("() => window.__xss") is None
        shadow = f"document.querySelector('{WIDGET}').shadowRoot"
        assert page.evaluate(f"() => {shadow}.querySelectorAll('img, script').length") == 0


def test_a_site_that_is_not_allowed_is_told_so(page, host_site, serve, make_services, screenshot):
    services = make_services(allowed_origins="https://shop.example.com")
    with serve(services) as app:
        page.goto(host_site(app.url))
        open_chat(page)
        box = widget(page).get_by_role("textbox", name="Your message")
        box.fill("How long does delivery take?")
        box.press("Enter")
        alert = widget(page).get_by_role("alert")
        alert.wait_for(state="visible")
        assert alert.inner_text() == "This site is not allowed to use the chat."
        assert bot_replies(page).count() == 0
        assert box.input_value() == "How long does delivery take?", "the text is kept to retry"
        screenshot(page, "widget-refused.png")


def test_a_server_that_went_away_is_a_network_error(page, host_site, serve, make_services):
    with serve(make_services()) as app:
        page.goto(host_site(app.url))
        open_chat(page)
    # The server stopped after the page loaded the widget.
    box = widget(page).get_by_role("textbox", name="Your message")
    box.fill("How long does delivery take?")
    widget(page).get_by_role("button", name="Send").click()
    alert = widget(page).get_by_role("alert")
    alert.wait_for(state="visible")
    assert alert.inner_text() == (
        "Cannot reach the chat service. Check your connection and try again."
    )
    assert bot_replies(page).count() == 0


def test_talk_to_a_person_and_keyboard_only_use(page, host_site, serve, make_services):
    with serve(make_services()) as app:
        page.goto(host_site(app.url))
        page.keyboard.press("Tab")
        for _ in range(10):  # tab through the shop page until the launcher has focus
            if page.evaluate("() => document.activeElement.localName") == WIDGET:
                break
            page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        widget(page).get_by_role("dialog").wait_for(state="visible")
        page.keyboard.type("How long does delivery take?")
        page.keyboard.press("Enter")
        bot_replies(page).first.locator(".fb").wait_for()

        human = widget(page).get_by_role("button", name="Talk to a person")
        human.click()
        note = bot_replies(page).nth(1)
        note.wait_for()
        assert "colleague" in note.inner_text() or "person" in note.inner_text().lower()
        assert human.is_disabled()
        cid = stored_conversation(page)
        assert httpx.get(f"{app.url}/api/v1/conversations/{cid}").json()["status"] == "waiting"


def test_a_colleague_joins_writes_and_hands_back(page, host_site, serve, make_services):
    services = make_services()
    with serve(services) as app:
        page.goto(host_site(app.url))
        open_chat(page)
        ask(page, "How long does delivery take?")
        widget(page).get_by_role("button", name="Talk to a person").click()
        bot_replies(page).nth(1).wait_for()
        cid = stored_conversation(page)
        staff = build_staff(services)
        sam = staff.accounts.add_user("sam@example.com", "agent", "correct horse battery staple")
        staff.handoffs.claim(sam, cid)
        notes = widget(page).locator(".note")
        notes.get_by_text("Sam from our support team has joined").wait_for(timeout=POLL_WAIT_MS)

        # The bot is silent: no reply bubble, no stored answer.
        replies = bot_replies(page).count()
        box = widget(page).get_by_role("textbox", name="Your message")
        box.fill("Where is my parcel?")
        box.press("Enter")
        widget(page).locator(".msg.user").get_by_text("Where is my parcel?").wait_for()
        page.wait_for_function(
            f"() => !document.querySelector('{WIDGET}').shadowRoot.querySelector('.typing')"
        )
        assert bot_replies(page).count() == replies
        assert services.chat.conversation(cid).messages[-1].role == "user"

        staff.handoffs.reply(sam, cid, "Hi, I'm Sam. Your parcel left today.")
        reply = bot_replies(page).get_by_text("Your parcel left today.")
        reply.wait_for(timeout=POLL_WAIT_MS)
        assert "Sam · Support team" in bot_replies(page).last.inner_text()

        staff.handoffs.release(sam, cid)
        notes.get_by_text("handed this conversation back").wait_for(timeout=POLL_WAIT_MS)
        human = widget(page).get_by_role("button", name="Talk to a person")
        page.wait_for_function(
            f"() => !document.querySelector('{WIDGET}').shadowRoot"
            ".querySelector('.tools button').disabled"
        )
        assert human.is_enabled()


def test_language_theme_position_and_phone_width(
    page, host_site, serve, make_services, screenshot
):
    with serve(make_services()) as app:
        page.set_viewport_size({"width": 375, "height": 700})
        page.goto(host_site(app.url, lang="de", theme="dark", position="left", color="#ffcc00"))
        launcher = widget(page).get_by_role("button", name="Chat öffnen")
        box = launcher.bounding_box()
        assert box["x"] < 100, "data-position=left"
        launcher.click()
        dialog = widget(page).get_by_role("dialog")
        dialog.wait_for(state="visible")
        assert dialog.bounding_box() == {"x": 0, "y": 0, "width": 375, "height": 700}
        assert widget(page).get_by_role("button", name="Senden").is_visible()
        assert widget(page).get_by_role("button", name="Mit einem Menschen sprechen").is_visible()
        assert widget(page).get_by_role("button", name="Neues Gespräch").is_visible()
        head = widget(page).locator(".head").evaluate(
            "el => [getComputedStyle(el).backgroundColor, getComputedStyle(el).color]"
        )
        assert head == ["rgb(255, 204, 0)", "rgb(17, 17, 17)"], "dark text on a light accent"
        screenshot(page, "widget-phone.png")
        widget(page).get_by_role("button", name="Chat schließen").last.click()
        dialog.wait_for(state="hidden")


def test_a_signed_in_visitor_is_sent_with_the_new_conversation(
    page, host_site, serve, make_services
):
    secret = "s3cret-for-tests"
    signature = sign_identity(secret, "auth0|42", "Zoë Ångström", "zoe@example.com")
    with serve(make_services(widget_secret=secret)) as app:
        bodies: list[Any] = []
        page.on(
            "request",
            lambda r: bodies.append(r.post_data_json)
            if r.method == "POST" and r.url == f"{app.url}/api/v1/conversations" else None,
        )
        page.goto(host_site(
            app.url, user_id="auth0|42", user_name="Zoë Ångström", user_email="zoe@example.com",
            user_signature=signature,
        ))
        open_chat(page)
        ask(page, "How long does delivery take?")
        assert bodies == [{"visitor": {
            "user_id": "auth0|42", "name": "Zoë Ångström", "email": "zoe@example.com",
            "signature": signature, "ts": int(signature.split(".")[0]),
        }}]
        keys = page.evaluate("() => Object.keys(localStorage)")
        assert keys == [f"support-chat:{app.url}#auth0|42"], "each visitor has their own"
