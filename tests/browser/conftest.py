"""Browser tests: the real app in a real Chromium.

The app (``create_app`` over real services, scripted generator, never the real language model)
runs under uvicorn in a thread on a free loopback port (``serve``). Chromium is the system one
(Debian package ``chromium``), driven by Playwright; without either, the tests are skipped with
the reason. Each test gets a fresh browser context whose console output and page errors are
printed, so a failing test shows them.

Screenshots (``screenshot(page, name)``) go to each test's tmp dir, and also to
``$CHATBOT_SCREENSHOTS`` when it is set:
``CHATBOT_SCREENSHOTS=/tmp/shots .venv/bin/python -m pytest tests/browser``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gradio_events import track_streams

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TIMEOUT_MS = 30_000
# Read now: the suite's autouse fixture clears CHATBOT_* variables before each test.
SCREENSHOTS = os.environ.get("CHATBOT_SCREENSHOTS")

XSS_ANSWER = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script> Thanks!'


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class AppServer:
    """uvicorn in a thread, serving ``create_app(services)`` on a free loopback port."""

    def __init__(self, services: Any) -> None:
        import uvicorn

        from ui.app import create_app

        self.services = services
        self.sock = free_socket()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        # The chat page keeps event streams open; shutting down does not wait for them.
        config = uvicorn.Config(
            create_app(services), log_level="warning", lifespan="on", timeout_graceful_shutdown=1
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})

    def __enter__(self) -> AppServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert self.thread.is_alive(), "the app server stopped while starting (see the log)"
            assert time.monotonic() < deadline, "the app server did not start within 60 s"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


@pytest.fixture
def serve() -> type[AppServer]:
    """``with serve(services) as app:`` runs the app; ``app.url`` is its address."""
    return AppServer


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless system Chromium for the whole session."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright is not installed (pip install -e '.[dev]')"
    )
    if CHROMIUM is None:
        pytest.skip("the system Chromium is not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context; console output and page errors are printed if a test fails."""
    context = browser.new_context(viewport={"width": 1100, "height": 760})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.console_lines = []
    page.on("console", lambda m: page.console_lines.append(f"console.{m.type}: {m.text}"))
    page.on("pageerror", lambda e: page.console_lines.append(f"pageerror: {e}"))
    track_streams(page)
    yield page
    print("\n".join(page.console_lines))
    context.close()


@pytest.fixture
def screenshot(tmp_path: Path) -> Callable[..., Path]:
    """``screenshot(page, "name.png")`` saves into the test's tmp dir (and $CHATBOT_SCREENSHOTS)."""

    def save(page: Any, name: str, **options: Any) -> Path:
        path = tmp_path / name
        page.screenshot(path=str(path), **options)
        if SCREENSHOTS:
            Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(SCREENSHOTS) / name)
        return path

    return save


@pytest.fixture
def with_entries(data_dir: Path) -> Callable[..., list[Any]]:
    """``with_entries(records, entry, ...)``: the records plus FAQ entries given as dicts."""
    from knowledge.formats import read_files

    def add(records: list[Any], *entries: dict[str, Any]) -> list[Any]:
        path = data_dir.parent / "extra.jsonl"
        path.write_text("".join(json.dumps(e) + "\n" for e in entries), encoding="utf-8")
        return [*records, *read_files([path])]

    return add


@pytest.fixture
def xss_entry() -> dict[str, str]:
    """An FAQ entry whose answer is markup that would run if it were ever parsed as HTML."""
    return {
        "id": "xss-gift-box",
        "question": "What is inside the mystery gift box?",
        "answer": XSS_ANSWER,
    }
