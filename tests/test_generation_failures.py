"""When the model fails mid-turn or is unavailable, the customer still gets the knowledge base's
answer: never an error, never a stack trace. The generators here are real classes implementing
the protocol (one raises part-way through a stream, one before it; the OpenAI-compatible
backend points at a port where nothing listens)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

from api_helpers import parse_sse
from fastapi.testclient import TestClient

from chatbot.generation.base import ChatMessages, GenerationParams
from chatbot.generation.openai_http import OpenAIGenerator
from chatbot.service import Delta, Final, Reset
from ui.app import create_app

API = "/api/v1/conversations"
QUESTION = "How long does delivery take?"


class BrokenGenerator:
    """Streams ``before`` words, then raises ``error`` (a crashed or exhausted model)."""

    name = "broken"

    def __init__(self, before: int, error: Exception) -> None:
        self.before, self.error, self.calls = before, error, 0

    def stream(self, messages: ChatMessages, params: GenerationParams) -> Iterator[str]:
        self.calls += 1
        words = ("Standard delivery within the UK takes 2 to 4 business days after dispatch and "
                 "costs £4.95. We also").split()
        for word in words[: self.before]:
            yield word + " "
        raise self.error

    def count_tokens(self, text: str) -> int:
        return len(text.split())


class BrokenTokenizer(BrokenGenerator):
    def count_tokens(self, text: str) -> int:
        raise OSError("tokenizer files are missing")


def check_answer(services, result) -> None:
    assert result.decision == "answer"
    assert result.fallback is True
    assert result.sources[0]["id"] == "delivery-time"
    assert result.text and "Traceback" not in result.text
    stored = services.conversations.messages(result.conversation_id)
    assert [m.role for m in stored] == ["user", "assistant"]
    assert stored[1].content == result.text and stored[1].meta["fallback"] is True


def test_a_model_that_raises_mid_stream_is_replaced_by_the_kb(make_services, caplog):
    generator = BrokenGenerator(before=20, error=RuntimeError("CUDA error: out of memory"))
    services = make_services(generator, fast_path_threshold=1.5)
    cid = services.chat.start_conversation()
    with caplog.at_level(logging.ERROR, logger="chatbot.service"):
        events = list(services.chat.stream_message(cid, QUESTION))
    assert generator.calls == 1
    assert isinstance(events[0], Delta)  # the first sentence was streamed, then the model died
    assert isinstance(events[-2], Reset) and isinstance(events[-1], Final)
    result = events[-1].result
    check_answer(services, result)
    assert events[-2].text == result.text
    assert "out of memory" in caplog.text  # logged with its traceback, for the operator
    metrics = services.metrics.render().decode()
    assert "chatbot_generation_failures_total 1.0" in metrics


def test_a_model_that_raises_at_once_or_cannot_count_tokens(make_services):
    for generator in (BrokenGenerator(0, ValueError("bad weights")),
                      BrokenTokenizer(0, ValueError("never reached"))):
        services = make_services(generator, fast_path_threshold=1.5)
        cid = services.chat.start_conversation()
        result = services.chat.send_message(cid, QUESTION)
        check_answer(services, result)
        services.engine.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_model_server_still_answers_over_http(make_services):
    generator = OpenAIGenerator(base_url=f"http://127.0.0.1:{free_port()}/v1", model="remote")
    services = make_services(generator, fast_path_threshold=1.5)
    with TestClient(create_app(services)) as client:
        cid = client.post(API, json={}).json()["id"]
        plain = client.post(f"{API}/{cid}/messages", json={"text": QUESTION})
        assert plain.status_code == 200, plain.text
        assert plain.json()["decision"] == "answer" and plain.json()["text"]
        streamed = client.post(f"{API}/{cid}/messages", json={"text": QUESTION},
                               headers={"Accept": "text/event-stream"})
        events = parse_sse(streamed.text)
        assert streamed.status_code == 200
        assert [name for name, _ in events][-1] == "final"
        assert "error" not in [name for name, _ in events]
        chat = client.post("/v1/chat/completions", json={
            "messages": [{"role": "user", "content": QUESTION}]})
        assert chat.status_code == 200
        assert chat.json()["choices"][0]["message"]["content"] == plain.json()["text"]
        assert client.get("/readyz").status_code == 200


def test_a_busy_model_is_one_warning_line_without_a_traceback(make_services, caplog):
    from chatbot.generation.queue import ModelBusy

    generator = BrokenGenerator(before=0, error=ModelBusy("The model is busy for 10 s."))
    services = make_services(generator, fast_path_threshold=1.5)
    cid = services.chat.start_conversation()
    with caplog.at_level(logging.WARNING, logger="chatbot.service"):
        check_answer(services, services.chat.send_message(cid, QUESTION))
    [record] = [r for r in caplog.records if "generation failed" in r.getMessage()]
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert "The model is busy for 10 s." in record.getMessage()
