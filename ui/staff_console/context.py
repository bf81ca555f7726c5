"""What every console tab shares: the staff services and the guard that resolves the signed-in
user from the session cookie and checks the tab's area before a handler runs.

Every console event handler is wrapped with ``ConsoleContext.guarded(area)``:
``tests/test_staff_roles.py`` walks the console's registered handlers and fails on one that is
not, so a new button cannot skip the role check.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gradio as gr

from chatbot.errors import ChatbotError, Unauthorized
from chatbot.staff.accounts import StaffUser, require

if TYPE_CHECKING:
    from chatbot.staff.services import Staff

SESSION_COOKIE = "chatbot_staff"
SIGNED_OUT = "Your sign-in has expired; reload the page to sign in again."


@dataclass
class ConsoleContext:
    staff: Staff
    # (guarded fn, inputs, outputs) run when the console page loads; see ``on_load``.
    loaders: list[tuple[Callable[..., Any], Any, Any]] = field(default_factory=list)

    def on_load(self, fn: Callable[..., Any], inputs: Any, outputs: Any) -> None:
        """Run a guarded handler when the console opens (to fill a tab's tables).

        For a user whose role may not use the handler's area it does nothing (the tab is
        hidden for them), instead of showing an error on every page load.
        """
        area = getattr(fn, "staff_area", None)
        if area is None:
            raise ValueError("on_load takes a handler wrapped with ConsoleContext.guarded")

        def loader(*args: Any, **kwargs: Any) -> Any:
            args, request = _split_request(args, kwargs)
            cookies = getattr(request, "cookies", None) or {}
            session = self.staff.accounts.session(cookies.get(SESSION_COOKIE))
            if session is None or (area != "any" and not session.user.can(area)):
                return gr.skip()
            return fn(*args, request=request)

        loader.__signature__ = fn.__signature__  # type: ignore[attr-defined]
        loader.__annotations__ = fn.__annotations__
        loader.staff_area = area  # type: ignore[attr-defined]
        self.loaders.append((loader, inputs, outputs))

    def session_user(self, request: Any) -> StaffUser:
        """The signed-in user of a Gradio or FastAPI request (Unauthorized when signed out)."""
        cookies = getattr(request, "cookies", None) or {}
        session = self.staff.accounts.session(cookies.get(SESSION_COOKIE))
        if session is None:
            raise Unauthorized(SIGNED_OUT)
        return session.user

    def guarded(self, area: str | None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Wrap ``fn(actor, *inputs)`` as a Gradio handler ``(*inputs, request)``.

        ``area`` None: any signed-in staff member. Errors become ``gr.Error`` with their message.
        """

        def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
            # Gradio fills special parameters (gr.Request, gr.SelectData) by their annotations,
            # positionally: the handler shows fn's parameters without ``actor``, with
            # annotations resolved in fn's module, and ``request`` last.
            try:
                hints = typing.get_type_hints(fn)
            except Exception:  # an annotation that cannot be resolved: keep the raw ones
                hints = dict(fn.__annotations__)
            params = [
                p.replace(annotation=hints.get(p.name, p.annotation))
                for p in list(inspect.signature(fn).parameters.values())[1:]  # drop ``actor``
            ]
            request_param = inspect.Parameter(
                "request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=gr.Request,
                default=None,
            )

            @functools.wraps(fn)
            def handler(*args: Any, **kwargs: Any) -> Any:
                args, request = _split_request(args, kwargs)
                try:
                    actor = self.session_user(request)
                    if area is not None:
                        require(actor, area)
                    return fn(actor, *args)
                except ChatbotError as exc:
                    raise gr.Error(exc.message) from None

            handler.__signature__ = inspect.Signature([*params, request_param])  # type: ignore[attr-defined]
            handler.__annotations__ = {
                **{k: v for k, v in hints.items() if k not in ("actor", "return")},
                "request": gr.Request,
            }
            del handler.__wrapped__  # type: ignore[attr-defined]  # gradio must see the request
            handler.staff_area = area or "any"  # type: ignore[attr-defined]
            return handler

        return wrap


def _split_request(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], Any]:
    """(the inputs, the gr.Request): Gradio passes the request last, by position."""
    if "request" in kwargs:
        return args, kwargs["request"]
    if not args:
        return args, None
    return args[:-1], args[-1]
