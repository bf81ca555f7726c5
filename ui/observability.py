"""What every HTTP request gets on its way through: a request id, a log line, metrics, and
security headers on pages.

- **Request id**: the client's ``X-Request-Id`` (1-128 letters, digits, ``._:-``) or a fresh
  one; set in ``chatbot.logs.request_id`` while the request runs (so every log line of it
  carries it) and echoed in the response's ``X-Request-Id``.
- **Log line**: one per request at info (``chatbot.http``: method, path, status, duration_ms,
  client; probes at debug), one JSON object a line with ``CHATBOT_LOG_FORMAT=json``.
- **Metrics**: ``chatbot_http_requests_total`` and ``chatbot_http_request_duration_seconds``
  by route *template* (``/api/v1/conversations/{conversation_id}``, never the id itself), so
  the number of series stays small.
- **Security headers** on every response: ``X-Content-Type-Options: nosniff`` and
  ``Referrer-Policy``; on HTML pages also a ``Content-Security-Policy`` that loads nothing from
  other sites and whose ``frame-ancestors`` are the page's own origin plus
  ``CHATBOT_ALLOWED_ORIGINS`` (empty list: any site, as for the widget); the staff console may
  be framed by no one. Gradio's page needs inline scripts and styles, which the policy allows.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterable

from starlette.datastructures import Headers, MutableHeaders
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatbot.logs import request_id
from chatbot.monitoring import Metrics

log = logging.getLogger("chatbot.http")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
PROBES = ("/healthz", "/readyz", "/metrics")
STAFF_PAGES = ("/staff",)
STAFF_API = "/api/v1/staff"


def page_policy(origins: Iterable[str], *, framable: bool) -> str:
    allowed = [o for o in origins if o]
    if not framable:
        ancestors = "'none'"
    else:
        ancestors = "'self' " + " ".join(allowed) if allowed else "*"
    return "; ".join([
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "media-src 'self' data: blob:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        f"frame-ancestors {ancestors.strip()}",
    ])


def route_label(scope: Scope) -> str:
    """The matched route's template, or a coarse bucket (never a raw path: ids stay out)."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    full: str = scope["path"]
    if isinstance(template, str) and template and not isinstance(route, Mount):
        label = scope.get("root_path", "") + template  # inside a mount: its path first
        if full.startswith(STAFF_API) and not label.startswith(STAFF_API):
            label = STAFF_API + label  # FastAPI keeps included routers' routes unprefixed
        return label
    for prefix in ("/api/v1/staff", "/api/v1/conversations", "/v1", "/staff", "/gradio_api"):
        if full.startswith(prefix):
            return prefix + ("" if full == prefix else "/…")
    return "/" if full == "/" else "other"


class Observability:
    def __init__(self, app: ASGIApp, *, metrics: Metrics, origins: Iterable[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.chat_policy = page_policy(origins, framable=True)
        self.staff_policy = page_policy((), framable=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get("x-request-id", "")
        rid = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500
        path = scope["path"]
        policy = self.staff_policy if path.startswith(STAFF_PAGES) else self.chat_policy

        async def send_wrapped(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["X-Request-Id"] = rid
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
                if headers.get("content-type", "").startswith("text/html"):
                    headers.setdefault("Content-Security-Policy", policy)
                self.metrics.http(scope["method"], route_label(scope), status,
                                  time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, send_wrapped)
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            client = scope.get("client")
            log.log(
                logging.DEBUG if path in PROBES else logging.INFO,
                "%s %s %s %.1fms", scope["method"], path, status, elapsed,
                extra={"method": scope["method"], "path": path, "status": status,
                       "duration_ms": round(elapsed, 1), "client": client[0] if client else None},
            )
            request_id.reset(token)
