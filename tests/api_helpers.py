"""Helpers for the HTTP API tests: services shared by a module, SSE parsing, a live server."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from helpers import TINY_KB_FILES


@contextmanager
def module_services(folder: Path, kb_template: Path, **overrides: Any) -> Iterator[Any]:
    """Real ``Services`` on a copy of the tiny-KB template, for a whole test module.

    Module-scoped fixtures run before the autouse ``data_dir`` fixture clears ``CHATBOT_*``,
    so the developer's shell settings are cleared here too. ``generator`` may be overridden;
    the default is a ``ScriptedGenerator`` (never the real language model). With a
    ``database_url`` (PostgreSQL, from ``module_database``) the tiny KB is published into that
    database as version 1 instead, so the module sees the same knowledge base either way.
    """
    from chatbot.generation.scripted import ScriptedGenerator
    from chatbot.services import build_services
    from chatbot.settings import Settings
    from knowledge.formats import read_files

    generator = overrides.pop("generator", None) or ScriptedGenerator()
    own_database = bool(overrides.get("database_url"))
    if not own_database:
        shutil.copytree(kb_template, folder)
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("CHATBOT_"):
                patch.delenv(name)
        settings = Settings(data_dir=folder, demo_kb=False, **overrides)
    services = build_services(settings, generator=generator, load_generator=False)
    if own_database:
        services.knowledge.save(read_files(TINY_KB_FILES), publish=True)
    services.retriever.index()
    try:
        yield services
    finally:
        services.engine.dispose()


def parse_sse(body: str) -> list[tuple[str, Any]]:
    """``[(event name, decoded data), ...]``; OpenAI's ``[DONE]`` stays a string."""
    events = []
    for block in body.replace("\r\n", "\n").split("\n\n"):
        name, data = "message", []
        for line in block.split("\n"):
            key, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if key == "event":
                name = value
            elif key == "data":
                data.append(value)
        if data:
            text = "\n".join(data)
            events.append((name, text if text == "[DONE]" else json.loads(text)))
    return events


def assert_error(response: Any, status: int, *needles: str) -> dict[str, Any]:
    """The one error shape: ``{"ok": false, "error": str, "status": int}``."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"ok", "error", "status"}, body
    assert body["ok"] is False and body["status"] == status
    assert isinstance(body["error"], str) and body["error"]
    for needle in needles:
        assert needle in body["error"], (needle, body["error"])
    return body


class LiveServer:
    """The app under uvicorn in a thread, on a free loopback port."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        # Open event streams (Gradio's) must not hold up the shutdown.
        config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the live server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
