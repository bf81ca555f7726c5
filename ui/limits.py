"""Limits on the customer API (``/api/v1/conversations...`` and ``/v1/...``), before any route.

- **Body size** (``CHATBOT_MAX_BODY_BYTES``): a larger ``Content-Length``, or a chunked body
  that grows past it, is answered 413 before the route reads it.
- **Encoding**: a JSON body that is not valid UTF-8 is a 400 naming the offending byte (JSON
  is UTF-8; FastAPI would only say "error parsing the body").
- **Rate** (``CHATBOT_RATE_LIMIT`` per conversation, ``CHATBOT_RATE_LIMIT_PER_IP`` per
  address): a request counts against its client address and against the conversation it names
  (the path's id, the ``X-Conversation-Id`` header, or the OpenAI ``user`` field, which maps
  to a fixed conversation). A request that names no conversation (starting one, listing
  models) counts against ``CHATBOT_RATE_LIMIT`` for its address. Over the limit: 429 in the
  error shape with ``Retry-After`` (seconds). ``CHATBOT_RATE_LIMIT=0`` turns all of it off.
  ``CHATBOT_RATE_LIMIT_STORE`` says whether each process counts for itself or all the
  processes on one database count together (``chatbot.ratelimit``).
  The address is the connection's peer; behind a reverse proxy on the same host, uvicorn takes
  it from ``X-Forwarded-For`` (its ``--forwarded-allow-ips``, 127.0.0.1 by default).

Preflight ``OPTIONS`` requests are not counted. The origin guard sits outside this middleware,
so refused origins are not counted either, and 429 answers carry the CORS headers a widget on
another site needs to read them.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable

from anyio import to_thread
from sqlalchemy import Engine
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatbot.ratelimit import DatabaseRateLimiter, RateLimiter, Verdict
from ui.errors import error_response
from ui.openai_api import user_conversation_id
from ui.origins import GUARDED_PREFIXES

log = logging.getLogger(__name__)

_CONVERSATION_PATH = re.compile(r"^/api/v1/conversations/([^/]+)")
_BODY_METHODS = ("POST", "PUT", "PATCH")
WHO = {"conversation": "this conversation", "ip": "your address", "client": "your address"}


class BodyTooLarge(Exception):
    pass


def limiter_for(
    rate_limit: int, rate_limit_per_ip: int, engine: Engine | None = None
) -> RateLimiter | DatabaseRateLimiter:
    """``client``: requests naming no conversation, per address; 0 turns everything off.
    With an ``engine`` the counts are kept in its database, shared by every process on it."""
    if rate_limit <= 0:
        return RateLimiter({})
    limits = {"conversation": rate_limit, "client": rate_limit, "ip": rate_limit_per_ip}
    if engine is not None:
        return DatabaseRateLimiter(engine, limits)
    return RateLimiter(limits)


def conversation_of(path: str, headers: Headers, body: bytes) -> str | None:
    match = _CONVERSATION_PATH.match(path)
    if match:
        return match.group(1)
    header = headers.get("x-conversation-id")
    if header:
        return header
    if path == "/v1/chat/completions" and body:
        try:
            user = json.loads(body).get("user")
        except (ValueError, AttributeError):
            return None
        if isinstance(user, str) and user:
            return user_conversation_id(user)
    return None


def utf8_problem(body: bytes) -> str | None:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return (
            f"The request body is not valid UTF-8 (byte 0x{body[exc.start]:02x} at offset "
            f"{exc.start}); send JSON encoded as UTF-8."
        )
    return None


class RequestLimits:
    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: RateLimiter | DatabaseRateLimiter,
        max_body_bytes: int,
        prefixes: tuple[str, ...] = GUARDED_PREFIXES,
        on_limited: Callable[[Verdict], None] | None = None,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.max_body_bytes = max_body_bytes
        self.prefixes = prefixes
        self.on_limited = on_limited

    def too_large(self, size: int | None = None) -> str:
        got = f"is {size:,} bytes" if size is not None else "is larger than that"
        return (
            f"The request body {got}; the limit is {self.max_body_bytes:,} bytes. "
            "Send a shorter message."
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or not scope["path"].startswith(self.prefixes)
            or scope["method"] == "OPTIONS"
        ):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        body = b""
        if scope["method"] in _BODY_METHODS:
            declared = headers.get("content-length")
            if declared is not None:
                if not declared.isdigit():
                    await error_response(400, "The Content-Length header is not a number.")(
                        scope, receive, send
                    )
                    return
                if int(declared) > self.max_body_bytes:
                    await error_response(413, self.too_large(int(declared)))(scope, receive, send)
                    return
            try:
                body = await self._read_body(receive)
            except BodyTooLarge:
                await error_response(413, self.too_large())(scope, receive, send)
                return
            if "json" in headers.get("content-type", "") and (problem := utf8_problem(body)):
                await error_response(400, problem)(scope, receive, send)
                return
        if self.limiter.enabled:
            keys = self._keys(scope, headers, body)
            if self.limiter.blocking:  # a database round trip: off the event loop
                verdict = await to_thread.run_sync(self.limiter.check, keys)
            else:
                verdict = self.limiter.check(keys)
            if not verdict.allowed:
                await self._refuse(verdict, scope, receive, send)
                return
        await self.app(scope, self._replay(body, receive), send)

    def _keys(self, scope: Scope, headers: Headers, body: bytes) -> list[tuple[str, str]]:
        client = scope.get("client")
        address = client[0] if client else "unknown"
        conversation = conversation_of(scope["path"], headers, body)
        if conversation is None:
            return [("ip", address), ("client", address)]
        return [("ip", address), ("conversation", conversation)]

    async def _refuse(self, verdict: Verdict, scope: Scope, receive: Receive, send: Send) -> None:
        kind = (verdict.key or "client").partition(":")[0]
        wait = verdict.retry_after_seconds
        log.warning("rate limited %s %s (%s)", scope["method"], scope["path"], kind)
        if self.on_limited is not None:
            self.on_limited(verdict)
        message = (
            f"Too many requests from {WHO.get(kind, 'you')}: the limit is {verdict.limit} a "
            f"minute. Please wait {wait} second{'s' if wait != 1 else ''} and try again."
        )
        response = error_response(429, message, headers={"Retry-After": str(wait)})
        await response(scope, receive, send)

    async def _read_body(self, receive: Receive) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    @staticmethod
    def _replay(body: bytes, receive: Receive) -> Receive:
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay
