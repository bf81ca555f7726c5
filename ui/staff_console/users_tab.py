"""The Users tab (admins): accounts, roles, passwords and API tokens."""

from __future__ import annotations

from typing import Any

import gradio as gr

from chatbot.errors import InvalidInput
from chatbot.staff.accounts import ROLES, StaffUser
from ui.staff_console.context import ConsoleContext

COLUMNS = ["email", "role", "active"]


def build(ctx: ConsoleContext) -> None:
    accounts, audit = ctx.staff.accounts, ctx.staff.audit

    def table(actor: StaffUser) -> list[list[Any]]:
        if not actor.can("users"):
            return []
        return [[u.email, u.role, "yes" if u.active else "no"] for u in accounts.users()]

    gr.Markdown(
        "Accounts of the staff console. **admin**: everything; **editor**: knowledge base and "
        "unanswered questions; **agent**: handoff inbox. Passwords have at least 12 characters."
    )
    users = gr.Dataframe(headers=COLUMNS, interactive=False, label="Accounts")
    with gr.Row():
        email = gr.Textbox(label="Email", scale=2)
        role = gr.Dropdown(list(ROLES), value="agent", label="Role", scale=1)
        password = gr.Textbox(label="Password (new accounts, or to reset one)", type="password",
                              scale=2)
    with gr.Row():
        add = gr.Button("Add account", variant="primary")
        change = gr.Button("Change role")
        reset = gr.Button("Reset password")
        toggle = gr.Button("Activate / deactivate")
        token = gr.Button("Create API token")
        revoke = gr.Button("Revoke API tokens", variant="stop")
    result = gr.Markdown()

    def _email(value: str) -> str:
        if not (value or "").strip():
            raise InvalidInput("Type the account's email first.")
        return value.strip().lower()

    @ctx.guarded("users")
    def on_load(actor: StaffUser) -> list[list[Any]]:
        return table(actor)

    @ctx.guarded("users")
    def on_add(actor: StaffUser, email: str, role: str, password: str) -> tuple[Any, ...]:
        created = accounts.create_user(actor, _email(email), role, password or "")
        audit.record(actor, "user.create", created.email, role=created.role)
        return table(actor), f"Created {created.role} account **{created.email}**.", ""

    @ctx.guarded("users")
    def on_change(actor: StaffUser, email: str, role: str) -> tuple[Any, ...]:
        changed = accounts.update_user(actor, _email(email), role=role)
        audit.record(actor, "user.role", changed.email, role=changed.role)
        return table(actor), f"**{changed.email}** is now {changed.role}."

    @ctx.guarded("users")
    def on_reset(actor: StaffUser, email: str, password: str) -> tuple[Any, ...]:
        changed = accounts.update_user(actor, _email(email), password=password or "")
        audit.record(actor, "user.password", changed.email)
        return table(actor), f"New password set for **{changed.email}**; their sessions ended.", ""

    @ctx.guarded("users")
    def on_toggle(actor: StaffUser, email: str) -> tuple[Any, ...]:
        current = accounts.user(_email(email))
        changed = accounts.update_user(actor, current.email, active=not current.active)
        audit.record(actor, "user.active", changed.email, active=changed.active)
        state = "active" if changed.active else "deactivated (signed out everywhere)"
        return table(actor), f"**{changed.email}** is {state}."

    @ctx.guarded("users")
    def on_token(actor: StaffUser, email: str) -> str:
        issued = accounts.issue_token(actor, _email(email))
        audit.record(actor, "token.create", _email(email))
        return (f"API token for **{_email(email)}** (shown once; send it as "
                f"`Authorization: Bearer …`):\n\n```\n{issued}\n```")

    @ctx.guarded("users")
    def on_revoke(actor: StaffUser, email: str) -> str:
        count = accounts.revoke_tokens(actor, _email(email))
        audit.record(actor, "token.revoke", _email(email), count=count)
        return f"Revoked {count} token(s) of **{_email(email)}**."

    private: dict[str, Any] = {"api_visibility": "private"}
    add.click(on_add, [email, role, password], [users, result, password], **private)
    change.click(on_change, [email, role], [users, result], **private)
    reset.click(on_reset, [email, password], [users, result, password], **private)
    toggle.click(on_toggle, [email], [users, result], **private)
    token.click(on_token, [email], [result], **private)
    revoke.click(on_revoke, [email], [result], **private)

    @ctx.guarded("users")
    def on_select(actor: StaffUser, rows: Any, evt: gr.SelectData) -> tuple[Any, ...]:
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        values = rows.values.tolist() if hasattr(rows, "values") else rows
        if row is None or row >= len(values):
            return gr.update(), gr.update()
        return values[row][0], values[row][1]

    users.select(on_select, [users], [email, role], **private)
    load_users = gr.Button("Refresh", size="sm")
    load_users.click(on_load, None, [users], **private)
    ctx.on_load(on_load, None, [users])
