"""Real ``chatbot serve`` subprocesses for the tests, and a small OpenAI-compatible model server.

``Server`` starts ``python -m chatbot serve`` on a free port with this checkout first on the
path and waits for ``/readyz``; its log goes to a file that ``running`` prints when the test
fails. ``SlowModel`` answers ``/v1/chat/completions`` (the ``openai`` backend) in this process,
streaming its reply one word per ``delay`` seconds.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SlowModel:
    """An OpenAI-compatible /v1/chat/completions that streams a reply one word per ``delay``."""

    def __init__(self, delay: float = 0.25) -> None:
        self.delay = delay
        self.questions: list[str] = []  # the last user message of every prompt received
        self.lock = threading.Lock()
        model = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with model.lock:
                    model.questions.append(body["messages"][-1]["content"])
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                words = ("Standard delivery within the UK takes 2 to 4 business days after "
                         "dispatch and costs £4.95.").split()
                try:
                    for word in words:
                        chunk = {"choices": [{"delta": {"content": word + " "}}]}
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                        self.wfile.flush()
                        time.sleep(model.delay)
                    self.wfile.write(b"data: [DONE]\n\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the server under test died or closed the stream

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/v1"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def asked(self) -> list[str]:
        with self.lock:
            return list(self.questions)

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


class Server:
    """``python -m chatbot serve`` on a free port; its log goes to ``log``."""

    def __init__(self, data: Path, log: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data, self.log_path = data, log
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CHATBOT_")}
        self.env.update(CHATBOT_DATA_DIR=str(data), CHATBOT_DEMO_KB="false",
                        CHATBOT_LOG_FORMAT="json", PYTHONPATH=str(ROOT), **env)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 180) -> Server:
        return self.launch().wait_ready(timeout)

    def launch(self) -> Server:
        """Start the process without waiting (several servers then start side by side)."""
        log = self.log_path.open("ab")
        self.data.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "chatbot", "serve", "--port", str(self.port)],
            env=self.env, stdout=log, stderr=log, cwd=self.data.parent,
        )
        return self

    def wait_ready(self, timeout: float = 180) -> Server:
        assert self.proc is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the server exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.kill()
        pytest.fail(f"the server was not ready within {timeout} s:\n{self.logs()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]


@contextmanager
def running(server: Server) -> Iterator[Server]:
    server.start()
    try:
        yield server
    except BaseException:
        print(server.logs())
        raise
    finally:
        server.stop()
