"""The console's unanswered-questions tab: groups of similar questions the bot could not answer,
largest first; pick one to see its examples and the nearest entry, then turn it into a new draft
entry, add it as a paraphrase of an entry, or dismiss it, each in one click.

Every handler calls ``staff.unanswered`` (``chatbot.staff.unanswered.Unanswered``), the
functions the staff API calls.
"""

from __future__ import annotations

import html
from typing import Any

import gradio as gr

from chatbot.errors import InvalidInput
from chatbot.staff.accounts import StaffUser
from ui.staff_console.context import ConsoleContext

HEADERS = ["count", "question", "reasons", "last seen", "nearest entry", "score"]
REASON_LABELS = {
    "no_answer": "no answer",
    "low_confidence": "low confidence",
    "repeated_clarification": "repeated clarification",
    "action_request": "asked the bot to act",
    "customer_request": "asked for a person",
    "thumbs_down": "thumbs down",
    "model_abstained": "model could not answer",
}


def group_rows(groups: list[dict[str, Any]]) -> list[list[Any]]:
    return [
        [
            g["count"],
            g["question"],
            ", ".join(f"{REASON_LABELS.get(r, r)} ×{n}" for r, n in g["reasons"].items()),
            g["last_seen"][:16].replace("T", " "),
            g["nearest"]["id"] if g["nearest"] else "",
            g["nearest"]["score"] if g["nearest"] else "",
        ]
        for g in groups
    ]


def group_markdown(group: dict[str, Any]) -> str:
    examples = "\n".join(f"- {html.escape(text)}" for text in group["examples"])
    nearest = group["nearest"]
    near = (
        f"**Nearest entry:** `{nearest['id']}`: {html.escape(nearest['question'])} "
        f"(score {nearest['score']:.2f})"
        if nearest else "**Nearest entry:** none (the knowledge base has no FAQ entries)."
    )
    return (
        f"### {html.escape(group['question'])}\n"
        f"Asked **{group['count']}** times between {group['first_seen'][:10]} and "
        f"{group['last_seen'][:10]}, in {len(group['conversation_ids'])} conversation(s).\n\n"
        f"**Examples:**\n{examples}\n\n{near}"
    )


def calibration_markdown(report: dict[str, Any]) -> str:
    """The live version's operating point in a sentence or two."""
    marked = report.get("marked_out_of_scope", 0)
    later = f" {marked} question(s) marked out of scope count at the next publish."
    if not report.get("fitted"):
        return ("**How sure the bot is:** the live version uses the built-in calibration (its "
                "entries need paraphrases to be calibrated on their own)." + later)
    point = report.get("operating_point") or {}

    def pct(key: str) -> str:
        value = point.get(key)
        return "–" if value is None else f"{value:.0%}"

    return (
        f"**How sure the bot is** (version {report.get('kb_version')}, calibrated on "
        f"{report['answerable_cases']} held-out phrasings and {report['unanswerable_cases']} "
        f"unanswerable messages): it answers at a score of {point.get('answer_threshold')} or "
        f"more, which there gives answer precision {pct('answer_precision')}, answer rate "
        f"{pct('answer_rate')} and out-of-scope recall {pct('oos_recall')}." + later
    )


