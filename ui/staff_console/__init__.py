"""The staff console at ``/staff``: a sign-in page, then one Gradio app with a tab per area.

Tabs a role may not use are hidden, and every handler checks the role again on the server
(``ConsoleContext.guarded``), so hiding is only a convenience.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import gradio as gr
from fastapi import FastAPI
from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from chatbot.staff.accounts import StaffUser
from ui.staff_console import (
    analytics_tab,
    conversations_tab,
    inbox_tab,
    kb_tab,
    unanswered_tab,
    users_tab,
)
from ui.staff_console.context import SESSION_COOKIE, ConsoleContext
from ui.staff_console.login import CONSOLE_PATH, login_routes

if TYPE_CHECKING:
    from chatbot.settings import Settings
    from chatbot.staff.services import Staff

# (label, area, module): the order of the tabs.
TABS = (
    ("Knowledge base", "kb", kb_tab),
    ("Unanswered", "kb", unanswered_tab),
    ("Inbox", "inbox", inbox_tab),
    ("Conversations", "conversations", conversations_tab),
    ("Analytics", "analytics", analytics_tab),
    ("Users", "users", users_tab),
)

CSS = """
.staff-header { display: flex; justify-content: space-between; align-items: center; gap: 1rem; }
.staff-header form { margin: 0; }
.staff-header button { background: none; border: 1px solid var(--border-color-primary);
  border-radius: 6px; padding: .3rem .8rem; cursor: pointer; color: var(--body-text-color); }
"""


def header_html(user: StaffUser, csrf: str, shop: str) -> str:
    return (
        '<div class="staff-header">'
        f"<div><strong>{html.escape(shop)}</strong> · staff console</div>"
        f'<div>Signed in as <strong>{html.escape(user.email)}</strong> ({user.role}) '
        f'<form method="post" action="{CONSOLE_PATH}/logout" style="display:inline">'
        f'<input type="hidden" name="csrf" value="{html.escape(csrf)}">'
        '<button type="submit">Sign out</button></form></div></div>'
    )


def build_console(ctx: ConsoleContext, shop: str) -> gr.Blocks:
    with gr.Blocks(title=f"{shop} · staff console") as console:
        header = gr.HTML()
        tabs = []
        for label, area, module in TABS:
            with gr.Tab(label, visible=False) as tab:
                module.build(ctx)
            tabs.append((tab, area))

        def on_load(request: gr.Request) -> list[Any]:
            session = ctx.staff.accounts.session(request.cookies.get(SESSION_COOKIE))
            if session is None:
                raise gr.Error("Your sign-in has expired; reload the page to sign in again.")
            return [header_html(session.user, session.csrf, shop)] + [
                gr.Tab(visible=session.user.can(area)) for _, area in tabs
            ]

        on_load.staff_area = "any"  # type: ignore[attr-defined]  # it resolves the session itself
        console.load(on_load, None, [header] + [t for t, _ in tabs], api_visibility="private")
        for fn, inputs, outputs in ctx.loaders:
            console.load(fn, inputs, outputs, api_visibility="private")
    return console


class SignInRedirect:
    """``GET /staff`` without a live session goes to the sign-in page instead of a bare 401."""

    def __init__(self, app: ASGIApp, staff: Staff) -> None:
        self.app = app
        self.staff = staff

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and scope["path"] in (CONSOLE_PATH, CONSOLE_PATH + "/")
        ):
            cookies = _cookies(scope)
            if self.staff.accounts.session(cookies.get(SESSION_COOKIE)) is None:
                await RedirectResponse(f"{CONSOLE_PATH}/login", status_code=303)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _cookies(scope: Scope) -> dict[str, str]:
    from starlette.requests import Request

    return dict(Request(scope).cookies)


def mount_staff_console(app: FastAPI, staff: Staff, settings: Settings) -> FastAPI:
    """Sign-in routes, the redirect, and the Gradio console at ``/staff`` (before ``/``)."""
    ctx = ConsoleContext(staff)
    app.include_router(login_routes(staff, settings))
    app.add_middleware(SignInRedirect, staff=staff)

    def signed_in(request: Any) -> str | None:
        session = staff.accounts.session(request.cookies.get(SESSION_COOKIE))
        return session.user.email if session else None

    return gr.mount_gradio_app(
        app, build_console(ctx, settings.shop_name), path=CONSOLE_PATH, auth_dependency=signed_in,
        footer_links=[], run_history=False, css=CSS,
        theme=gr.themes.Soft(primary_hue="blue", neutral_hue="slate"),
    )
