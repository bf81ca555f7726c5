"""The staff API under ``/api/v1/staff`` (CONTRACT.md, "Staff API"): bearer tokens, one router
per area, each a thin edge over the ``chatbot.staff`` service functions the console also calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter

from ui.errors import ERROR_RESPONSES
from ui.staff_api.auth import STAFF_PREFIX, authenticate

if TYPE_CHECKING:
    from chatbot.staff.services import Staff

STAFF_ERRORS = {
    **ERROR_RESPONSES,
    401: {"model": ERROR_RESPONSES[400]["model"], "description": "No or bad bearer token"},
    403: {"model": ERROR_RESPONSES[400]["model"], "description": "The role may not do this"},
}


def staff_api(staff: Staff) -> APIRouter:
    from ui.staff_api import entries, handoffs, privacy, regression, reports

    router = APIRouter(
        prefix=STAFF_PREFIX,
        tags=["staff"],
        responses=STAFF_ERRORS,
        dependencies=[authenticate(staff)],
    )
    for module in (entries, handoffs, regression, reports, privacy):
        router.include_router(module.router(staff))
    return router
