"""Signed visitor identity for the embeddable widget.

A site that embeds the widget may tell the chat server who its signed-in visitor is. The site's
own server signs the visitor with the shared secret ``CHATBOT_WIDGET_SECRET`` when it renders
the page; the browser passes the values on untouched; this module checks them. The secret never
reaches the browser, so a visitor cannot claim to be someone else.

The signature is a token ``"<ts>.<hex>"``:

- ``ts``: when it was signed, whole seconds since the Unix epoch (decimal digits);
- ``hex``: HMAC-SHA256, key = the secret's UTF-8 bytes, message = the UTF-8 bytes of the
  canonical string, as 64 hexadecimal digits::

      canonical = ts + "\\n" + user_id + "\\n" + name + "\\n" + email

  (a missing name or email is the empty string; no field may contain a line break, so the
  canonical string names exactly one set of values; nothing is trimmed or normalised).

A token is accepted for ``max_age`` seconds after ``ts`` (default 24 hours; a copied token can
be replayed only that long) and up to ``MAX_CLOCK_SKEW_S`` before it. Structural mistakes in the
payload raise ``InvalidInput`` (400); a missing, malformed, wrong, expired or unverifiable
signature raises ``Forbidden`` (403).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chatbot.errors import Forbidden, InvalidInput

MAX_AGE_S = 24 * 60 * 60
MAX_CLOCK_SKEW_S = 5 * 60
LIMITS = {"user_id": 200, "name": 200, "email": 320}
_TOKEN = re.compile(r"^([0-9]{1,12})\.([0-9a-fA-F]{64})$")


@dataclass(frozen=True)
class VerifiedVisitor:
    user_id: str
    name: str
    email: str
    issued_at: int

    def to_dict(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "name": self.name, "email": self.email}


def canonical_string(user_id: str, name: str, email: str, timestamp: int) -> str:
    """The exact text that is signed (see the module docstring)."""
    return f"{timestamp}\n{user_id}\n{name}\n{email}"


def _digest(secret: str, user_id: str, name: str, email: str, timestamp: int) -> str:
    message = canonical_string(user_id, name, email, timestamp).encode("utf-8")
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def _field(payload: Mapping[str, Any], key: str, *, required: bool) -> str:
    value = payload.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        need = "non-empty text" if required else "text"
        raise InvalidInput(f"visitor.{key} must be {need}.")
    _check_value(key, value)
    return value


def _check_value(key: str, value: str) -> None:
    if "\n" in value or "\r" in value:
        raise InvalidInput(f"visitor.{key} must not contain line breaks.")
    if len(value) > LIMITS[key]:
        raise InvalidInput(f"visitor.{key} is {len(value)} characters; the limit is {LIMITS[key]}.")


def sign_identity(
    secret: str,
    user_id: str,
    name: str = "",
    email: str = "",
    timestamp: int | None = None,
) -> str:
    """The signature token ``"<ts>.<hex>"`` for one visitor (``timestamp`` defaults to now).

    This is what the embedding site's server computes; the chat server only verifies.
    """
    if not secret:
        raise InvalidInput("The widget secret is empty; set CHATBOT_WIDGET_SECRET.")
    if not user_id:
        raise InvalidInput("visitor.user_id must be non-empty text.")
    for key, value in (("user_id", user_id), ("name", name), ("email", email)):
        _check_value(key, value)
    ts = int(time.time()) if timestamp is None else int(timestamp)
    if ts < 0:
        raise InvalidInput("The timestamp must not be negative.")
    return f"{ts}.{_digest(secret, user_id, name, email, ts)}"


def verify_identity(
    secret: str,
    payload: Any,
    *,
    max_age: float = MAX_AGE_S,
    now: float | None = None,
) -> VerifiedVisitor:
    """Check a ``{"user_id", "name"?, "email"?, "signature", "ts"?}`` payload from the widget.

    Returns the verified visitor, or raises ``InvalidInput`` / ``Forbidden`` (module docstring).
    """
    if not isinstance(payload, Mapping):
        raise InvalidInput("visitor must be an object with user_id, name, email and signature.")
    user_id = _field(payload, "user_id", required=True)
    name = _field(payload, "name", required=False)
    email = _field(payload, "email", required=False)
    if not secret:
        raise Forbidden(
            "Signed visitor identity is not enabled on this chat server "
            "(CHATBOT_WIDGET_SECRET is empty)."
        )
    token = payload.get("signature")
    match = _TOKEN.match(token) if isinstance(token, str) else None
    if match is None:
        raise Forbidden("The visitor signature is missing or malformed; expected '<ts>.<hex>'.")
    ts = int(match.group(1))
    claimed_ts = payload.get("ts")
    if claimed_ts is not None and (isinstance(claimed_ts, bool) or str(claimed_ts) != str(ts)):
        raise InvalidInput("visitor.ts does not match the timestamp inside the signature.")
    expected = _digest(secret, user_id, name, email, ts)
    if not hmac.compare_digest(expected.encode("ascii"), match.group(2).lower().encode("ascii")):
        raise Forbidden("The visitor signature does not match; the visitor could not be verified.")
    current = time.time() if now is None else now
    if ts > current + MAX_CLOCK_SKEW_S:
        raise Forbidden("The visitor signature was issued in the future; check the server clocks.")
    if current - ts > max_age:
        raise Forbidden(
            "The visitor signature has expired; the embedding page must sign the visitor again "
            "when it is rendered."
        )
    return VerifiedVisitor(user_id=user_id, name=name, email=email, issued_at=ts)
