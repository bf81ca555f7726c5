"""The OpenAI-compatible backend against a real local HTTP server speaking that protocol.

A vLLM or TGI server cannot run here, so the test serves the chat-completions wire format
itself (server-sent events) on loopback and checks what the backend sends and streams.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from chatbot.errors import ModelUnavailable
from chatbot.generation.base import GenerationParams
from chatbot.generation.openai_http import OpenAIGenerator


class FakeModelServer:
    """Answers POST /v1/chat/completions with the queued reply, streamed word by word."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.reply = "Hello there."
        self.status = 200
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", 0))
                owner.requests.append(json.loads(self.rfile.read(length)))
                owner.headers.append(dict(self.headers))
                if self.path != "/v1/chat/completions" or owner.status != 200:
                    self.send_response(owner.status if owner.status != 200 else 404)
                    self.end_headers()
                    self.wfile.write(b'{"error": "nope"}')
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                words = owner.reply.split(" ")
                for i, word in enumerate(words):
                    piece = word if i == 0 else " " + word
                    chunk = {"choices": [{"index": 0, "delta": {"content": piece}}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def model_server() -> Iterator[FakeModelServer]:
    server = FakeModelServer()
    yield server
    server.close()


def test_streams_the_reply_and_sends_sampling_parameters(model_server):
    gen = OpenAIGenerator(base_url=model_server.url, model="my-model", api_key="sk-test")
    model_server.reply = "Standard delivery takes 2 to 4 days."
    params = GenerationParams(max_new_tokens=50, temperature=0.3, top_k=5, seed=7)
    pieces = list(gen.stream([{"role": "user", "content": "hi"}], params))
    assert len(pieces) > 1
    assert "".join(pieces) == "Standard delivery takes 2 to 4 days."
    body = model_server.requests[-1]
    assert body["model"] == "my-model" and body["stream"] is True
    assert (body["max_tokens"], body["temperature"], body["top_k"], body["seed"]) == (50, 0.3, 5, 7)
    assert model_server.headers[-1]["Authorization"] == "Bearer sk-test"


def test_server_error_is_a_clear_model_unavailable(model_server):
    model_server.status = 500
    gen = OpenAIGenerator(base_url=model_server.url, model="m")
    with pytest.raises(ModelUnavailable, match="answered 500"):
        list(gen.stream([{"role": "user", "content": "hi"}], GenerationParams()))


def test_unreachable_server_is_a_clear_model_unavailable():
    gen = OpenAIGenerator(base_url="http://127.0.0.1:9/v1", model="m", timeout=2)
    with pytest.raises(ModelUnavailable, match="CHATBOT_OPENAI_BASE_URL"):
        list(gen.stream([{"role": "user", "content": "hi"}], GenerationParams()))


def test_turn_through_the_service_uses_the_http_backend(make_services, model_server):
    services = make_services(
        OpenAIGenerator(base_url=model_server.url, model="m"), fast_path_threshold=1.5
    )
    answer = services.knowledge.get("delivery-canada").answer
    model_server.reply = answer
    cid = services.chat.ensure_conversation(None)
    result = services.chat.send_message(cid, "How long does delivery to Canada take?")
    assert result.decision == "answer"
    assert result.sources[0]["id"] == "delivery-canada"
    assert model_server.requests, "the model server was asked"
    assert result.grounded is True and result.text == answer
