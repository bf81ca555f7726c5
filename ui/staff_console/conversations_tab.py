"""The console's conversations tab: search transcripts with filters, read one in full (each
reply with its decision, sources and rating), and download the matching conversations as JSONL
(the file ``chatbot train`` reads).

Every handler calls ``staff.transcripts`` (``chatbot.staff.transcripts.Transcripts``), the
functions the staff API calls.
"""

from __future__ import annotations

import html
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from chatbot.staff.accounts import StaffUser
from chatbot.staff.transcripts import DECISIONS, HANDOFF_REASONS, STATUSES, TranscriptFilter
from ui.staff_console.context import ConsoleContext

HEADERS = ["id", "last activity", "status", "messages", "first question", "decisions",
           "rated up", "rated down", "match"]
PER_PAGE = 25
ANY = ("Any", "")
ROLE_LABELS = {"user": "Customer", "assistant": "Bot", "agent": "Agent"}


def summary_rows(page: dict[str, Any]) -> list[list[Any]]:
    return [
        [i["id"], i["last_at"][:16].replace("T", " "), i["status"], i["messages"],
         i["first_question"], ", ".join(i["decisions"]), i["feedback"]["up"],
         i["feedback"]["down"], i["match"]]
        for i in page["items"]
    ]


def transcript_markdown(conversation: dict[str, Any]) -> str:
    lines = [
        f"### Conversation `{conversation['id']}`",
        f"Status **{conversation['status']}**"
        + (f" · handed off: {conversation['handoff_reason']}" if conversation["handoff_reason"]
           else "")
        + (f" · agent {html.escape(conversation['assigned_agent'])}"
           if conversation["assigned_agent"] else ""),
        "",
    ]
    for m in conversation["messages"]:
        head = f"**{ROLE_LABELS.get(m['role'], m['role'])}** · {m['created_at'][:19].replace('T', ' ')}"
        notes = []
        if m.get("decision"):
            notes.append(m["decision"] + (f" ({m['reason']})" if m.get("reason") else ""))
        if m.get("latency_ms") is not None:
            notes.append(f"{m['latency_ms']:.0f} ms")
        if m.get("rating"):
            notes.append(f"rated {m['rating']}"
                         + (f" “{html.escape(m['comment'])}”" if m.get("comment") else ""))
        if notes:
            head += " · " + " · ".join(notes)
        lines.append(head)
        lines.append("> " + html.escape(m["content"]).replace("\n", "\n> "))
        if m.get("sources"):
            lines.append("Sources: " + ", ".join(
                f"`{s['id']}` ({s.get('score', 0):.2f})" for s in m["sources"]))
        lines.append("")
    return "\n".join(lines)


def build(ctx: ConsoleContext) -> None:
    transcripts = ctx.staff.transcripts
    with gr.Row():
        text = gr.Textbox(label="Search", placeholder="words in any message, or a conversation id",
                          scale=3)
        start = gr.Textbox(label="From (YYYY-MM-DD)", scale=1)
        end = gr.Textbox(label="To (YYYY-MM-DD)", scale=1)
    with gr.Row():
        decision = gr.Dropdown(label="Bot decision", choices=[ANY, *[(d, d) for d in DECISIONS]],
                               value="")
        feedback = gr.Dropdown(label="Feedback", value="", choices=[
            ANY, ("Rated up", "up"), ("Rated down", "down"), ("Not rated", "none")])
        handoff = gr.Dropdown(label="Handoff", value="", choices=[
            ANY, ("Handed to a person", "any"), ("Never handed off", "none"),
            *[(r.replace("_", " "), r) for r in HANDOFF_REASONS]])
        status = gr.Dropdown(label="Status", choices=[ANY, *[(s, s) for s in STATUSES]], value="")
        page = gr.Number(label="Page", value=1, precision=0, minimum=1)
        search = gr.Button("Search", variant="primary", scale=0)
    found = gr.Markdown()
    table = gr.Dataframe(headers=HEADERS, interactive=False, wrap=True, max_height=420,
                         label="Conversations, most recent first (click a row to read it)")
    transcript = gr.Markdown()
    with gr.Row():
        export = gr.Button("Download matching conversations (JSONL)", scale=0)
        download = gr.File(label="Export", interactive=False, visible=False)
    filters = [text, start, end, decision, feedback, handoff, status]
    private = {"api_visibility": "private"}

    def parse(*values: Any) -> TranscriptFilter:
        return TranscriptFilter.parse(*[v or None for v in values])

    @ctx.guarded("conversations")
    def run_search(
        actor: StaffUser, q: str, first: str, last: str, dec: str, rated: str, handed: str,
        state: str, number: float | None,
    ) -> list[Any]:
        number = int(number or 1)
        result = transcripts.search(actor, parse(q, first, last, dec, rated, handed, state),
                                    page=number, per_page=PER_PAGE)
        pages = max(1, -(-result["total"] // PER_PAGE))
        summary = f"{result['total']} conversation(s) · page {number} of {pages}"
        return [summary_rows(result), summary, ""]

    outputs = [table, found, transcript]
    gr.on([search.click, text.submit, start.submit, end.submit, page.submit], run_search,
          [*filters, page], outputs, **private)
    ctx.on_load(run_search, [*filters, page], outputs)

    @ctx.guarded("conversations")
    def open_conversation(actor: StaffUser, evt: gr.SelectData) -> str:
        return transcript_markdown(transcripts.conversation(actor, str(evt.row_value[0])))

    table.select(open_conversation, None, [transcript], **private)

    @ctx.guarded("conversations")
    def export_jsonl(
        actor: StaffUser, q: str, first: str, last: str, dec: str, rated: str, handed: str,
        state: str,
    ) -> Any:
        lines = transcripts.export_lines(actor, parse(q, first, last, dec, rated, handed, state))
        path = Path(tempfile.mkdtemp(prefix="conversations-")) / "conversations.jsonl"
        with path.open("w", encoding="utf-8") as out:
            out.writelines(lines)
        return gr.File(value=str(path), visible=True)

    export.click(export_jsonl, filters, [download], **private)
