"""Staff accounts, roles, API tokens and console sessions.

- Passwords are hashed with argon2id (argon2-cffi); there is no default account or password.
- API tokens and session cookies are random secrets shown once; only their SHA-256 is stored,
  so a copy of the database does not let anyone sign in.
- A session expires ``session_hours`` after sign-in and carries its own CSRF token.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from chatbot.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from chatbot.models import StaffSessionRow, StaffTokenRow, StaffUserRow, utcnow

ROLES = ("admin", "editor", "agent")

# What each area of the console and the staff API allows.
PERMISSIONS: dict[str, tuple[str, ...]] = {
    "kb": ("admin", "editor"),  # entries, publish, versions, rollback, unanswered questions
    "inbox": ("admin", "agent"),  # waiting conversations: claim, reply, release, close
    "conversations": ("admin", "editor", "agent"),  # transcripts, search, export
    "analytics": ("admin", "editor", "agent"),
    "users": ("admin",),  # accounts, roles, tokens
}

MIN_PASSWORD_CHARS = 12
TOKEN_PREFIX = "cbt_"
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
_hasher = PasswordHasher()


@dataclass(frozen=True)
class StaffUser:
    id: int
    email: str
    role: str
    active: bool = True

    def can(self, area: str) -> bool:
        return self.active and self.role in PERMISSIONS[area]


@dataclass(frozen=True)
class StaffSession:
    user: StaffUser
    csrf: str
    expires_at: datetime


def require(user: StaffUser | None, area: str) -> StaffUser:
    """The user, if their role may use ``area``; otherwise Unauthorized / Forbidden."""
    if user is None:
        raise Unauthorized("Sign in first: this needs a staff account.")
    if area not in PERMISSIONS:
        raise ValueError(f"unknown staff area {area!r}")
    if not user.can(area):
        allowed = " or ".join(PERMISSIONS[area])
        raise Forbidden(f"Your role ({user.role}) may not do this; it needs {allowed}.")
    return user


def check_email(email: str) -> str:
    email = (email or "").strip().lower()
    if not _EMAIL.match(email) or len(email) > 254:
        raise InvalidInput(f"'{email}' is not an email address.")
    return email


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidInput(
            f"The password is too short: use at least {MIN_PASSWORD_CHARS} characters."
        )
    if len(password) > 1024:
        raise InvalidInput("The password is too long: use at most 1,024 characters.")
    return password


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite returns naive UTC


def _user(row: StaffUserRow) -> StaffUser:
    return StaffUser(row.id, row.email, row.role, row.active)


class Accounts:
    def __init__(self, engine: Engine, *, session_hours: float = 12.0) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self.session_hours = session_hours

    # --- users ------------------------------------------------------------------------

    def add_user(self, email: str, role: str, password: str) -> StaffUser:
        email = check_email(email)
        if role not in ROLES:
            raise InvalidInput(f"Unknown role '{role}'; use one of {', '.join(ROLES)}.")
        check_password(password)
        try:
            with self._sessions.begin() as session:
                row = StaffUserRow(
                    email=email, role=role, password_hash=_hasher.hash(password), active=True
                )
                session.add(row)
                session.flush()
                return _user(row)
        except IntegrityError:
            raise Conflict(f"There is already a staff account for {email}.") from None

    def create_user(self, actor: StaffUser, email: str, role: str, password: str) -> StaffUser:
        """An admin creates an account from the console (the CLI uses ``add_user``)."""
        require(actor, "users")
        return self.add_user(email, role, password)

    def issue_token(self, actor: StaffUser, email: str) -> str:
        """An admin issues an API token for an account (shown once)."""
        require(actor, "users")
        return self.create_token(email)

    def users(self) -> list[StaffUser]:
        with self._sessions() as session:
            return [_user(r) for r in session.scalars(select(StaffUserRow).order_by(StaffUserRow.email))]

    def user(self, email: str) -> StaffUser:
        email = (email or "").strip().lower()
        with self._sessions() as session:
            row = session.scalars(select(StaffUserRow).where(StaffUserRow.email == email)).first()
            if row is None:
                raise NotFound(f"There is no staff account for {email}.")
            return _user(row)

    def has_users(self) -> bool:
        with self._sessions() as session:
            return session.scalars(select(StaffUserRow.id).limit(1)).first() is not None

    def update_user(
        self,
        actor: StaffUser,
        email: str,
        *,
        role: str | None = None,
        active: bool | None = None,
        password: str | None = None,
    ) -> StaffUser:
        """An admin changes another account (role, active, password)."""
        require(actor, "users")
        if role is not None and role not in ROLES:
            raise InvalidInput(f"Unknown role '{role}'; use one of {', '.join(ROLES)}.")
        if password is not None:
            check_password(password)
        with self._sessions.begin() as session:
            row = session.scalars(
                select(StaffUserRow).where(StaffUserRow.email == email.strip().lower())
            ).first()
            if row is None:
                raise NotFound(f"There is no staff account for {email}.")
            if row.id == actor.id and (role not in (None, "admin") or active is False):
                raise InvalidInput("You cannot remove your own admin role or deactivate yourself.")
            if role is not None:
                row.role = role
            if active is not None:
                row.active = active
                if not active:  # sign the person out everywhere
                    session.execute(delete(StaffSessionRow).where(StaffSessionRow.user_id == row.id))
            if password is not None:
                row.password_hash = _hasher.hash(password)
                session.execute(delete(StaffSessionRow).where(StaffSessionRow.user_id == row.id))
            return _user(row)

    def authenticate(self, email: str, password: str) -> StaffUser:
        """The account if the password is right; one message for every failure (no user probing)."""
        wrong = Unauthorized("The email or password is not right.")
        email = (email or "").strip().lower()
        with self._sessions.begin() as session:
            row = session.scalars(select(StaffUserRow).where(StaffUserRow.email == email)).first()
            if row is None:
                _hasher.hash(password or "x")  # same time as a real check
                raise wrong
            try:
                _hasher.verify(row.password_hash, password or "")
            except (VerificationError, InvalidHashError):
                raise wrong from None
            if not row.active:
                raise Forbidden("This staff account is deactivated; ask an administrator.")
            if _hasher.check_needs_rehash(row.password_hash):
                row.password_hash = _hasher.hash(password)
            row.last_login_at = utcnow()
            return _user(row)

    # --- API tokens -------------------------------------------------------------------

    def create_token(self, email: str) -> str:
        """A new bearer token for the account (printed once; only its hash is kept)."""
        user = self.user(email)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._sessions.begin() as session:
            session.add(StaffTokenRow(user_id=user.id, token_hash=_digest(token), prefix=token[:10]))
        return token

    def user_for_token(self, token: str) -> StaffUser:
        if not token:
            raise Unauthorized("Send 'Authorization: Bearer <token>' (see chatbot token create).")
        with self._sessions.begin() as session:
            found = session.execute(
                select(StaffTokenRow, StaffUserRow)
                .join(StaffUserRow, StaffUserRow.id == StaffTokenRow.user_id)
                .where(StaffTokenRow.token_hash == _digest(token))
            ).first()
            if found is None or found[0].revoked:
                raise Unauthorized("The bearer token is not valid; create one with chatbot token create.")
            token_row, user_row = found
            if not user_row.active:
                raise Unauthorized("The token's staff account is deactivated.")
            token_row.last_used_at = utcnow()
            return _user(user_row)

    def revoke_tokens(self, actor: StaffUser, email: str) -> int:
        require(actor, "users")
        user = self.user(email)
        with self._sessions.begin() as session:
            rows = session.scalars(
                select(StaffTokenRow).where(
                    StaffTokenRow.user_id == user.id, StaffTokenRow.revoked.is_(False)
                )
            ).all()
            for row in rows:
                row.revoked = True
            return len(rows)

    # --- console sessions -------------------------------------------------------------

    def start_session(self, user: StaffUser) -> tuple[str, StaffSession]:
        """A new session: (the cookie's secret, the session with its CSRF token)."""
        secret = secrets.token_urlsafe(32)
        expires = utcnow() + timedelta(hours=self.session_hours)
        csrf = secrets.token_urlsafe(24)
        with self._sessions.begin() as session:
            session.execute(delete(StaffSessionRow).where(StaffSessionRow.expires_at < utcnow()))
            session.add(
                StaffSessionRow(id=_digest(secret), user_id=user.id, csrf=csrf, expires_at=expires)
            )
        return secret, StaffSession(user, csrf, expires)

    def session(self, secret: str | None) -> StaffSession | None:
        """The live session for a cookie value, or None (unknown, expired, deactivated)."""
        if not secret:
            return None
        with self._sessions() as session:
            found = session.execute(
                select(StaffSessionRow, StaffUserRow)
                .join(StaffUserRow, StaffUserRow.id == StaffSessionRow.user_id)
                .where(StaffSessionRow.id == _digest(secret))
            ).first()
            if found is None:
                return None
            row, user_row = found
            if _aware(row.expires_at) <= utcnow() or not user_row.active:
                return None
            return StaffSession(_user(user_row), row.csrf, _aware(row.expires_at))

    def end_session(self, secret: str | None) -> None:
        if secret:
            with self._sessions.begin() as session:
                session.execute(delete(StaffSessionRow).where(StaffSessionRow.id == _digest(secret)))


