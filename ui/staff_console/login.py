"""Sign-in and sign-out for the staff console: plain HTML forms outside Gradio.

- The session cookie is HttpOnly, SameSite=Strict, scoped to ``/staff``, expires with the
  session, and is Secure over HTTPS (``CHATBOT_SECURE_COOKIES``).
- Forms carry a CSRF token: the sign-in form a double-submit cookie, the sign-out form the
  session's own token. A POST whose ``Origin`` is another site is refused as well.
- Failed sign-ins are throttled per client address.
"""

from __future__ import annotations

import html
import secrets
import threading
import time
from collections import defaultdict, deque
from typing import TYPE_CHECKING

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from chatbot.errors import ChatbotError
from ui.staff_console.context import SESSION_COOKIE

if TYPE_CHECKING:
    from chatbot.settings import Settings
    from chatbot.staff.services import Staff

LOGIN_CSRF_COOKIE = "chatbot_login_csrf"
CONSOLE_PATH = "/staff"
MAX_FAILURES = 10
FAILURE_WINDOW_S = 15 * 60

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Staff sign-in · {shop}</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #f1f5f9; margin: 0; display: grid;
  place-items: center; min-height: 100vh; color: #0f172a; }}
form {{ background: #fff; padding: 2rem; border-radius: 12px; width: min(360px, 90vw);
  box-shadow: 0 4px 24px rgba(15, 23, 42, .08); }}
h1 {{ font-size: 1.25rem; margin: 0 0 1.25rem; }}
label {{ display: block; font-size: .875rem; margin: .75rem 0 .25rem; }}
input {{ width: 100%; box-sizing: border-box; padding: .6rem; border: 1px solid #cbd5e1;
  border-radius: 8px; font-size: 1rem; }}
button {{ margin-top: 1.25rem; width: 100%; padding: .7rem; border: 0; border-radius: 8px;
  background: #2563eb; color: #fff; font-size: 1rem; cursor: pointer; }}
.error {{ background: #fef2f2; color: #991b1b; padding: .6rem; border-radius: 8px;
  font-size: .875rem; }}
.hint {{ font-size: .8rem; color: #64748b; margin-top: 1rem; }}
</style></head><body>
<form method="post" action="{action}">
<h1>{shop} · staff console</h1>
{error}
<input type="hidden" name="csrf" value="{csrf}">
<label for="email">Email</label>
<input id="email" name="email" type="email" autocomplete="username" required value="{email}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
<p class="hint">No account yet? An administrator creates one with
<code>chatbot user add EMAIL --role agent</code>.</p>
</form></body></html>
"""


class Throttle:
    """At most ``MAX_FAILURES`` failed sign-ins per client address in ``FAILURE_WINDOW_S``."""

    def __init__(self) -> None:
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _recent(self, client: str) -> deque[float]:
        failures = self._failures[client]
        while failures and failures[0] < time.monotonic() - FAILURE_WINDOW_S:
            failures.popleft()
        return failures

    def blocked(self, client: str) -> bool:
        with self._lock:
            return len(self._recent(client)) >= MAX_FAILURES

    def fail(self, client: str) -> None:
        with self._lock:
            self._recent(client).append(time.monotonic())

    def clear(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


def secure(request: Request, settings: Settings) -> bool:
    if settings.secure_cookies != "auto":
        return settings.secure_cookies == "always"
    proto = request.headers.get("x-forwarded-proto", request.url.scheme)
    return proto.split(",")[0].strip() == "https"


def same_origin(request: Request) -> bool:
    """A POST from a page of this server (or from a client that sends no Origin)."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    host = request.headers.get("x-forwarded-host", request.headers.get("host", ""))
    return origin.split("://", 1)[-1].rstrip("/") == host


def login_routes(staff: Staff, settings: Settings) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    throttle = Throttle()

    def form(request: Request, *, error: str = "", email: str = "", status: int = 200) -> Response:
        token = secrets.token_urlsafe(24)
        body = PAGE.format(
            shop=html.escape(settings.shop_name),
            action=f"{CONSOLE_PATH}/login",
            csrf=token,
            email=html.escape(email),
            error=f'<p class="error" role="alert">{html.escape(error)}</p>' if error else "",
        )
        response = HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})
        response.set_cookie(
            LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict",
            secure=secure(request, settings), path=f"{CONSOLE_PATH}/login", max_age=3600,
        )
        return response

    @router.get(f"{CONSOLE_PATH}/login")
    def login_page(request: Request) -> Response:
        if staff.accounts.session(request.cookies.get(SESSION_COOKIE)) is not None:
            return RedirectResponse(f"{CONSOLE_PATH}/", status_code=303)
        return form(request)

    @router.post(f"{CONSOLE_PATH}/login")
    def login(
        request: Request,
        email: str = Form(""),
        password: str = Form(""),
        csrf: str = Form(""),
    ) -> Response:
        client = request.client.host if request.client else "unknown"
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not same_origin(request) or not csrf or not secrets.compare_digest(csrf, cookie):
            return form(request, error="The form expired; please sign in again.", email=email,
                        status=403)
        if throttle.blocked(client):
            return form(request, error="Too many failed sign-ins; wait 15 minutes and try again.",
                        email=email, status=429)
        try:
            user = staff.accounts.authenticate(email, password)
        except ChatbotError as exc:
            throttle.fail(client)
            return form(request, error=exc.message, email=email, status=exc.status)
        throttle.clear(client)
        secret, session = staff.accounts.start_session(user)
        staff.audit.record(user, "staff.sign_in")
        response = RedirectResponse(f"{CONSOLE_PATH}/", status_code=303)
        response.set_cookie(
            SESSION_COOKIE, secret, httponly=True, samesite="strict",
            secure=secure(request, settings), path=CONSOLE_PATH,
            max_age=int(settings.staff_session_hours * 3600),
        )
        response.delete_cookie(LOGIN_CSRF_COOKIE, path=f"{CONSOLE_PATH}/login")
        return response

    @router.post(f"{CONSOLE_PATH}/logout")
    def logout(request: Request, csrf: str = Form("")) -> Response:
        secret = request.cookies.get(SESSION_COOKIE)
        session = staff.accounts.session(secret)
        if session is not None:
            if not same_origin(request) or not secrets.compare_digest(csrf, session.csrf):
                return HTMLResponse("The sign-out form expired; reload the console.", status_code=403)
            staff.accounts.end_session(secret)
        response = RedirectResponse(f"{CONSOLE_PATH}/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=CONSOLE_PATH)
        return response

    return router
