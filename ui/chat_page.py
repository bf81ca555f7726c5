"""The customer chat page (Gradio), mounted at ``/`` by ``mount_chat_page``.

The browser keeps only the conversation id (``gr.BrowserState``). What the page shows is drawn
from the server's copy of the conversation (``ChatService.conversation``): on load, at the end
of every turn, after "Talk to a person" or a thumbs-down, and every few seconds while the
conversation waits for or is with a person, so a colleague's replies appear without a reload.
While an answer streams, the page shows the deltas; the drawing from the server then replaces
them. While a colleague has the conversation the bot is silent: a message sent then shows
alone until the colleague answers. Notices (a colleague joined, left, closed) show in italics.

Safe rendering: every text from the server (the customer's words, knowledge-base answers, a
colleague's replies, source titles and texts) is HTML-escaped before it reaches the Chatbot,
which renders Markdown and sanitizes HTML as a second line of defence. An answer containing
``<script>`` or ``<img onerror=...>`` is shown as those characters and never runs.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import gradio as gr

from chatbot.errors import ChatbotError
from chatbot.service import Delta, Final, Reset

if TYPE_CHECKING:
    from fastapi import FastAPI

    from chatbot.conversations import Message
    from chatbot.service import ChatService, ConversationView

GREETING = "Hi! How can I help you today?"
HINT = "Ask in your own words; answers come from our help articles. A person can take over any time."
STATUS = {
    "waiting": "**Waiting for a colleague.** Someone from our support team will reply here; "
    "you can keep writing, or come back later.",
    "agent": "**You're chatting with our support team.** A colleague has joined this "
    "conversation.",
    "closed": "**This conversation was closed by our support team.** Write again any time and "
    "our assistant will answer.",
}
THINKING = "_Looking through our help articles…_"  # shown until the first words arrive
POLL_SECONDS = 4.0  # how often a conversation with (or waiting for) a person is refreshed
MAX_SOURCES = 3
# BrowserState encrypts in the browser with a key sent to it; the key protects nothing here
# (the id is the secret), and a fixed one keeps stored conversations across server restarts.
BROWSER_KEY = "support-chat-conversation"
CSS = """
#chat-top { align-items: flex-end; flex-wrap: wrap; gap: 8px 16px; }
#chat-header { padding: 4px 2px 0; flex: 1 1 420px; }
#chat-actions { flex: 0 0 auto; gap: 8px; flex-wrap: nowrap; }
#chat-actions button { white-space: nowrap; }
#chat button[aria-label="Clear"] { display: none; }
#chat .examples { gap: 8px; }
#chat .example { border: 1px solid #c7d8fe; border-radius: 999px; background: #f5f8ff; }
#chat .example:hover, #chat .example:focus-visible { background: #e4edff; }
#chat .options { display: flex; flex-wrap: wrap; justify-content: flex-start; gap: 8px;
                 margin: 4px 0 8px; padding: 0 20px; }
#chat .option { border: 1px solid #9fbcfb; border-radius: 999px; background: #f5f8ff; color: #1e3a8a; }
#chat .option:hover, #chat .option:focus-visible { background: #e4edff; }
#chat-header h1 { font-size: 1.45rem; margin: 0 0 4px; }
#chat-header p { margin: 0; color: var(--body-text-color-subdued); font-size: 0.95rem; }
#chat-status { padding: 10px 14px; border-radius: 8px; background: #eef4ff; border: 1px solid #c7d8fe; }
#chat details.source { margin-top: 6px; font-size: 0.9em; }
#chat details.source summary { cursor: pointer; color: #475569; }
#chat details.source[open] { padding-bottom: 4px; }
#chat details.source > :not(summary) { padding-left: 14px; border-left: 2px solid #c7d8fe; }
#message-row { align-items: stretch; gap: 8px; flex-wrap: nowrap; }
#message-row > * { min-width: 0; }
#message-row button { flex: 0 0 auto; min-width: 76px; }
.gradio-container { max-width: 860px !important; margin: 0 auto !important; }
@media (max-width: 480px) {
  .gradio-container { padding: 8px !important; }
  #chat-header h1 { font-size: 1.15rem; }
  #chat-header p { display: none; }
  #chat-status { padding: 6px 10px; font-size: 0.9rem; }
}
"""


def escape(text: str) -> str:
    """Text for the Chatbot's Markdown: markup characters are shown, never interpreted."""
    return html.escape(text, quote=False)


