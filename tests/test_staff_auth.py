"""Staff accounts, passwords, API tokens and console sessions, on a real database and app."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from api_helpers import assert_error, module_services
from fastapi.testclient import TestClient
from helpers import assert_user_error, run_cli
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from staff_helpers import PASSWORD, ROLE_EMAILS, STAFF, add_staff_accounts, sign_in

from chatbot.errors import Conflict, Forbidden, InvalidInput, Unauthorized
from chatbot.models import StaffSessionRow, StaffUserRow, utcnow
from chatbot.staff.accounts import Accounts, require
from chatbot.staff.services import build_staff
from ui.app import create_app
from ui.staff_console.context import SESSION_COOKIE
from ui.staff_console.login import MAX_FAILURES


@pytest.fixture(scope="module")
def services(tmp_path_factory, shared_embedding_model, kb_template, module_database):
    folder = tmp_path_factory.mktemp("staff-auth") / "data"
    with module_services(folder, kb_template, **module_database) as services:
        yield services


@pytest.fixture(scope="module")
def staff(services):
    staff = build_staff(services)
    add_staff_accounts(staff)
    return staff


@pytest.fixture(scope="module")
def app(services, staff):
    return create_app(services, staff)


@pytest.fixture
def client(app):
    with TestClient(app) as client:  # a fresh cookie jar per test
        yield client


# Accounts ----------------------------------------------------------------------------------


def test_passwords_are_stored_as_argon2_hashes_only(services, staff):
    with Session(services.engine) as session:
        row = session.scalars(
            select(StaffUserRow).where(StaffUserRow.email == ROLE_EMAILS["admin"])
        ).one()
    assert row.password_hash.startswith("$argon2id$")
    assert PASSWORD not in row.password_hash


def test_account_input_is_checked(staff):
    accounts = staff.accounts
    with pytest.raises(InvalidInput, match="not an email"):
        accounts.add_user("not-an-email", "agent", PASSWORD)
    with pytest.raises(InvalidInput, match="at least 12"):
        accounts.add_user("new@example.com", "agent", "short")
    with pytest.raises(InvalidInput, match="Unknown role 'owner'"):
        accounts.add_user("new@example.com", "owner", PASSWORD)
    with pytest.raises(Conflict, match="already a staff account"):
        accounts.add_user(ROLE_EMAILS["agent"].upper(), "agent", PASSWORD)


def test_authentication_gives_one_message_for_unknown_email_and_wrong_password(staff):
    with pytest.raises(Unauthorized) as unknown:
        staff.accounts.authenticate("nobody@example.com", PASSWORD)
    with pytest.raises(Unauthorized) as wrong:
        staff.accounts.authenticate(ROLE_EMAILS["agent"], PASSWORD + "x")
    assert unknown.value.message == wrong.value.message
    assert staff.accounts.authenticate(" Agent@Example.com ", PASSWORD).role == "agent"


def test_require_checks_roles_per_area(staff):
    agent = staff.accounts.user(ROLE_EMAILS["agent"])
    assert require(agent, "inbox") is agent
    with pytest.raises(Forbidden, match=r"agent.*needs admin or editor"):
        require(agent, "kb")
    with pytest.raises(Unauthorized):
        require(None, "kb")


def test_deactivated_accounts_cannot_sign_in_or_use_tokens(services):
    accounts = Accounts(services.engine)
    admin = accounts.user(ROLE_EMAILS["admin"])
    accounts.add_user("leaver@example.com", "agent", PASSWORD)
    token = accounts.create_token("leaver@example.com")
    secret, _ = accounts.start_session(accounts.user("leaver@example.com"))
    accounts.update_user(admin, "leaver@example.com", active=False)
    with pytest.raises(Forbidden, match="deactivated"):
        accounts.authenticate("leaver@example.com", PASSWORD)
    with pytest.raises(Unauthorized, match="deactivated"):
        accounts.user_for_token(token)
    assert accounts.session(secret) is None
    with pytest.raises(InvalidInput, match="own admin role"):
        accounts.update_user(admin, admin.email, role="agent")
    editor = accounts.user(ROLE_EMAILS["editor"])
    with pytest.raises(Forbidden):
        accounts.update_user(editor, "leaver@example.com", active=True)


def test_revoked_tokens_stop_working(services):
    accounts = Accounts(services.engine)
    admin = accounts.user(ROLE_EMAILS["admin"])
    accounts.add_user("revoked@example.com", "agent", PASSWORD)
    token = accounts.create_token("revoked@example.com")
    assert accounts.user_for_token(token).email == "revoked@example.com"
    assert accounts.revoke_tokens(admin, "revoked@example.com") == 1
    with pytest.raises(Unauthorized, match="not valid"):
        accounts.user_for_token(token)


# The staff API's bearer tokens ---------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer cbt_wrong"}, {"Authorization": "Basic abc"},
     {"Authorization": "Bearer "}],
)
def test_staff_api_refuses_missing_or_bad_tokens_with_401(client, headers):
    assert_error(client.get(f"{STAFF}/versions", headers=headers), 401)


# Console sessions --------------------------------------------------------------------------


def test_console_redirects_to_sign_in_when_signed_out(client):
    response = client.get("/staff/", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/staff/login"
    page = client.get("/staff/login")
    assert page.status_code == 200 and 'type="password"' in page.text
    assert "chatbot user add" in page.text  # how the first account is made


def test_signed_out_console_api_is_refused(client):
    assert client.get("/staff/config").status_code == 401


def test_sign_in_sets_a_strict_httponly_expiring_cookie(client):
    response = sign_in(client, ROLE_EMAILS["editor"])
    assert response.status_code == 303 and response.headers["location"] == "/staff/"
    cookie = next(c for c in response.headers.get_list("set-cookie")
                  if c.startswith(SESSION_COOKIE + "="))
    lowered = cookie.lower()
    assert "httponly" in lowered and "samesite=strict" in lowered and "path=/staff" in lowered
    assert "max-age=43200" in lowered  # CHATBOT_STAFF_SESSION_HOURS default 12
    assert "secure" not in lowered  # plain http here: a Secure cookie would never come back
    page = client.get("/staff/")
    assert page.status_code == 200
    assert client.get("/staff/config").status_code == 200


def test_cookie_is_secure_over_https(app):
    with TestClient(app, base_url="https://testserver") as client:
        signed = sign_in(client, ROLE_EMAILS["agent"])
    cookie = next(c for c in signed.headers.get_list("set-cookie")
                  if c.startswith(SESSION_COOKIE + "="))
    assert "secure" in cookie.lower()


def test_wrong_password_shows_the_form_again_with_an_error(client):
    response = sign_in(client, ROLE_EMAILS["editor"], "wrong password here")
    assert response.status_code == 401
    assert "The email or password is not right." in response.text
    assert SESSION_COOKIE not in client.cookies


def test_sign_in_needs_the_form_csrf_token(client):
    client.get("/staff/login")
    response = client.post(
        "/staff/login",
        data={"email": ROLE_EMAILS["editor"], "password": PASSWORD, "csrf": "forged"},
        follow_redirects=False,
    )
    assert response.status_code == 403 and "form expired" in response.text
    assert SESSION_COOKIE not in client.cookies


def test_sign_in_from_another_site_is_refused(client):
    page = client.get("/staff/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    response = client.post(
        "/staff/login",
        data={"email": ROLE_EMAILS["editor"], "password": PASSWORD, "csrf": csrf},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert response.status_code == 403


def test_expired_sessions_end(client, services):
    sign_in(client, ROLE_EMAILS["agent"])
    assert client.get("/staff/", follow_redirects=False).status_code == 200
    with Session(services.engine) as session, session.begin():
        session.execute(
            update(StaffSessionRow).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert client.get("/staff/", follow_redirects=False).status_code == 303


def test_sign_out_needs_the_session_csrf_token_and_ends_the_session(client, staff):
    sign_in(client, ROLE_EMAILS["agent"])
    secret = client.cookies[SESSION_COOKIE]
    refused = client.post("/staff/logout", data={"csrf": "forged"}, follow_redirects=False)
    assert refused.status_code == 403
    assert staff.accounts.session(secret) is not None
    csrf = staff.accounts.session(secret).csrf
    done = client.post("/staff/logout", data={"csrf": csrf}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/staff/login"
    assert staff.accounts.session(secret) is None


def test_repeated_failed_sign_ins_are_throttled(app):
    with TestClient(app, client=("203.0.113.9", 5000)) as client:
        for _ in range(MAX_FAILURES):
            assert sign_in(client, ROLE_EMAILS["agent"], "wrong password here").status_code == 401
        blocked = sign_in(client, ROLE_EMAILS["agent"])
        assert blocked.status_code == 429 and "Too many failed sign-ins" in blocked.text
    with TestClient(app, client=("203.0.113.10", 5000)) as other:
        assert sign_in(other, ROLE_EMAILS["agent"]).status_code == 303


def test_password_reset_ends_existing_sessions(client, staff):
    staff.accounts.add_user("reset@example.com", "agent", PASSWORD)
    sign_in(client, "reset@example.com")
    secret = client.cookies[SESSION_COOKIE]
    admin = staff.accounts.user(ROLE_EMAILS["admin"])
    staff.accounts.update_user(admin, "reset@example.com", password="another long password")
    assert staff.accounts.session(secret) is None
    assert staff.accounts.authenticate("reset@example.com", "another long password")


# CLI -----------------------------------------------------------------------------------------


def test_cli_creates_accounts_and_tokens(data_dir, database_url):
    data, url = data_dir, database_url
    created = run_cli("user", "add", "Lead@Example.com", "--role", "admin", "--password-stdin",
                      data=data, input=PASSWORD + "\n", database_url=url)
    assert created.returncode == 0, created.stderr
    prompted = run_cli("user", "add", "second@example.com", "--role", "agent", data=data,
                       input=f"{PASSWORD}\n{PASSWORD}\n", database_url=url)
    assert prompted.returncode == 0, prompted.stderr
    assert PASSWORD not in prompted.stdout
    token = run_cli("token", "create", "lead@example.com", data=data, database_url=url)
    assert token.returncode == 0, token.stderr
    last = token.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"cbt_[A-Za-z0-9_-]{40,}", last)
    from chatbot.db import make_engine

    engine = make_engine(url)
    try:
        assert Accounts(engine).user_for_token(last).email == "lead@example.com"
    finally:
        engine.dispose()
    listed = run_cli("user", "list", "--json", data=data, database_url=url)
    assert '"lead@example.com"' in listed.stdout and '"second@example.com"' in listed.stdout


def test_cli_rejects_bad_accounts_clearly(tmp_path):
    data = tmp_path / "data"
    assert_user_error(
        run_cli("user", "add", "x@example.com", "--role", "admin", "--password-stdin",
                data=data, input="short\n"),
        "at least 12 characters",
    )
    assert_user_error(
        run_cli("user", "add", "x@example.com", "--role", "owner", data=data), "owner"
    )
    assert_user_error(run_cli("token", "create", "nobody@example.com", data=data),
                      "no staff account for nobody@example.com")
