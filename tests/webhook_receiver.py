"""A local HTTP server that records the handoff webhook's calls, for the handoff tests."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """A local webhook receiver: ``/hook`` records and answers 204, ``/fail`` answers 500,
    ``/slow`` waits until ``release`` is set."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.changed = threading.Condition()
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server API)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path == "/slow":
                    receiver.release.wait(10)
                with receiver.changed:
                    receiver.calls.append(
                        {"path": self.path, "headers": dict(self.headers), "body": body}
                    )
                    receiver.changed.notify_all()
                self.send_response(500 if self.path == "/fail" else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events_for(self, cid: str, count: int = 1, timeout: float = 10) -> list[dict[str, Any]]:
        """The calls about conversation ``cid``, once at least ``count`` have arrived."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                found = [c for c in self.calls
                         if json.loads(c["body"]).get("conversation_id") == cid]
                if len(found) >= count or time.monotonic() > deadline:
                    return found
                self.changed.wait(0.1)
