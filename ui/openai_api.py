"""``POST /v1/chat/completions``: the support bot behind OpenAI's chat-completions wire format.

A request is one customer turn: the last message (role ``user``) is the turn. The server holds
the conversation, chosen by the ``X-Conversation-Id`` header, else by ``user`` (mapped to a
fixed conversation id, so repeat calls with the same ``user`` continue one conversation), else
a new one. When the conversation is new, the earlier ``user``/``assistant`` messages are
replayed into it as history; when it exists, they are ignored (the server's history wins).
System messages are ignored: the bot has its own instructions. Every response names the
conversation in an ``X-Conversation-Id`` header.

Extensions beside OpenAI's fields: ``conversation_id``, ``decision``, ``sources`` and
``grounded`` on the completion (and on the last stream chunk). When the bot withdraws streamed
text (a sentence was not supported by the knowledge base), the chunk carrying the replacement
has ``"reset": {"text": ...}``; its ``content`` starts with a blank line so that clients that
only append still show the replacement as its own paragraph.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Header, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from chatbot.errors import ChatbotError, InvalidInput
from chatbot.service import Delta, Event, Final, Reset, TurnResult, clean_message
from ui.api import SSE_HEADERS, Source, started
from ui.errors import ERROR_RESPONSES, REASONS

if TYPE_CHECKING:
    from chatbot.service import ChatService

log = logging.getLogger(__name__)

MODEL_NAME = "support-chatbot"


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """OpenAI's request; fields not listed (tools, stop, ...) are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    model: str | None = Field(None, description="Echoed back; the server has one model.")
    messages: list[ChatMessageIn] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(None, max_length=512, description="Keeps one conversation per user.")
    n: int = 1
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None


class AssistantMessage(BaseModel):
    role: Literal["assistant"]
    content: str


class Choice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: Literal["stop"]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    conversation_id: str
    decision: Literal["answer", "clarify", "handoff"]
    sources: list[Source]
    grounded: bool | None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def user_conversation_id(user: str) -> str:
    """The conversation of an OpenAI ``user``: a fixed id derived from it (the stored mapping)."""
    return "user-" + hashlib.sha256(user.encode()).hexdigest()[:40]


def words(text: str) -> int:
    # Usage is approximate: whitespace-separated words, not model tokens (answers from the
    # knowledge base use no model, and the serving model's tokenizer is not this layer's).
    return len(text.split())


def sampling(body: ChatCompletionRequest) -> dict[str, Any]:
    return {
        "temperature": body.temperature,
        "top_p": body.top_p,
        "seed": body.seed,
        "max_new_tokens": body.max_completion_tokens or body.max_tokens,
    }


def extensions(result: TurnResult) -> dict[str, Any]:
    return {
        "conversation_id": result.conversation_id,
        "decision": result.decision,
        "sources": result.sources,
        "grounded": result.grounded,
    }


class Completion:
    """One request's turn, rendered as a ``chat.completion`` or as ``chat.completion.chunk``s."""

    def __init__(self, body: ChatCompletionRequest) -> None:
        self.id = "chatcmpl-" + uuid.uuid4().hex
        self.created = int(time.time())
        self.model = body.model or MODEL_NAME
        self.prompt_tokens = sum(words(m.text()) for m in body.messages)
        self.include_usage = bool(body.stream_options and body.stream_options.include_usage)

    def usage(self, text: str) -> dict[str, int]:
        completion = words(text)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }

    def whole(self, result: TurnResult) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": result.text},
                    "finish_reason": "stop",
                }
            ],
            "usage": self.usage(result.text),
            **extensions(result),
        }

    def chunk(self, delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> str:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
        data = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    def chunks(self, events: Iterator[Event]) -> Iterator[str]:
        yield self.chunk({"role": "assistant", "content": ""})
        streamed = False
        try:
            for event in events:
                if isinstance(event, Delta):
                    streamed = True
                    yield self.chunk({"content": event.text})
                elif isinstance(event, Reset):
                    streamed = True
                    yield self.chunk({"content": "\n\n" + event.text}, reset={"text": event.text})
                elif isinstance(event, Final):
                    if not streamed and event.result.text:
                        # A turn that streams nothing (a person has the conversation and the
                        # bot is silent) still says so: its whole text in one chunk.
                        yield self.chunk({"content": event.result.text})
                    yield self.chunk({}, "stop", **extensions(event.result))
                    if self.include_usage:
                        yield self.chunk(None, usage=self.usage(event.result.text))
        except ChatbotError as exc:
            error = {"ok": False, "error": exc.message, "status": exc.status}
            yield f"data: {json.dumps(error)}\n\n"
        except Exception:
            log.exception("a streamed completion failed")
            yield f"data: {json.dumps({'ok': False, 'error': REASONS[500], 'status': 500})}\n\n"
        yield "data: [DONE]\n\n"


def openai_api(chat: ChatService) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["openai"], responses=ERROR_RESPONSES)

    def conversation_for(body: ChatCompletionRequest, header: str | None) -> str:
        if body.n != 1:
            raise InvalidInput("Only one choice per request is supported ('n' must be 1).")
        last = body.messages[-1]
        if last.role != "user":
            raise InvalidInput(f"The last message must be the customer's (role 'user', not "
                               f"'{last.role}').")
        clean_message(last.text(), chat.settings.max_message_chars)  # before storing anything
        history = [
            {"role": m.role, "content": m.text()}
            for m in body.messages[:-1]
            if m.role in ("user", "assistant") and m.text().strip()
        ]
        wanted = header or (user_conversation_id(body.user) if body.user else None)
        return chat.resume_or_start(wanted, history)

    @router.post(
        "/chat/completions",
        response_model=ChatCompletion,
        responses={
            200: {
                "description": "A chat.completion; with `stream: true`, server-sent "
                "`chat.completion.chunk` events ending with `data: [DONE]`.",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
                "headers": {"X-Conversation-Id": {"schema": {"type": "string"}}},
            }
        },
    )
    def chat_completions(
        body: ChatCompletionRequest,
        response: Response,
        x_conversation_id: str | None = Header(None),
    ) -> Any:
        """OpenAI-compatible chat completions: the last user message is one customer turn."""
        cid = conversation_for(body, x_conversation_id)
        completion = Completion(body)
        text = body.messages[-1].text()
        if body.stream:
            events = started(chat.stream_message(cid, text, sampling(body)))
            return StreamingResponse(
                completion.chunks(events),
                media_type="text/event-stream",
                headers={**SSE_HEADERS, "X-Conversation-Id": cid},
            )
        result = chat.send_message(cid, text, sampling(body))
        response.headers["X-Conversation-Id"] = cid
        return completion.whole(result)

    @router.get("/models", response_model=ModelList)
    def models() -> dict[str, Any]:
        """The one model this server answers with (for clients that list models first)."""
        return {"data": [{"id": MODEL_NAME, "created": 0, "owned_by": "support-chatbot"}]}

    return router
