"""The customer chat page (Gradio). The browser keeps only the conversation id."""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import gradio as gr

from chatbot.errors import ChatbotError
from chatbot.service import Delta, Final, Reset

if TYPE_CHECKING:
    from chatbot.service import ChatService

GREETING = (
    "Hi! I'm the support assistant. Ask me about orders, shipping, returns, payments or "
    "your account."
)


def _sources_markdown(sources: list[dict[str, Any]]) -> str:
    if not sources:
        return ""
    return f"\n\n<sub>Source: {html.escape(sources[0]['title'])}</sub>"


def build_chat_page(chat: ChatService) -> gr.Blocks:
    def respond(
        text: str, messages: list[dict[str, Any]], conversation_id: str | None
    ) -> Iterator[tuple[list[dict[str, Any]], str, str | None]]:
        if not text or not text.strip():
            raise gr.Error("Please type a question first.")
        try:
            cid = chat.ensure_conversation(conversation_id)
            messages = [*messages, {"role": "user", "content": text}]
            reply = ""
            for event in chat.stream_message(cid, text):
                if isinstance(event, Delta):
                    reply += event.text
                elif isinstance(event, Reset):
                    reply = event.text
                elif isinstance(event, Final):
                    result = event.result
                    reply = result.text
                    if result.decision == "answer":
                        reply += _sources_markdown(result.sources)
                yield [*messages, {"role": "assistant", "content": reply}], "", cid
        except ChatbotError as exc:
            raise gr.Error(exc.message) from None

    def new_conversation() -> tuple[list[dict[str, Any]], None]:
        return [{"role": "assistant", "content": GREETING}], None

    with gr.Blocks(title="Support chat") as page:
        gr.Markdown("## Support chat")
        conversation = gr.BrowserState(None, storage_key="support-chat-conversation")
        chatbot = gr.Chatbot(
            value=[{"role": "assistant", "content": GREETING}],
            height=520,
            sanitize_html=True,
            render_markdown=True,
            label="Conversation",
        )
        with gr.Row():
            box = gr.Textbox(
                placeholder="Type your question and press Enter",
                show_label=False,
                scale=8,
                max_length=chat.settings.max_message_chars,
                autofocus=True,
            )
            send = gr.Button("Send", variant="primary", scale=1)
        restart = gr.Button("New conversation", size="sm")
        box.submit(respond, [box, chatbot, conversation], [chatbot, box, conversation])
        send.click(respond, [box, chatbot, conversation], [chatbot, box, conversation])
        restart.click(new_conversation, None, [chatbot, conversation])

        def restore(cid: str | None) -> list[dict[str, Any]]:
            greeting = [{"role": "assistant", "content": GREETING}]
            if not cid or not chat.conversations.exists(cid):
                return greeting
            shown = [
                {"role": "user" if m.role == "user" else "assistant", "content": m.content}
                for m in chat.conversations.messages(cid)
            ]
            return greeting + shown

        page.load(restore, [conversation], [chatbot])
    return page
