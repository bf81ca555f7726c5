"""The console's knowledge-base tab: entries and documents (drafts), try a question, pending
changes and publish, versions with diff and rollback, import/export, and the audit log.

Every handler calls ``staff.kb`` (``chatbot.staff.kb_editor.KnowledgeEditor``), the functions
the staff API calls, and answers each action with a line saying what happened and what is live.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from chatbot.staff.accounts import StaffUser
from ui.staff_console import regression_tab
from ui.staff_console.context import ConsoleContext
from ui.staff_console.kb_format import (
    diff_markdown,
    entry_form,
    history_markdown,
    pending_markdown,
    pending_status,
    publish_message,
    try_markdown,
    version_number,
)

ENTRY_HEADERS = ["id", "question", "tags", "paraphrases", "status"]
DOC_HEADERS = ["id", "title", "format", "characters", "status"]
HIT_HEADERS = ["rank", "id", "kind", "title", "score", "dense", "lead", "keyword"]
VERSION_HEADERS = ["version", "published at", "author", "note"]
AUDIT_HEADERS = ["at", "who", "action", "target", "detail"]
FILE_TYPES = [".jsonl", ".csv", ".md", ".txt", ".html"]
PUBLISH_WAIT = 30.0  # seconds the console waits to say "live now"
ALL_TAGS = ("All tags", "")


def build(ctx: ConsoleContext) -> None:
    kb = ctx.staff.kb
    with gr.Tabs():
        with gr.Tab("Entries") as entries_tab:
            with gr.Row():
                search = gr.Textbox(label="Search", placeholder="words in the question, answer or "
                                    "paraphrases", scale=3)
                tag = gr.Dropdown(label="Tag", choices=[ALL_TAGS], value="", scale=1)
                refresh = gr.Button("Refresh", scale=0)
            table = gr.Dataframe(headers=ENTRY_HEADERS, interactive=False, wrap=True,
                                 label="Draft entries (click a row to edit)", max_height=360)
            editing = gr.State(None)
            with gr.Row(equal_height=True):
                with gr.Column():
                    entry_id = gr.Textbox(label="Id", placeholder="e.g. returns-window")
                    question = gr.Textbox(label="Question")
                    tags = gr.Textbox(label="Tags (comma-separated)", placeholder="returns, orders")
                    subject = gr.Textbox(label="Subject (optional: the product, place or plan "
                                         "it is about)", placeholder="e.g. Trailblazer 40 backpack")
                with gr.Column():
                    answer = gr.Textbox(label="Answer", lines=4)
                    paraphrases = gr.Textbox(label="Paraphrases (one per line)", lines=3)
            with gr.Row():
                save = gr.Button("Save draft", variant="primary")
                new = gr.Button("New entry")
                delete = gr.Button("Delete", variant="stop")
            entry_status = gr.Markdown()
            with gr.Accordion("History of this entry", open=False):
                history = gr.Markdown("Select an entry to see its revisions.")
        with gr.Tab("Documents") as docs_tab:
            doc_table = gr.Dataframe(headers=DOC_HEADERS, interactive=False,
                                     label="Draft documents (click a row to edit)", max_height=300)
            doc_editing = gr.State(None)
            with gr.Group():
                doc_id = gr.Textbox(label="Id", placeholder="e.g. care-guide")
                doc_title = gr.Textbox(label="Title")
                doc_format = gr.Radio(["md", "txt"], value="md", label="Format (Markdown or text)")
                doc_text = gr.Textbox(label="Text", lines=12)
            with gr.Row():
                doc_save = gr.Button("Save draft", variant="primary")
                doc_new = gr.Button("New document")
                doc_delete = gr.Button("Delete", variant="stop")
            doc_status = gr.Markdown()
        with gr.Tab("Try a question"):
            with gr.Row():
                try_text = gr.Textbox(label="A customer's message", scale=4,
                                      placeholder="How long does delivery take?")
                try_button = gr.Button("Try", variant="primary", scale=0)
            try_result = gr.Markdown()
            hits = gr.Dataframe(headers=HIT_HEADERS, interactive=False, label="Ranked hits")
        with gr.Tab("Publish") as publish_tab:
            pending = gr.Markdown()
            note = gr.Textbox(label="Note (what changed)", placeholder="e.g. new returns policy")
            with gr.Row():
                publish = gr.Button("Publish", variant="primary")
                pending_refresh = gr.Button("Refresh")
            publish_status = gr.Markdown()
            check_view = regression_tab.publish_check(ctx, note, publish_tab)
        with gr.Tab("Regression"):
            regression_tab.build(ctx)
        with gr.Tab("Versions") as versions_tab:
            versions = gr.Dataframe(headers=VERSION_HEADERS, interactive=False, max_height=300,
                                    label="Published versions (click one to compare it)")
            with gr.Row():
                from_v = gr.Number(label="From version", precision=0, minimum=0)
                to_v = gr.Number(label="To version", precision=0, minimum=0)
                compare = gr.Button("Compare")
                view = gr.Button("View 'To' version")
                rollback = gr.Button("Roll back to 'To' version…", variant="stop")
            with gr.Row(visible=False) as confirm_row:
                confirm_text = gr.Markdown()
                confirm = gr.Button("Confirm rollback", variant="stop", scale=0)
                cancel = gr.Button("Cancel", scale=0)
            version_view = gr.Markdown()
        with gr.Tab("Import / export"):
            files = gr.File(label="Files to import as drafts", file_count="multiple",
                            file_types=FILE_TYPES)
            replace = gr.Checkbox(label="Replace: entries not in these files are deleted from the draft")
            import_button = gr.Button("Import as drafts", variant="primary")
            import_status = gr.Markdown()
            source = gr.Radio(["Draft", "Live version"], value="Draft", label="Export")
            export_button = gr.Button("Export JSONL")
            download = gr.File(label="Download", interactive=False)
        with gr.Tab("Audit log") as audit_tab:
            with gr.Row():
                action = gr.Textbox(label="Action starts with", placeholder="entry. / kb.publish")
                target = gr.Textbox(label="Target (entry id, version …)")
                audit_refresh = gr.Button("Refresh", scale=0)
            audit = gr.Dataframe(headers=AUDIT_HEADERS, interactive=False, wrap=True, max_height=480)

    form = [entry_id, question, answer, paraphrases, tags, subject]
    entry_lists = [table, tag]

    def entry_rows(actor: StaffUser, text: str, tag_value: str) -> list[Any]:
        status = pending_status(kb.changes(actor))
        rows = [[e["id"], e["question"], ", ".join(e["tags"]), len(e["paraphrases"]),
                 status.get(e["id"], "")] for e in kb.entries(actor, search=text, tag=tag_value)]
        choices = [ALL_TAGS] + [(f"{t} ({n})", t) for t, n in kb.tags(actor).items()]
        return [rows, gr.Dropdown(choices=choices)]

    def doc_rows(actor: StaffUser) -> list[list[Any]]:
        status = pending_status(kb.changes(actor))
        return [[d["id"], d["title"], d["format"], d["chars"], status.get(d["id"], "")]
                for d in kb.documents(actor)]

    def version_rows(actor: StaffUser) -> list[list[Any]]:
        return [[v["version"], v["published_at"][:19].replace("T", " "), v["author"], v["note"]]
                for v in kb.versions(actor)]

    def audit_rows(actor: StaffUser, prefix: str = "", target_id: str = "") -> list[list[Any]]:
        events = ctx.staff.audit.events(actor, action_prefix=prefix.strip(), target=target_id.strip())
        return [[e.at.isoformat(timespec="seconds").replace("T", " "), e.actor, e.action, e.target,
                 json.dumps(e.detail, ensure_ascii=False)[:400]] for e in events]

    # --- loading and lists ------------------------------------------------------------

    @ctx.guarded("kb")
    def load(actor: StaffUser) -> list[Any]:
        return [*entry_rows(actor, "", ""), doc_rows(actor), pending_markdown(kb.changes(actor)),
                version_rows(actor), audit_rows(actor)]

    # Fills the tables when the console opens (skipped for roles without the kb area).
    ctx.on_load(load, [], [table, tag, doc_table, pending, versions, audit])

    # Each sub-tab shows fresh data when opened: another editor may have changed things.
    @ctx.guarded("kb")
    def show_docs(actor: StaffUser) -> list[list[Any]]:
        return doc_rows(actor)

    docs_tab.select(show_docs, None, [doc_table], api_visibility="private")

    @ctx.guarded("kb")
    def show_versions(actor: StaffUser) -> list[list[Any]]:
        return version_rows(actor)

    versions_tab.select(show_versions, None, [versions], api_visibility="private")

    @ctx.guarded("kb")
    def filter_entries(actor: StaffUser, text: str, tag_value: str) -> list[Any]:
        return entry_rows(actor, text, tag_value)

    gr.on([search.submit, tag.input, refresh.click, entries_tab.select], filter_entries,
          [search, tag], entry_lists, api_visibility="private")

    # --- entries ----------------------------------------------------------------------

    @ctx.guarded("kb")
    def pick(actor: StaffUser, evt: gr.SelectData) -> list[Any]:
        entry = kb.entry(actor, str(evt.row_value[0]))
        return [*entry_form(entry), entry["id"], "", history_markdown(kb.history(actor, entry["id"]))]

    table.select(pick, None, [*form, editing, entry_status, history], api_visibility="private")

    @ctx.guarded("kb")
    def save_entry(
        actor: StaffUser, current: Any, eid: str, q: str, a: str, para: str, tag_text: str,
        subject_text: str,
    ) -> list[Any]:
        body = {"id": eid.strip(), "question": q, "answer": a,
                "paraphrases": [p for p in para.splitlines() if p.strip()],
                "tags": [t.strip() for t in tag_text.split(",") if t.strip()],
                "subject": subject_text.strip()}
        if current:
            entry = kb.update_entry(actor, current, {**kb.entry(actor, current), **body, "id": current})
            message = f"Saved **{current}** as a draft. Publish to make it live."
        else:
            entry = kb.create_entry(actor, body)
            message = f"Created **{entry['id']}** as a draft. Publish to make it live."
        gr.Info(message.replace("**", ""))
        return [*entry_form(entry), entry["id"], message,
                history_markdown(kb.history(actor, entry["id"])), *entry_rows(actor, "", "")]

    save.click(save_entry, [editing, *form], [*form, editing, entry_status, history, *entry_lists],
               api_visibility="private")

    @ctx.guarded("kb")
    def new_entry(actor: StaffUser) -> list[Any]:
        return [gr.Textbox(value="", interactive=True), "", "", "", "", "", None,
                "New entry: fill in the form and save.", ""]

    new.click(new_entry, None, [*form, editing, entry_status, history], api_visibility="private")

    @ctx.guarded("kb")
    def delete_entry(actor: StaffUser, current: Any) -> list[Any]:
        if not current:
            raise gr.Error("Select an entry in the table first.")
        kb.delete_entry(actor, current)
        message = (f"Deleted **{current}** from the draft; customers still get it until you "
                   "publish. Its history keeps every revision.")
        gr.Info(message.replace("**", ""))
        return [gr.Textbox(value="", interactive=True), "", "", "", "", "", None, message, "",
                *entry_rows(actor, "", "")]

    delete.click(delete_entry, [editing], [*form, editing, entry_status, history, *entry_lists],
                 api_visibility="private")

    # --- documents --------------------------------------------------------------------

    doc_form = [doc_id, doc_title, doc_format, doc_text]

    @ctx.guarded("kb")
    def pick_doc(actor: StaffUser, evt: gr.SelectData) -> list[Any]:
        doc = kb.document(actor, str(evt.row_value[0]))
        return [gr.Textbox(value=doc["id"], interactive=False), doc["title"], doc["format"],
                doc["text"], doc["id"], ""]

    doc_table.select(pick_doc, None, [*doc_form, doc_editing, doc_status], api_visibility="private")

    @ctx.guarded("kb")
    def save_doc(actor: StaffUser, current: Any, did: str, title: str, fmt: str, text: str) -> list[Any]:
        body = {"id": did.strip(), "title": title, "text": text, "format": fmt}
        if current:
            doc = kb.update_document(actor, current, {**body, "id": current})
        else:
            doc = kb.create_document(actor, body)
        message = f"Saved document **{doc['id']}** as a draft. Publish to make it live."
        gr.Info(message.replace("**", ""))
        return [gr.Textbox(value=doc["id"], interactive=False), doc["title"], doc["format"],
                doc["text"], doc["id"], message, doc_rows(actor)]

    doc_save.click(save_doc, [doc_editing, *doc_form],
                   [*doc_form, doc_editing, doc_status, doc_table], api_visibility="private")

    @ctx.guarded("kb")
    def new_doc(actor: StaffUser) -> list[Any]:
        return [gr.Textbox(value="", interactive=True), "", "md", "", None, "New document."]

    doc_new.click(new_doc, None, [*doc_form, doc_editing, doc_status], api_visibility="private")

    @ctx.guarded("kb")
    def delete_doc(actor: StaffUser, current: Any) -> list[Any]:
        if not current:
            raise gr.Error("Select a document in the table first.")
        kb.delete_document(actor, current)
        message = f"Deleted document **{current}** from the draft; it stays live until you publish."
        gr.Info(message.replace("**", ""))
        return [gr.Textbox(value="", interactive=True), "", "md", "", None, message, doc_rows(actor)]

    doc_delete.click(delete_doc, [doc_editing], [*doc_form, doc_editing, doc_status, doc_table],
                     api_visibility="private")

    # --- try, publish -----------------------------------------------------------------

    @ctx.guarded("kb")
    def try_question(actor: StaffUser, text: str) -> list[Any]:
        result = kb.try_question(actor, text)
        rows = [[h["rank"], h["id"], h["kind"], h["title"], h["score"], h["signals"]["dense"],
                 h["signals"]["lead"], h["signals"]["keyword"]] for h in result["hits"]]
        return [try_markdown(result), rows]

    gr.on([try_text.submit, try_button.click], try_question, [try_text], [try_result, hits],
          api_visibility="private")

    @ctx.guarded("kb")
    def show_pending(actor: StaffUser) -> str:
        return pending_markdown(kb.changes(actor))

    gr.on([pending_refresh.click, publish_tab.select], show_pending, None, [pending],
          api_visibility="private")

    @ctx.guarded("kb")
    def do_publish(actor: StaffUser, note_text: str) -> list[Any]:
        result = kb.publish(actor, note=note_text, wait=PUBLISH_WAIT)
        message = publish_message(result)
        gr.Info(message.replace("**", ""))
        return [message + regression_tab.after_publish(result), pending_markdown(kb.changes(actor)),
                "", version_rows(actor), *entry_rows(actor, "", ""), doc_rows(actor), ""]

    publish.click(do_publish, [note], [publish_status, pending, note, versions, *entry_lists,
                                       doc_table, check_view], api_visibility="private")

    # --- versions ---------------------------------------------------------------------

    @ctx.guarded("kb")
    def pick_version(actor: StaffUser, evt: gr.SelectData) -> list[Any]:
        picked = int(evt.row_value[0])
        return [max(picked - 1, 0), picked]

    versions.select(pick_version, None, [from_v, to_v], api_visibility="private")

    @ctx.guarded("kb")
    def compare_versions(actor: StaffUser, a: Any, b: Any) -> str:
        a, b = version_number(a, "From"), version_number(b, "To")
        return diff_markdown(kb.diff(actor, a, b), f"Version {b} compared with version {a}")

    compare.click(compare_versions, [from_v, to_v], [version_view], api_visibility="private")

    @ctx.guarded("kb")
    def view_version(actor: StaffUser, b: Any) -> str:
        info = kb.version(actor, version_number(b, "To"))
        lines = [f"### Version {info['version']} · {info['published_at'][:19]} · {info['author']}",
                 info["note"] or "", ""]
        lines += [f"- **{r['id']}** ({r.get('kind', 'faq')}): {r.get('question') or r.get('title')}"
                  for r in info["records"]]
        return "\n".join(lines)

    view.click(view_version, [to_v], [version_view], api_visibility="private")

    @ctx.guarded("kb")
    def ask_rollback(actor: StaffUser, b: Any) -> list[Any]:
        target_version = version_number(b, "To")
        live = kb.changes(actor)
        diff = kb.diff(actor, live["version"], target_version)
        text = (f"Roll back to version **{target_version}**? A new version equal to it goes live "
                f"at once ({len(diff['added'])} added, {len(diff['changed'])} changed, "
                f"{len(diff['removed'])} removed compared with the live version {live['version']}).")
        if live["count"]:
            text += (f" **{live['count']} unpublished draft change(s) will be replaced** (they stay "
                     "in each entry's history).")
        return [gr.Row(visible=True), text]

    rollback.click(ask_rollback, [to_v], [confirm_row, confirm_text], api_visibility="private")

    @ctx.guarded("kb")
    def do_rollback(actor: StaffUser, b: Any) -> list[Any]:
        result = kb.rollback(actor, version_number(b, "To"), wait=PUBLISH_WAIT)
        live = "live now" if result["live"] else "being indexed; live within seconds"
        message = (f"Rolled back: version **{result['version']}** equals version "
                   f"{result['rolled_back_to']} and is {live}.")
        gr.Info(message.replace("**", ""))
        return [gr.Row(visible=False), message, version_rows(actor),
                pending_markdown(kb.changes(actor)), *entry_rows(actor, "", ""), doc_rows(actor)]

    confirm.click(do_rollback, [to_v], [confirm_row, version_view, versions, pending,
                                        *entry_lists, doc_table], api_visibility="private")

    @ctx.guarded("kb")
    def cancel_rollback(actor: StaffUser) -> Any:
        return gr.Row(visible=False)

    cancel.click(cancel_rollback, None, [confirm_row], api_visibility="private")

    # --- files, audit -----------------------------------------------------------------

    @ctx.guarded("kb")
    def import_files(actor: StaffUser, paths: Any, replace_all: bool) -> list[Any]:
        result = kb.import_files(actor, list(paths or []), replace=replace_all)
        message = (f"Imported {result['records']} record(s) from {result['files']} file(s) as "
                   f"drafts: {result['created']} new, {result['updated']} updated, "
                   f"{result['unchanged']} unchanged, {result['deleted']} deleted. "
                   "Check **Publish** and publish to make them live.")
        gr.Info(message.replace("**", ""))
        return [message, None, *entry_rows(actor, "", ""), doc_rows(actor)]

    import_button.click(import_files, [files, replace], [import_status, files, *entry_lists,
                                                          doc_table], api_visibility="private")

    @ctx.guarded("kb")
    def export(actor: StaffUser, which: str) -> str:
        version = kb.changes(actor)["version"] if which == "Live version" else None
        name = f"kb-v{version}.jsonl" if version is not None else "kb-draft.jsonl"
        path = Path(tempfile.mkdtemp(prefix="kb-export-")) / name
        path.write_text(kb.export_jsonl(actor, version), encoding="utf-8")
        return str(path)

    export_button.click(export, [source], [download], api_visibility="private")

    @ctx.guarded("kb")
    def show_audit(actor: StaffUser, prefix: str, target_id: str) -> list[list[Any]]:
        return audit_rows(actor, prefix, target_id)

    gr.on([audit_refresh.click, action.submit, target.submit, audit_tab.select], show_audit, [action, target],
          [audit], api_visibility="private")
