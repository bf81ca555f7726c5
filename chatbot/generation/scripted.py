"""A real generator for tests and demos: replays queued replies, word by word.

With an empty queue it echoes the first sentence of the first passage in the system prompt,
which is always grounded, so dialogue tests can run without a language model.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Iterator

from chatbot.generation.base import ChatMessages, GenerationParams


class ScriptedGenerator:
    name = "scripted"

    def __init__(self, replies: list[str] | None = None) -> None:
        self._queue: deque[str] = deque(replies or [])
        self._lock = threading.Lock()
        self.prompts: list[ChatMessages] = []

    def enqueue(self, *replies: str) -> None:
        with self._lock:
            self._queue.extend(replies)

    def stream(self, messages: ChatMessages, params: GenerationParams) -> Iterator[str]:
        with self._lock:
            self.prompts.append(messages)
            reply = self._queue.popleft() if self._queue else _echo(messages)
        words = reply.split(" ")
        produced = 0
        for i, word in enumerate(words):
            produced += self.count_tokens(word)
            yield word if i == 0 else " " + word
            if produced >= params.max_new_tokens:
                return

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4) if text else 0


def _echo(messages: ChatMessages) -> str:
    system = messages[0]["content"] if messages else ""
    match = re.search(r"\n\[[^\]]+\] [^\n]*\n(.+)", system)
    if not match:
        return "I'm not sure about that."
    return re.split(r"(?<=[.!?])\s+", match.group(1).strip(), maxsplit=1)[0]
