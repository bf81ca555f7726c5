"""One FastAPI app: the Gradio chat page at ``/`` and HTTP routes beside it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import gradio as gr
from fastapi import FastAPI

from ui.chat_page import build_chat_page

if TYPE_CHECKING:
    from chatbot.service import Services


def create_app(services: Services) -> FastAPI:
    app = FastAPI(title="Support Chatbot", version="0.1.0")

    @app.get("/healthz")
    def healthz() -> dict[str, bool]:
        return {"ok": True}

    page = build_chat_page(services.chat)
    return gr.mount_gradio_app(app, page, path="/")