def build(ctx: ConsoleContext) -> None:
    unanswered = ctx.staff.unanswered
    gr.Markdown(
        "Questions the bot could not answer (handed to a person, asked for a person, clarified "
        "again and again, or rated down), grouped by meaning. Pick a group, then answer it with "
        "a new entry, add it to an existing entry, or dismiss it. Entries are drafts until "
        "published in the Knowledge base tab."
    )
    confidence = gr.Markdown()
    with gr.Row():
        start = gr.Textbox(label="From (YYYY-MM-DD)", placeholder="all time", scale=1)
        end = gr.Textbox(label="To (YYYY-MM-DD)", placeholder="today", scale=1)
        refresh = gr.Button("Refresh", scale=0)
    table = gr.Dataframe(headers=HEADERS, interactive=False, wrap=True, max_height=360,
                         label="Groups, largest first (click a row)")
    groups = gr.State([])
    chosen = gr.State(None)
    details = gr.Markdown("Pick a group above.")
    with gr.Row(equal_height=True):
        with gr.Column():
            gr.Markdown("**New entry** from this group")
            entry_id = gr.Textbox(label="Id")
            question = gr.Textbox(label="Question")
            answer = gr.Textbox(label="Answer", lines=4)
            paraphrases = gr.Textbox(label="Paraphrases (one per line)", lines=3)
            tags = gr.Textbox(label="Tags (comma-separated)")
            create = gr.Button("Create draft entry", variant="primary")
        with gr.Column():
            gr.Markdown("**Or** add the question to an existing entry")
            target = gr.Textbox(label="Entry id", placeholder="the nearest entry")
            wording = gr.Textbox(label="Paraphrase")
            add = gr.Button("Add as paraphrase")
            gr.Markdown("**Or** mark it out of scope (the bot learns not to answer such "
                        "questions at the next publish), or dismiss it (spam, handled)")
            with gr.Row():
                out_of_scope = gr.Button("Out of scope")
                dismiss = gr.Button("Dismiss", variant="stop")
    status = gr.Markdown()
    form = [entry_id, question, answer, paraphrases, tags, target, wording]
    private = {"api_visibility": "private"}

    def listing(actor: StaffUser, first: str, last: str) -> list[Any]:
        found = [g.to_dict() for g in unanswered.groups(actor, first or None, last or None)]
        return [group_rows(found), found]

    @ctx.guarded("kb")
    def show(actor: StaffUser, first: str, last: str) -> list[Any]:
        return [*listing(actor, first, last), None, "Pick a group above.", *[""] * len(form), ""]

    outputs = [table, groups, chosen, details, *form, status]
    gr.on([refresh.click, start.submit, end.submit], show, [start, end], outputs, **private)
    ctx.on_load(show, [start, end], outputs)

    @ctx.guarded("kb")
    def show_calibration(actor: StaffUser) -> str:
        return calibration_markdown(unanswered.calibration(actor))

    refresh.click(show_calibration, None, [confidence], **private)
    ctx.on_load(show_calibration, [], [confidence])

    @ctx.guarded("kb")
    def pick(actor: StaffUser, found: list[dict[str, Any]], evt: gr.SelectData) -> list[Any]:
        group = found[evt.index[0]]
        others = [e for e in group["examples"] if e != group["question"]]
        nearest = group["nearest"]
        return [
            group, group_markdown(group), group["suggested_id"], group["question"], "",
            "\n".join(others), "", nearest["id"] if nearest else "", group["question"],
        ]

    table.select(pick, [groups], [chosen, details, *form], **private)

    def need(group: dict[str, Any] | None) -> dict[str, Any]:
        if not group:
            raise InvalidInput("Pick a group in the table first.")
        return group

    def after(actor: StaffUser, first: str, last: str, message: str) -> list[Any]:
        gr.Info(message.replace("**", ""))
        return [*listing(actor, first, last), None, "Pick a group above.", *[""] * len(form),
                message]

    @ctx.guarded("kb")
    def create_entry(
        actor: StaffUser, group: Any, first: str, last: str, eid: str, q: str, a: str,
        para: str, tag_text: str,
    ) -> list[Any]:
        group = need(group)
        result = unanswered.to_entry(actor, group["message_ids"], {
            "id": (eid or "").strip(), "question": q, "answer": a,
            "paraphrases": [p for p in (para or "").splitlines() if p.strip()],
            "tags": [t.strip() for t in (tag_text or "").split(",") if t.strip()],
        })
        return after(actor, first, last, f"Created the draft entry **{result['entry']['id']}** "
                     f"for {result['resolved']} question(s). Publish to make it live.")

    create.click(create_entry, [chosen, start, end, entry_id, question, answer, paraphrases, tags],
                 outputs, **private)

    @ctx.guarded("kb")
    def add_paraphrase(
        actor: StaffUser, group: Any, first: str, last: str, eid: str, text: str
    ) -> list[Any]:
        group = need(group)
        result = unanswered.to_paraphrase(actor, group["message_ids"], eid, text)
        return after(actor, first, last, f"Added “{html.escape(text or group['question'])}” to "
                     f"**{result['entry']['id']}** ({result['resolved']} question(s) resolved). "
                     "Publish to make it live.")

    add.click(add_paraphrase, [chosen, start, end, target, wording], outputs, **private)

    @ctx.guarded("kb")
    def dismiss_group(actor: StaffUser, group: Any, first: str, last: str) -> list[Any]:
        group = need(group)
        result = unanswered.dismiss(actor, group["message_ids"])
        return after(actor, first, last, f"Dismissed {result['resolved']} question(s).")

    dismiss.click(dismiss_group, [chosen, start, end], outputs, **private)

    @ctx.guarded("kb")
    def out_of_scope_group(actor: StaffUser, group: Any, first: str, last: str) -> list[Any]:
        group = need(group)
        result = unanswered.mark_out_of_scope(actor, group["message_ids"])
        return after(actor, first, last, f"Marked {result['resolved']} question(s) out of scope; "
                     "the next published version is calibrated with them.")

    out_of_scope.click(out_of_scope_group, [chosen, start, end], outputs, **private)
