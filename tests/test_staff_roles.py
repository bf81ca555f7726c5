"""Every staff route and every console handler refuses the wrong role.

Both tests walk what is registered (the app's route table, the console's event handlers), so a
route or button added later without a role check fails here.
"""

from __future__ import annotations

import inspect
import re

import gradio as gr
import pytest
from api_helpers import module_services
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from staff_helpers import STAFF, add_staff_accounts
from starlette.requests import Request

from chatbot.staff.accounts import PERMISSIONS, ROLES
from chatbot.staff.services import build_staff
from ui.app import create_app
from ui.staff_api.auth import route_area
from ui.staff_console import build_console
from ui.staff_console.context import SESSION_COOKIE, ConsoleContext


@pytest.fixture(scope="module")
def services(tmp_path_factory, shared_embedding_model, kb_template):
    with module_services(tmp_path_factory.mktemp("staff-roles") / "data", kb_template) as services:
        yield services


@pytest.fixture(scope="module")
def staff(services):
    return build_staff(services)


@pytest.fixture(scope="module")
def accounts(staff):
    return add_staff_accounts(staff)


@pytest.fixture(scope="module")
def client(services, staff, accounts):
    with TestClient(create_app(services, staff)) as client:
        yield client


def walk(routes, prefix: str = ""):
    """(full path, route) of every APIRoute, into included routers (FastAPI keeps them nested)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, route
        elif hasattr(route, "original_router"):  # an included router
            yield from walk(route.original_router.routes, prefix + route.include_context.prefix)


def staff_routes(app) -> list[tuple[str, str, APIRoute]]:
    routes = [
        (method, path, route)
        for path, route in walk(app.router.routes)
        if path.startswith(STAFF)
        for method in sorted(route.methods)
    ]
    documented = {path for path in app.openapi()["paths"] if path.startswith(STAFF)}
    assert documented <= {path for _, path, _ in routes}, "the walk missed documented routes"
    assert len(routes) >= 10, "the staff API is missing"
    return routes


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def test_every_staff_route_declares_an_area(client):
    undeclared = [
        f"{method} {path}" for method, path, route in staff_routes(client.app)
        if route_area(route) is None
    ]
    assert not undeclared, f"staff routes without allow(area): {undeclared}"


def test_every_staff_route_refuses_missing_tokens_and_wrong_roles(client, accounts):
    problems = []
    for method, path, route in staff_routes(client.app):
        url, area = concrete(path), route_area(route)
        anonymous = client.request(method, url, json={})
        if anonymous.status_code != 401:
            problems.append(f"{method} {path} without a token: {anonymous.status_code}")
        for role in ROLES:
            status = client.request(method, url, json={}, headers=accounts.headers(role)).status_code
            allowed = role in PERMISSIONS[area]
            if not allowed and status != 403:
                problems.append(f"{method} {path} as {role}: {status}, expected 403")
            if allowed and status in (401, 403):
                problems.append(f"{method} {path} as {role}: {status}, but {area} allows it")
    assert not problems, "\n".join(problems)


def fake_request(cookie: str | None) -> gr.Request:
    headers = [(b"cookie", f"{SESSION_COOKIE}={cookie}".encode())] if cookie else []
    scope = {"type": "http", "method": "POST", "path": "/staff/", "headers": headers,
             "query_string": b""}
    return gr.Request(request=Request(scope))


def console_handlers(staff) -> list[tuple[str, object]]:
    console = build_console(ConsoleContext(staff), "Test shop")
    handlers = [(getattr(f.fn, "__name__", repr(f.fn)), f.fn) for f in console.fns.values()
                if f.fn is not None]
    assert len(handlers) >= 10, "the console has hardly any handlers"
    return handlers


def test_every_console_handler_is_guarded(staff):
    unguarded = [name for name, fn in console_handlers(staff) if not hasattr(fn, "staff_area")]
    assert not unguarded, f"console handlers without ConsoleContext.guarded: {unguarded}"


def test_console_handlers_refuse_signed_out_users_and_wrong_roles(staff, accounts):
    sessions = {role: staff.accounts.start_session(staff.accounts.user(email))[0]
                for role, email in {"admin": "admin@example.com", "editor": "editor@example.com",
                                    "agent": "agent@example.com"}.items()}
    problems = []
    for name, fn in console_handlers(staff):
        area = fn.staff_area
        params = [p for p in inspect.signature(fn).parameters.values() if p.name != "request"]
        args = [None] * len(params)
        cases = [(None, False)] + [
            (role, area == "any" or role in PERMISSIONS[area]) for role in ROLES
        ]
        for role, allowed in cases:
            request = fake_request(sessions[role] if role else None)
            try:
                result = fn(*args, request=request)
            except gr.Error as exc:
                refused = "may not" in str(exc) or "sign-in has expired" in str(exc)
                if not allowed and not refused:
                    problems.append(f"{name} as {role}: unexpected error {exc}")
                continue
            except Exception:  # an allowed call with dummy inputs may fail in its own way
                if not allowed:
                    problems.append(f"{name} as {role}: ran without a role check")
                continue
            if not allowed and result != gr.skip():
                problems.append(f"{name} as {role}: ran without a role check")
    assert not problems, "\n".join(problems)
