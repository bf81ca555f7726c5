"""The HTTP edge of the error vocabulary: one JSON shape, ``{"ok": false, "error", "status"}``.

``chatbot.errors`` subclasses carry their status (400, 404, 409, 429, 503); FastAPI's request
validation errors become 422 with a message naming the fields (malformed JSON: 400); HTTP
errors keep their status; anything unexpected is logged with its traceback and answered with a
generic 500. Unknown paths and methods under ``/api/`` and ``/v1/`` get the same shape (the
Gradio app mounted at ``/`` would otherwise answer them).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from chatbot.errors import ChatbotError

log = logging.getLogger(__name__)

API_PREFIXES = ("/api/", "/v1/")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
REASONS = {400: "Bad request.", 401: "Not authenticated.", 403: "Forbidden.", 404: "Not found.",
           405: "Method not allowed.", 413: "The request body is too large.",
           429: "Too many requests; please wait a moment and try again.",
           500: "Something went wrong on our side; please try again."}


class ErrorBody(BaseModel):
    """Every error of the HTTP API."""

    ok: bool = False
    error: str
    status: int


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in (
        (400, "Invalid input (the message says what is wrong)"),
        (403, "Origin not allowed"),
        (404, "Unknown conversation or message"),
        (409, "Conflict (e.g. the conversation holds its limit of messages)"),
        (413, "Request body too large"),
        (422, "Request body does not match the schema"),
        (429, "Too many requests (with Retry-After, in seconds)"),
        (503, "Model unavailable"),
    )
}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorBody(error=message, status=status).model_dump()
    return JSONResponse(body, status_code=status, headers=headers)


def describe_validation(errors: list[Any]) -> tuple[int, str]:
    """A message that names each offending field, e.g. ``'rating': Input should be 'up'...``."""
    parts = []
    for err in errors[:5]:
        loc = [str(x) for x in err.get("loc", ()) if x not in ("body", "query", "path", "header")]
        field = ".".join(loc)
        if err.get("type") == "json_invalid":
            detail = (err.get("ctx") or {}).get("error", "")
            return 400, f"The request body is not valid JSON{': ' + detail if detail else ''}."
        if err.get("type") == "missing":
            parts.append(f"'{field}' is required" if field else "a JSON request body is required")
        elif field:
            parts.append(f"'{field}': {err.get('msg', 'is invalid')}")
        else:
            parts.append(f"the request body: {err.get('msg', 'is invalid')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return 422, "Invalid request: " + "; ".join(parts) + more + "."


async def _chatbot_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ChatbotError)
    return error_response(exc.status, exc.message)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    status, message = describe_validation(list(exc.errors()))
    return error_response(status, message)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail else None
    message = detail or REASONS.get(exc.status_code, "Request failed.")
    return error_response(exc.status_code, message, headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, REASONS[500])


class ApiFallback:
    """Unknown paths and methods under the API prefixes: 404 / 405 in the error shape.

    It looks at the app's routes at request time, so routers included in any order (before
    the catch-all Gradio mount at ``/``) are found. A known path asked with another method
    gets 405 with ``Allow`` (Gradio would otherwise answer it too).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIXES):
            await self.app(scope, receive, send)
            return
        routes = [
            route
            for route in scope["app"].router.routes
            if not (isinstance(route, Mount) and route.path in ("", "/"))  # Gradio, at /
        ]
        if _matches(routes, scope):
            await self.app(scope, receive, send)
            return
        allowed = [m for m in METHODS if _matches(routes, {**scope, "method": m})]
        if allowed:
            response = error_response(
                405,
                f"{scope['method']} is not allowed on {scope['path']}; use {', '.join(allowed)}.",
                headers={"Allow": ", ".join(allowed)},
            )
        else:
            response = error_response(404, f"There is no API route {scope['path']}.")
        await response(scope, receive, send)


def _matches(routes: list[Any], scope: Scope) -> bool:
    return any(route.matches(scope)[0] == Match.FULL for route in routes)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ChatbotError, _chatbot_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
    app.add_middleware(ApiFallback)
