"""The Inbox tab (admins and agents): conversations waiting for a person, and taking one over.

The lists refresh by themselves (a ``gr.Timer``); selecting a row opens the conversation with
its summary and transcript, which also refresh, so the customer's new messages appear while the
agent has it open. Claim, reply, hand back to the bot and close call ``HandoffDesk``, the same
functions as the staff API. A refresh that finds nothing new leaves the screen alone, so the
agent's scroll position and half-typed reply are never disturbed.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Any

import gradio as gr

from chatbot.staff.accounts import StaffUser
from chatbot.staff.summary import REASONS
from ui.staff_console.context import ConsoleContext

REFRESH_SECONDS = 5.0
WAITING_COLUMNS = ["waiting", "reason", "last customer message", "conversation"]
AGENT_COLUMNS = ["agent", "started waiting", "last customer message", "conversation"]
NOTHING_OPEN = "Select a conversation in a list to see its summary and transcript."


def ago(value: datetime | None) -> str:
    if value is None:
        return ""
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    minutes = int((datetime.now(UTC) - value).total_seconds() // 60)
    if minutes < 1:
        return "just now"
    if minutes < 90:
        return f"{minutes} min ago"
    hours = minutes // 60
    return f"{hours} h ago" if hours < 48 else f"{hours // 24} days ago"


def clip(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def transcript_messages(messages: list[Any]) -> list[dict[str, str]]:
    """The transcript as the agent reads it: the customer on the right, everyone else left."""
    shown = []
    for m in messages:
        text = html.escape(m.content, quote=False)
        if m.role == "user":
            shown.append({"role": "user", "content": text})
        elif m.role == "notice":
            shown.append({"role": "assistant", "content": f"*{text}*"})
        elif m.role == "agent":
            who = html.escape(m.meta.get("agent_email") or m.meta.get("agent_name") or "agent")
            shown.append({"role": "assistant", "content": f"**{who}** (agent)\n\n{text}"})
        else:
            label = {"answer": "Bot", "clarify": "Bot, clarifying", "handoff": "Bot, handing off"}
            head = label.get(m.decision or "", "Bot")
            shown.append({"role": "assistant", "content": f"**{head}**\n\n{text}"})
    return shown


def header(handoff: Any, actor: StaffUser) -> str:
    reason = REASONS.get(handoff.reason or "", handoff.reason or "none")
    if handoff.status == "agent":
        who = "you" if handoff.assigned_agent == actor.email else handoff.assigned_agent
        state = f"**{html.escape(who or '')}** has it"
    else:
        state = {"waiting": "**waiting** for a person", "bot": "with the **bot**",
                 "closed": "**closed**"}.get(handoff.status, handoff.status)
    since = f" · started waiting {ago(handoff.waiting_since)}" if handoff.waiting_since else ""
    summary = html.escape(handoff.summary, quote=False)
    return (f"#### Conversation `{handoff.conversation_id}`\n{state} · reason: {reason}{since}"
            f"\n\n{summary}")


def build(ctx: ConsoleContext) -> None:
    desk = ctx.staff.handoffs

    def tables(actor: StaffUser) -> tuple[list[list[str]], list[list[str]]]:
        found = desk.inbox(actor)
        waiting = [[ago(h.waiting_since), h.reason or "", clip(h.last_customer_message),
                    h.conversation_id] for h in found if h.status == "waiting"]
        held = [["you" if h.assigned_agent == actor.email else h.assigned_agent or "",
                 ago(h.waiting_since), clip(h.last_customer_message), h.conversation_id]
                for h in found if h.status == "agent"]
        return waiting, held

    def detail(actor: StaffUser, cid: str | None) -> tuple[Any, ...]:
        """(header, transcript, claim, reply box, send, hand back, close) for ``cid``."""
        if not cid:
            off = gr.Button(interactive=False)
            return NOTHING_OPEN, [], off, gr.Textbox(interactive=False), off, off, off
        found = desk.transcript(actor, cid)
        handoff = found.handoff
        mine = handoff.status == "agent" and (
            handoff.assigned_agent == actor.email or actor.role == "admin"
        )
        return (
            header(handoff, actor),
            transcript_messages(found.messages),
            gr.Button(interactive=handoff.status != "agent"),
            gr.Textbox(interactive=mine, placeholder="Write to the customer; Enter sends" if mine
                       else "Claim the conversation to reply"),
            gr.Button(interactive=mine),
            gr.Button(interactive=mine or handoff.status == "waiting"),
            gr.Button(interactive=mine or handoff.status in ("waiting", "bot")),
        )

    def fingerprint(actor: StaffUser, cid: str | None) -> list[Any]:
        lists = [(h.conversation_id, h.status, h.assigned_agent, h.messages, ago(h.waiting_since))
                 for h in desk.inbox(actor)]
        opened = None
        if cid:
            handoff = desk.transcript(actor, cid).handoff
            opened = [cid, handoff.status, handoff.assigned_agent, handoff.messages,
                      ago(handoff.waiting_since)]
        return [lists, opened]

    gr.Markdown(
        "Conversations waiting for a person, longest waiting first. **Claim** one to take it "
        "over: the bot stops answering and the customer sees that you joined. **Hand back** "
        "returns it to the bot; **Close** ends it (if the customer writes again, the bot answers)."
    )
    # Started by on_load, which runs only for roles with the inbox (the tab is hidden for others).
    timer = gr.Timer(REFRESH_SECONDS, active=False)
    opened = gr.State(None)
    seen = gr.State(None)
    with gr.Row():
        with gr.Column(scale=2):
            widths = ["16%", "24%", "40%", "20%"]
            waiting = gr.Dataframe(headers=WAITING_COLUMNS, interactive=False, wrap=True,
                                   label="Waiting for a person", max_height=320,
                                   column_widths=widths)
            held = gr.Dataframe(headers=AGENT_COLUMNS, interactive=False, wrap=True,
                                label="With an agent", max_height=260, column_widths=widths)
            refresh = gr.Button("Refresh", size="sm")
        with gr.Column(scale=3):
            about = gr.Markdown(NOTHING_OPEN, elem_id="inbox-detail")
            with gr.Row():
                claim = gr.Button("Claim", variant="primary", interactive=False)
                release = gr.Button("Hand back to bot", interactive=False)
                close = gr.Button("Close", variant="stop", interactive=False)
            transcript = gr.Chatbot(label="Transcript", show_label=False, height=380, buttons=[],
                                    group_consecutive_messages=False, sanitize_html=True,
                                    latex_delimiters=[])
            with gr.Row():
                reply = gr.Textbox(label="Reply to the customer", lines=1, scale=5,
                                   interactive=False, placeholder="Claim the conversation to reply")
                send = gr.Button("Send", variant="primary", scale=1, interactive=False)

    screen = [about, transcript, claim, reply, send, release, close]
    lists = [waiting, held]

    @ctx.guarded("inbox")
    def on_refresh(actor: StaffUser, cid: Any, before: Any) -> tuple[Any, ...]:
        """Redraw what changed since the last refresh (nothing changed: nothing is sent)."""
        now = fingerprint(actor, cid)
        before = before or [None, None]
        keep = (gr.skip(),)
        table_part = tables(actor) if now[0] != before[0] else keep * 2
        # The reply box is only made (non-)interactive, so a half-typed reply is kept.
        detail_part = keep * len(screen) if now[1] == before[1] else detail(actor, cid)
        return *table_part, *detail_part, now

    @ctx.guarded("inbox")
    def on_select(actor: StaffUser, evt: gr.SelectData) -> tuple[Any, ...]:
        row = evt.row_value or []
        cid = str(row[-1]) if row else None
        return cid, *detail(actor, cid), fingerprint(actor, cid)

    @ctx.guarded("inbox")
    def on_claim(actor: StaffUser, cid: Any) -> tuple[Any, ...]:
        if cid:
            desk.claim(actor, cid)
            gr.Info("You have the conversation: the bot is silent until you hand it back.")
        return *tables(actor), *detail(actor, cid), fingerprint(actor, cid)

    @ctx.guarded("inbox")
    def on_send(actor: StaffUser, cid: Any, text: str) -> tuple[Any, ...]:
        if cid:
            desk.reply(actor, cid, text or "")
        got = detail(actor, cid)  # the reply was stored: the box may be emptied
        return *tables(actor), *got[:3], gr.Textbox(value="", interactive=True), *got[4:], \
            fingerprint(actor, cid)

    @ctx.guarded("inbox")
    def on_release(actor: StaffUser, cid: Any) -> tuple[Any, ...]:
        if cid:
            desk.release(actor, cid)
            gr.Info("Handed back: the bot answers the customer again.")
        return *tables(actor), *detail(actor, cid), fingerprint(actor, cid)

    @ctx.guarded("inbox")
    def on_close(actor: StaffUser, cid: Any) -> tuple[Any, ...]:
        if cid:
            desk.close(actor, cid)
            gr.Info("Closed. If the customer writes again, the bot answers.")
        return *tables(actor), *detail(actor, cid), fingerprint(actor, cid)

    @ctx.guarded("inbox")
    def on_load(actor: StaffUser) -> tuple[Any, ...]:
        return *tables(actor), fingerprint(actor, None), gr.Timer(active=True)

    private: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden"}
    everything = [*lists, *screen, seen]
    timer.tick(on_refresh, [opened, seen], everything, **private)
    refresh.click(on_refresh, [opened, seen], everything, **private)
    waiting.select(on_select, None, [opened, *screen, seen], **private)
    held.select(on_select, None, [opened, *screen, seen], **private)
    claim.click(on_claim, [opened], everything, **private)
    gr.on([send.click, reply.submit], on_send, [opened, reply], everything, **private)
    release.click(on_release, [opened], everything, **private)
    close.click(on_close, [opened], everything, **private)
    ctx.on_load(on_load, None, [*lists, seen, timer])