def shown_sources(sources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sources worth showing under an answer (as in the widget): at most three, distinct
    titles, scoring at least 80 % of the best one."""
    if not sources:
        return []
    top = sources[0].get("score") or 0
    picked: list[dict[str, Any]] = []
    for source in sources:
        if len(picked) < MAX_SOURCES and (source.get("score") or 0) >= top * 0.8 and all(
            p["title"] != source["title"] for p in picked
        ):
            picked.append(source)
    return picked


def sources_markdown(sources: list[dict[str, Any]], texts: dict[str, str]) -> str:
    """One disclosure per source: its title, and its text when opened."""
    blocks = []
    for source in sources:
        title = escape(source.get("title") or source["id"])
        body = texts.get(source["id"])
        inner = f"\n\n{escape(body)}\n\n" if body else ""
        blocks.append(f'<details class="source"><summary>Source: {title}</summary>{inner}</details>')
    return "\n\n" + "\n".join(blocks) if blocks else ""


def bubble(message: Message, texts: dict[str, str], last: bool) -> dict[str, Any]:
    """A stored message as a Chatbot message."""
    if message.role == "user":
        return {"role": "user", "content": escape(message.content)}
    if message.role == "notice":
        return {"role": "assistant", "content": f"*{escape(message.content)}*"}
    if message.role == "agent":
        name = message.meta.get("agent_name")
        who = f"{escape(name)} · support team" if isinstance(name, str) and name else "Support team"
        return {"role": "assistant", "content": f"**{who}**\n\n{escape(message.content)}"}
    content = escape(message.content)
    out: dict[str, Any] = {"role": "assistant", "content": content}
    if message.decision == "answer":
        out["content"] += sources_markdown(shown_sources(message.sources), texts)
    elif message.decision == "clarify" and last:
        out["options"] = clarify_options(message.sources)
    return out


def clarify_options(sources: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The buttons of a clarifying question: the subjects when it asks which product or place
    is meant (``chatbot.replies.clarify_text``), else the candidate questions."""
    subjects = list(dict.fromkeys(s.get("subject") or "" for s in sources))
    if len(subjects) >= 2 and all(subjects):
        return [{"value": name, "label": name} for name in subjects]
    return [{"value": s["title"], "label": s["title"]} for s in sources]


def thumbs(view: ConversationView) -> list[str | None]:
    """The stored ratings as the Chatbot shows them: one entry per message on the bot's side."""
    shown = {"up": "Like", "down": "Dislike"}
    return [
        shown[view.feedback[m.id].rating] if m.id in view.feedback else None
        for m in view.messages
        if m.role != "user"
    ]


def draw(chat: ChatService, view: ConversationView | None, **board: Any) -> tuple[Any, ...]:
    """Everything the page shows of a conversation: (chatbot, shown, status, timer, person);
    ``board`` adds properties of the Chatbot (its examples)."""
    if view is None:
        return (gr.Chatbot(value=[], feedback_value=[], **board),
                {"ids": [], "status": "bot", "last": 0},
                gr.Markdown("", visible=False), gr.Timer(active=False),
                gr.Button(interactive=True))
    wanted = [s["id"] for m in view.messages if m.decision == "answer"
              for s in shown_sources(m.sources)]
    texts = chat.source_texts(wanted)
    last = len(view.messages) - 1
    messages = [bubble(m, texts, last=i == last) for i, m in enumerate(view.messages)]
    ids = [m.id if m.role == "assistant" else None for m in view.messages]
    status = view.conversation.status
    return (
        gr.Chatbot(value=messages, feedback_value=thumbs(view), **board),
        {"ids": ids, "status": status, "last": view.messages[-1].id if view.messages else 0},
        gr.Markdown(STATUS.get(status, ""), visible=status in STATUS),
        gr.Timer(active=status in ("waiting", "agent")),
        gr.Button(interactive=status in ("bot", "closed")),
    )


def build_chat_page(chat: ChatService) -> gr.Blocks:
    def view_of(cid: str | None) -> ConversationView | None:
        """The stored conversation, or None for none yet (or one the server no longer has)."""
        if not cid:
            return None
        try:
            return chat.conversation(cid)
        except ChatbotError:
            return None

    def restore(cid: str | None) -> tuple[Any, ...]:
        view = view_of(cid)
        examples = [{"text": q} for q in chat.example_questions()] or None
        return *draw(chat, view, examples=examples), view.conversation.id if view else None

    def respond(text: str, cid: str | None) -> Iterator[tuple[Any, ...]]:
        text = text or ""
        if not text.strip():
            raise gr.Error("Please type a question first.", title="Nothing to send")
        keep = (gr.skip(),) * 4
        try:
            cid = chat.ensure_conversation(cid)
            before = [bubble(m, {}, last=False) for m in chat.conversation(cid).messages]
            asked = [*before, {"role": "user", "content": escape(text)}]
            yield [*asked, {"role": "assistant", "content": THINKING}], *keep, "", cid
            reply = ""
            for event in chat.stream_message(cid, text):
                if isinstance(event, Delta):
                    reply += event.text
                elif isinstance(event, Reset):
                    reply = event.text
                elif isinstance(event, Final):
                    break
                yield [*asked, {"role": "assistant", "content": escape(reply)}], *keep, "", cid
        except ChatbotError as exc:
            view = view_of(cid)
            yield *draw(chat, view), text, view.conversation.id if view else None
            raise gr.Error(exc.message, title="Not sent") from None
        yield *draw(chat, chat.conversation(cid)), "", cid

    def pick(evt: gr.SelectData) -> str:
        """An example or a clarifying option was clicked: its text becomes the message."""
        value = evt.value
        return value.get("text", "") if isinstance(value, dict) else str(value)

    def rate(cid: str | None, shown: dict[str, Any], evt: gr.LikeData) -> tuple[Any, ...]:
        index = evt.index if isinstance(evt.index, int) else evt.index[0]
        ids = shown.get("ids", [])
        message_id = ids[index] if cid and 0 <= index < len(ids) else None
        closed = (gr.Column(visible=False), None, "")
        rest = (gr.skip(),) * 4  # the screen after the Chatbot: shown, status, timer, person
        if message_id is None or evt.liked not in (True, False):
            if message_id is None:
                gr.Info("Only the assistant's finished answers can be rated.")
            # Show the stored ratings again (a thumb clicked twice keeps its rating).
            view = view_of(cid)
            return *closed, gr.Chatbot(feedback_value=thumbs(view)) if view else gr.skip(), *rest
        try:
            chat.record_feedback(cid, message_id, "up" if evt.liked else "down")
        except ChatbotError as exc:
            raise gr.Error(exc.message, title="Feedback not saved") from None
        if evt.liked:
            gr.Info("Thanks for your feedback!")
            return *closed, gr.skip(), *rest
        # A thumbs-down passes the conversation to a colleague: show what the customer is told.
        return gr.Column(visible=True), message_id, "", *draw(chat, chat.conversation(cid))

    def comment(cid: str | None, message_id: int | None, text: str) -> tuple[Any, ...]:
        if cid and message_id is not None and text.strip():
            try:
                chat.record_feedback(cid, message_id, "down", text)
            except ChatbotError as exc:
                raise gr.Error(exc.message, title="Comment not saved") from None
            gr.Info("Thanks, your comment helps us improve our answers.")
        return gr.Column(visible=False), None, ""

    def talk_to_person(cid: str | None) -> tuple[Any, ...]:
        try:
            cid = chat.ensure_conversation(cid)
            chat.request_handoff(cid)
        except ChatbotError as exc:
            raise gr.Error(exc.message) from None
        return *draw(chat, chat.conversation(cid)), cid

    def poll(cid: str | None, shown: dict[str, Any]) -> tuple[Any, ...]:
        """Redraw when a colleague wrote or the status changed; a turn in progress is left
        alone (its customer message is the newest one) and redraws itself when it ends."""
        view = view_of(cid)
        if view is None:
            return draw(chat, None)
        newest = view.messages[-1] if view.messages else None
        changed = (newest.id if newest else 0) != shown.get("last", 0)
        if view.conversation.status == shown.get("status") and not changed:
            return (gr.skip(),) * 5
        if changed and newest is not None and newest.role == "user":
            return (gr.skip(),) * 5
        return draw(chat, view)

    def start_over() -> tuple[Any, ...]:
        return *draw(chat, None), None, gr.Column(visible=False)

    shop = chat.settings.shop_name
    with gr.Blocks(title=f"{shop} · Support chat", fill_height=True) as page:
        conversation = gr.BrowserState(None, storage_key=BROWSER_KEY, secret=BROWSER_KEY)
        shown = gr.State({"ids": [], "status": "bot", "last": 0})
        rating_for = gr.State(None)
        timer = gr.Timer(POLL_SECONDS, active=False)
        with gr.Row(elem_id="chat-top", equal_height=True):
            gr.HTML(
                f"<h1>{html.escape(shop)} · Support chat</h1><p>{html.escape(HINT)}</p>",
                elem_id="chat-header",
            )
            with gr.Row(elem_id="chat-actions", scale=0):
                person = gr.Button("Talk to a person", size="sm", scale=0)
                restart = gr.Button("New conversation", size="sm", scale=0)
        status = gr.Markdown("", visible=False, elem_id="chat-status")
        board = gr.Chatbot(
            value=[],
            label="Conversation",
            show_label=False,
            elem_id="chat",
            scale=1,  # with fill_height: the conversation grows into the window's free height
            height=240,
            min_height=200,
            placeholder=f"**{GREETING}**\n\nType your question below, or pick one of these:",
            sanitize_html=True,
            render_markdown=True,
            latex_delimiters=[],
            feedback_options=("Like", "Dislike"),
            buttons=[],  # no share/copy/clear icons: a plain conversation
            group_consecutive_messages=False,
            layout="bubble",
        )
        with gr.Column(visible=False, elem_id="feedback-comment") as comment_panel:
            remark = gr.Textbox(
                label="Sorry this didn't help. What were you looking for? (optional)",
                placeholder="Tell us what was missing or wrong",
                max_length=2000,
                lines=2,
            )
            with gr.Row():
                send_remark = gr.Button("Send comment", size="sm", variant="primary")
                skip_remark = gr.Button("Skip", size="sm")
        with gr.Row(elem_id="message-row"):
            box = gr.Textbox(
                label="Your message",
                show_label=False,
                placeholder="Type your question and press Enter",
                max_length=chat.settings.max_message_chars,
                autofocus=True,
                scale=8,
                min_width=0,
                container=False,
            )
            send = gr.Button("Send", variant="primary", scale=0, min_width=76)

        screen = [board, shown, status, timer, person]
        # The page's own endpoints are internal (the documented API is /api/v1); "send" is
        # named so that tests can drive a turn with gradio_client.
        turn = {"fn": respond, "inputs": [box, conversation],
                "outputs": [*screen, box, conversation], "show_progress": "minimal",
                "api_visibility": "undocumented"}
        gr.on([box.submit, send.click], **turn, api_name="send")
        board.example_select(pick, None, box, show_progress="hidden").then(**turn)
        board.option_select(pick, None, box, show_progress="hidden").then(**turn)
        board.like(rate, [conversation, shown], [comment_panel, rating_for, remark, *screen],
                   show_progress="hidden")
        gr.on([send_remark.click, remark.submit], comment, [conversation, rating_for, remark],
              [comment_panel, rating_for, remark])
        skip_remark.click(lambda: (gr.Column(visible=False), None, ""), None,
                          [comment_panel, rating_for, remark])
        person.click(talk_to_person, conversation, [*screen, conversation])
        restart.click(start_over, None, [*screen, conversation, comment_panel])
        timer.tick(poll, [conversation, shown], screen, show_progress="hidden")
        page.load(restore, conversation, [*screen, conversation])
    # Customers are served side by side (the language model itself generates one at a time).
    page.queue(default_concurrency_limit=32)
    return page


def mount_chat_page(app: FastAPI, chat: ChatService) -> FastAPI:
    """Serve the chat page at ``/`` of ``app``, without Gradio's own footer links."""
    theme = gr.themes.Soft(
        primary_hue="blue", neutral_hue="slate",
        font=["ui-sans-serif", "system-ui", "Segoe UI", "Roboto", "Helvetica Neue", "sans-serif"],
    )
    return gr.mount_gradio_app(
        app, build_chat_page(chat), path="/", css=CSS, theme=theme, footer_links=[],
        run_history=False,
    )
