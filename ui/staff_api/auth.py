"""Bearer-token authentication and role checks for ``/api/v1/staff``.

Every staff route declares its area with ``allow(area)``; the check runs as a dependency, before
the request body is read, so a caller without the role learns nothing from validation errors.
The service functions check the role again (``chatbot.staff.accounts.require``).
``tests/test_staff_roles.py`` walks the route table: a route without ``allow`` fails it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from chatbot.errors import Unauthorized
from chatbot.staff.accounts import PERMISSIONS, StaffUser, require

if TYPE_CHECKING:
    from chatbot.staff.services import Staff

STAFF_PREFIX = "/api/v1/staff"
# Declares the scheme in the OpenAPI document; the header itself is read by ``bearer_token``,
# whose 401 says how to get a token.
BEARER = Security(HTTPBearer(auto_error=False,
                             description="A token from 'chatbot token create EMAIL'."))


def bearer_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "Send 'Authorization: Bearer <token>'; create a token with 'chatbot token create EMAIL'."
        )
    return token.strip()


def authenticate(staff: Staff) -> Any:
    """The router-wide dependency: the token's staff user, kept on ``request.state``."""

    def dependency(
        request: Request, _: HTTPAuthorizationCredentials | None = BEARER
    ) -> StaffUser:
        user = staff.accounts.user_for_token(bearer_token(request))
        request.state.staff_user = user
        return user

    return Depends(dependency)


class Allow:
    """A route's area; callable as a FastAPI dependency returning the acting user."""

    def __init__(self, area: str) -> None:
        if area not in PERMISSIONS:
            raise ValueError(f"unknown staff area {area!r}")
        self.area = area

    def __call__(self, request: Request) -> StaffUser:
        return require(getattr(request.state, "staff_user", None), self.area)


def allow(area: str) -> Any:
    """``dependencies=[allow("kb")]`` on a route, or ``user: StaffUser = allow("kb")``."""
    return Depends(Allow(area))


def route_area(route: Any) -> str | None:
    """The area a staff route declared with ``allow`` (None: it declared none)."""
    for dep in getattr(route, "dependant", None).dependencies if hasattr(route, "dependant") else []:
        if isinstance(dep.call, Allow):
            return dep.call.area
    return None
