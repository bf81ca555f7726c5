"""Which web pages may call the customer API from a browser (``CHATBOT_ALLOWED_ORIGINS``).

Browsers send an ``Origin`` header with cross-site requests (and with same-site POSTs). On the
guarded paths:

- no ``Origin`` (curl, a server calling us) → passes;
- an ``Origin`` equal to the server's own origin → passes;
- the list is empty → any origin passes (the setting's default: the widget may be embedded
  anywhere) and responses carry ``Access-Control-Allow-Origin: *``;
- an ``Origin`` in the list → passes, with CORS headers naming it; a preflight ``OPTIONS`` is
  answered here with 204;
- any other ``Origin`` → 403 in the API's error shape, preflight included.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ui.errors import error_response

# The customer API and the OpenAI-compatible API. The widget's routes may add theirs.
GUARDED_PREFIXES: tuple[str, ...] = ("/api/v1/conversations", "/v1/")
ALLOW_METHODS = "GET, POST, OPTIONS"
ALLOW_HEADERS = "Accept, Authorization, Content-Type, X-Conversation-Id"
EXPOSE_HEADERS = "X-Conversation-Id, Retry-After"


def normalize(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def own_origin(scope: Scope) -> str | None:
    host = Headers(scope=scope).get("host")
    return normalize(f"{scope.get('scheme', 'http')}://{host}") if host else None


class OriginGuard:
    def __init__(
        self,
        app: ASGIApp,
        allowed: Iterable[str],
        prefixes: tuple[str, ...] = GUARDED_PREFIXES,
    ) -> None:
        self.app = app
        self.allowed = {normalize(o) for o in allowed if o.strip()}
        self.prefixes = prefixes

    def permits(self, origin: str, scope: Scope) -> bool:
        origin = normalize(origin)
        return not self.allowed or origin in self.allowed or origin == own_origin(scope)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefixes):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        if not self.permits(origin, scope):
            response = error_response(
                403,
                f"Requests from {origin} are not allowed; add it to CHATBOT_ALLOWED_ORIGINS "
                "to embed the chat there.",
            )
            await response(scope, receive, send)
            return
        cors = {
            "Access-Control-Allow-Origin": origin if self.allowed else "*",
            "Access-Control-Expose-Headers": EXPOSE_HEADERS,
            "Vary": "Origin",
        }
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            cors.update({
                "Access-Control-Allow-Methods": ALLOW_METHODS,
                "Access-Control-Allow-Headers": headers.get(
                    "access-control-request-headers", ALLOW_HEADERS
                ),
                "Access-Control-Max-Age": "600",
            })
            await Response(status_code=204, headers=cors)(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                for name, value in cors.items():
                    if name == "Vary" and "vary" in out:
                        out.add_vary_header("Origin")
                    else:
                        out[name] = value
            await send(message)

        await self.app(scope, receive, send_with_cors)

