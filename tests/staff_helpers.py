"""Helpers for staff tests: one account and API token per role, and a signed-in console client."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

PASSWORD = "correct horse battery staple"
ROLE_EMAILS = {
    "admin": "admin@example.com",
    "editor": "editor@example.com",
    "agent": "agent@example.com",
}
STAFF = "/api/v1/staff"


@dataclass
class StaffAccounts:
    """Tokens by role; ``headers(role)`` for the staff API."""

    tokens: dict[str, str]

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


def add_staff_accounts(staff: Any) -> StaffAccounts:
    """An admin, an editor and an agent (password ``PASSWORD``), each with an API token."""
    tokens = {}
    for role, email in ROLE_EMAILS.items():
        staff.accounts.add_user(email, role, PASSWORD)
        tokens[role] = staff.accounts.create_token(email)
    return StaffAccounts(tokens)


def sign_in(client: Any, email: str, password: str = PASSWORD) -> Any:
    """Sign a TestClient (or httpx client) in through the real form; returns the response."""
    page = client.get("/staff/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return client.post(
        "/staff/login",
        data={"email": email, "password": password, "csrf": csrf},
        follow_redirects=False,
    )


def staff_user(staff: Any, role: str) -> Any:
    """The ``StaffUser`` of the role's test account (to call service functions directly)."""
    return staff.accounts.user(ROLE_EMAILS[role])
