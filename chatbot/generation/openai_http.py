"""OpenAI-compatible HTTP backend: a vLLM, TGI or llama.cpp server serves the model.

Streams ``POST {base_url}/chat/completions`` with ``stream: true`` (server-sent events). Token
counting for the history budget is approximate (about four characters a token), since the
server's tokenizer is not at hand; the budget keeps a margin for that.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

from chatbot.errors import ModelUnavailable
from chatbot.generation.base import ChatMessages, GenerationParams


class OpenAIGenerator:
    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str = "",
        timeout: float = 60.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.name = model
        self._url = base_url.rstrip("/") + "/chat/completions"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = client or httpx.Client(
            headers=headers, timeout=httpx.Timeout(timeout, connect=5.0)
        )

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4) if text else 0

    def body(self, messages: ChatMessages, params: GenerationParams) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.name,
            "messages": messages,
            "stream": True,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": params.seed,
        }
        # Not in OpenAI's API, but vLLM and TGI accept them; others ignore unknown fields.
        if params.top_k:
            body["top_k"] = params.top_k
        if params.repetition_penalty != 1.0:
            body["repetition_penalty"] = params.repetition_penalty
        if params.num_beams > 1:
            body["use_beam_search"] = True
            body["best_of"] = params.num_beams
        return body

    def stream(self, messages: ChatMessages, params: GenerationParams) -> Iterator[str]:
        try:
            with self._client.stream("POST", self._url, json=self.body(messages, params)) as resp:
                if resp.status_code != 200:
                    resp.read()
                    raise ModelUnavailable(
                        f"The model server at {self._url} answered {resp.status_code}: "
                        f"{resp.text[:200]}"
                    )
                for line in resp.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    try:
                        chunk = json.loads(data)
                        delta = chunk["choices"][0].get("delta", {}).get("content") or ""
                    except (ValueError, KeyError, IndexError, TypeError):
                        raise ModelUnavailable(
                            f"The model server at {self._url} sent an event that is not an "
                            f"OpenAI chat-completion chunk: {data[:200]}"
                        ) from None
                    if delta:
                        yield delta
        except httpx.HTTPError as exc:
            raise ModelUnavailable(
                f"Could not reach the model server at {self._url}: {exc}. Check "
                "CHATBOT_OPENAI_BASE_URL."
            ) from exc
