"""Staff accounts: ``user add|list``, ``token create``. The first admin is made here."""

from __future__ import annotations

import sys

import click

from chatbot.cli import emit_json, load_settings, main
from chatbot.errors import InvalidInput
from chatbot.staff.accounts import MIN_PASSWORD_CHARS, ROLES, Accounts


def _accounts() -> Accounts:
    from chatbot.db import make_engine, upgrade

    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    return Accounts(engine, session_hours=settings.staff_session_hours)


@main.group()
def user() -> None:
    """Staff accounts for the console at /staff and the staff API."""


@user.command("add")
@click.argument("email")
@click.option("--role", required=True, type=click.Choice(ROLES),
              help="admin: everything; editor: knowledge base; agent: handoff inbox.")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from the first line of standard input (for scripts).")
def user_add(email: str, role: str, password_stdin: bool) -> None:
    """Create a staff account (the password is asked for, never given on the command line)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise InvalidInput("No password on standard input.")
    else:
        password = click.prompt(
            f"Password for {email} (at least {MIN_PASSWORD_CHARS} characters)",
            hide_input=True, confirmation_prompt=True,
        )
    created = _accounts().add_user(email, role, password)
    click.echo(f"Created {created.role} account {created.email}. Sign in at /staff.")


@user.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON list.")
def user_list(as_json: bool) -> None:
    """List the staff accounts."""
    users = _accounts().users()
    if as_json:
        emit_json([{"email": u.email, "role": u.role, "active": u.active} for u in users])
        return
    for u in users:
        state = "" if u.active else "\t(deactivated)"
        click.echo(f"{u.email}\t{u.role}{state}")
    if not users:
        click.echo("No staff accounts yet; create one with: chatbot user add EMAIL --role admin")


@main.group()
def token() -> None:
    """Bearer tokens for the staff API."""


@token.command("create")
@click.argument("email")
def token_create(email: str) -> None:
    """Print a new staff API token for EMAIL (shown once; keep it secret)."""
    accounts = _accounts()
    created = accounts.create_token(email)
    role = accounts.user(email).role
    click.echo(f"Token for {email.strip().lower()} ({role}); send it as 'Authorization: Bearer …':")
    click.echo(created)
