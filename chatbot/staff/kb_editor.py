"""The knowledge-base editor: drafts, pending changes, publish, versions, diff and rollback.

Every public method takes the acting staff user first and checks the "kb" area itself; the
staff API and the console call these same methods. Edits change the draft only (``kb_entries``,
each change a revision in ``kb_revisions``); customers are answered from the published version
until ``publish``, after which the search index is rebuilt at once in the background
(``kb_live.IndexWarmer``). Every change is written to the audit log with who and what.
Entries come and go in the JSONL shape of CONTRACT.md; documents as ``{"id", "kind":
"document", "title", "text", "format"}``. This module holds the drafts; publishing, versions
and the regression gate are ``kb_versions.KnowledgeVersions``, which the editor inherits.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from chatbot.errors import Conflict, InvalidInput, NotFound
from chatbot.service import ChatService
from chatbot.staff import kb_records as rec
from chatbot.staff.accounts import StaffUser, require
from chatbot.staff.audit import AuditLog
from chatbot.staff.kb_live import IndexWarmer
from chatbot.staff.kb_versions import AREA, KnowledgeVersions
from chatbot.staff.regression import RegressionSet
from knowledge.formats import read_files
from knowledge.records import Document, Entry, Record
from knowledge.retrieval import Retriever
from knowledge.store import KnowledgeStore

MAX_BULK = 10_000


class KnowledgeEditor(KnowledgeVersions):
    def __init__(
        self, knowledge: KnowledgeStore, retriever: Retriever, chat: ChatService, audit: AuditLog,
        regression: RegressionSet | None = None,
    ) -> None:
        self.knowledge = knowledge
        self.retriever = retriever
        self.chat = chat
        self.audit = audit
        self.warmer = IndexWarmer(retriever)
        self.regression = regression

    # --- FAQ entries (drafts) ---------------------------------------------------------

    def entries(self, actor: StaffUser, *, search: str = "", tag: str = "") -> list[dict[str, Any]]:
        """Draft FAQ entries whose text holds every search word (and that carry ``tag``)."""
        require(actor, AREA)
        terms = rec.search_terms(search)
        return [
            r.to_dict()
            for r in self.knowledge.drafts()
            if isinstance(r, Entry) and rec.matches(r, terms, tag.strip())
        ]

    def tags(self, actor: StaffUser) -> dict[str, int]:
        """Each tag of the draft entries with the number of entries carrying it."""
        require(actor, AREA)
        return rec.tag_counts(self.knowledge.drafts())

    def entry(self, actor: StaffUser, entry_id: str) -> dict[str, Any]:
        require(actor, AREA)
        return self._entry(entry_id).to_dict()

    def create_entry(self, actor: StaffUser, entry: Mapping[str, Any]) -> dict[str, Any]:
        """A new draft entry; Conflict when the id is taken."""
        require(actor, AREA)
        named = entry.get("id") if isinstance(entry, Mapping) else None
        record = rec.entry_from_input(entry, where=f"The entry '{named}'" if named else "The entry")
        rec.check_new_id(record.id)
        self._refuse_taken(record.id)
        self.knowledge.save([record], author=actor.email)
        self.audit.record(actor, "entry.create", record.id, question=record.question)
        return record.to_dict()

    def update_entry(
        self, actor: StaffUser, entry_id: str, entry: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Replace a draft entry's content (the body's id, if given, must be ``entry_id``)."""
        require(actor, AREA)
        if not isinstance(entry, Mapping):
            raise InvalidInput("The entry must be a JSON object with question and answer.")
        body_id = entry.get("id")
        if body_id is not None and str(body_id).strip() != entry_id:
            raise InvalidInput(
                f"The body's id '{body_id}' differs from the entry '{entry_id}' in the address; "
                "ids cannot be changed: create a new entry and delete this one instead."
            )
        before = self._entry(entry_id)
        record = rec.entry_from_input({**entry, "id": entry_id}, where=f"The entry '{entry_id}'")
        fields = rec.diff_records([before], [record])["changed"]
        if fields:
            self.knowledge.save([record], author=actor.email)
            self.audit.record(actor, "entry.update", entry_id, fields=fields[0]["fields"])
        return record.to_dict()

    def delete_entry(self, actor: StaffUser, entry_id: str) -> None:
        require(actor, AREA)
        record = self._entry(entry_id)
        self.knowledge.delete(entry_id, author=actor.email)
        self.audit.record(actor, "entry.delete", entry_id, question=record.question)

    def add_paraphrase(self, actor: StaffUser, entry_id: str, text: str) -> dict[str, Any]:
        """Append a paraphrase to a draft entry (nothing changes when it is already there)."""
        require(actor, AREA)
        text = rec.paraphrase_text(text)
        entry = self._entry(entry_id)
        known = {v.casefold() for v in entry.variants()}
        if text.casefold() in known:
            return entry.to_dict()
        updated = Entry(entry.id, entry.question, entry.answer, (*entry.paraphrases, text),
                        entry.tags, dict(entry.extra))
        self.knowledge.save([updated], author=actor.email)
        self.audit.record(actor, "entry.paraphrase", entry_id, paraphrase=text)
        return updated.to_dict()

    def bulk_upsert(self, actor: StaffUser, entries: Sequence[Mapping[str, Any]]) -> dict[str, int]:
        """Create or update many entries in one transaction: one bad entry saves none."""
        require(actor, AREA)
        if not isinstance(entries, Sequence) or isinstance(entries, str | bytes):
            raise InvalidInput("Send a JSON list of entries.")
        if not entries:
            raise InvalidInput("The list of entries is empty; nothing was saved.")
        if len(entries) > MAX_BULK:
            raise InvalidInput(f"{len(entries):,} entries in one request; the limit is {MAX_BULK:,}.")
        try:
            records = self._bulk_records(entries)
        except InvalidInput as exc:
            raise InvalidInput(exc.message + " Nothing was saved.") from None
        summary, _ = self.knowledge.save(records, author=actor.email)
        self.audit.record(actor, "entry.bulk", f"{len(records)} entries", created=summary.created,
                          updated=summary.updated, unchanged=summary.unchanged)
        return {"created": summary.created, "updated": summary.updated,
                "unchanged": summary.unchanged}

    def history(self, actor: StaffUser, record_id: str) -> list[dict[str, Any]]:
        """Every revision of an entry or document, oldest first (also of deleted ones)."""
        require(actor, AREA)
        rows = self.knowledge.history(record_id)
        if not rows:
            raise NotFound(f"There is no entry or document with id '{record_id}'.")
        return [{**row, "created_at": rec.iso(row["created_at"]),
                 "data": {"id": record_id, **row["data"]}} for row in rows]

    # --- documents --------------------------------------------------------------------

    def documents(self, actor: StaffUser, *, search: str = "") -> list[dict[str, Any]]:
        require(actor, AREA)
        terms = rec.search_terms(search)
        return [
            {"id": r.id, "title": r.title, "format": r.format, "chars": len(r.text)}
            for r in self.knowledge.drafts()
            if isinstance(r, Document) and rec.matches(r, terms, "")
        ]

    def document(self, actor: StaffUser, document_id: str) -> dict[str, Any]:
        require(actor, AREA)
        return self._document(document_id).to_dict()

    def create_document(self, actor: StaffUser, document: Mapping[str, Any]) -> dict[str, Any]:
        require(actor, AREA)
        named = document.get("id") if isinstance(document, Mapping) else None
        record = rec.document_from_input(
            document, where=f"The document '{named}'" if named else "The document")
        rec.check_new_id(record.id)
        self._refuse_taken(record.id)
        self.knowledge.save([record], author=actor.email)
        self.audit.record(actor, "document.create", record.id, title=record.title)
        return record.to_dict()

    def update_document(
        self, actor: StaffUser, document_id: str, document: Mapping[str, Any]
    ) -> dict[str, Any]:
        require(actor, AREA)
        if not isinstance(document, Mapping):
            raise InvalidInput("The document must be a JSON object with title and text.")
        if document.get("id") not in (None, document_id):
            raise InvalidInput(f"The body's id '{document.get('id')}' differs from the document "
                               f"'{document_id}' in the address; ids cannot be changed.")
        before = self._document(document_id)
        record = rec.document_from_input({**document, "id": document_id},
                                         where=f"The document '{document_id}'")
        changed = rec.diff_records([before], [record])["changed"]
        if changed:
            self.knowledge.save([record], author=actor.email)
            self.audit.record(actor, "document.update", document_id, fields=changed[0]["fields"])
        return record.to_dict()

    def delete_document(self, actor: StaffUser, document_id: str) -> None:
        require(actor, AREA)
        record = self._document(document_id)
        self.knowledge.delete(document_id, author=actor.email)
        self.audit.record(actor, "document.delete", document_id, title=record.title)

    # --- files ------------------------------------------------------------------------

    def import_files(
        self, actor: StaffUser, paths: Sequence[str | Path], *, replace: bool = False
    ) -> dict[str, int]:
        """Files (.jsonl, .csv, .md, .txt, .html) become drafts; all-or-nothing. ``replace``:
        entries not in the files are deleted from the draft (nothing is live until publish)."""
        require(actor, AREA)
        if not paths:
            raise InvalidInput("Choose at least one file to import.")
        try:
            records = read_files(paths)  # raises naming the file, line and problem
        except InvalidInput as exc:
            # Uploads sit in a temporary folder: name the file as the person knows it.
            message = exc.message
            for folder in {str(Path(p).parent) for p in paths}:
                message = message.replace(folder + os.sep, "")
            raise InvalidInput(message + " Nothing was imported.") from None
        summary, _ = self.knowledge.save(records, author=actor.email, replace=replace)
        result = {"files": len(paths), "records": len(records), "created": summary.created,
                  "updated": summary.updated, "unchanged": summary.unchanged,
                  "deleted": summary.deleted}
        self.audit.record(actor, "kb.import", ", ".join(Path(p).name for p in paths),
                          replace=replace, **result)
        return result

    def export_jsonl(self, actor: StaffUser, version: int | None = None) -> str:
        """The draft (``version`` None) or a published version as JSONL text."""
        require(actor, AREA)
        records = self.knowledge.drafts() if version is None else self._version_records(version)
        return "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in records)

    # --- internals --------------------------------------------------------------------

    def _entry(self, entry_id: str) -> Entry:
        record = self.knowledge.get(entry_id)  # NotFound when missing or deleted
        if not isinstance(record, Entry):
            raise NotFound(f"'{entry_id}' is a document, not an FAQ entry; edit it as a document.")
        return record

    def _document(self, document_id: str) -> Document:
        record = self.knowledge.get(document_id)
        if not isinstance(record, Document):
            raise NotFound(f"'{document_id}' is an FAQ entry, not a document.")
        return record

    def _bulk_records(self, entries: Sequence[Mapping[str, Any]]) -> list[Record]:
        """Every entry validated; ids unique, and none that names a document."""
        records: list[Record] = []
        seen: dict[str, int] = {}
        drafts = {r.id: r for r in self.knowledge.drafts()}
        for number, obj in enumerate(entries, start=1):
            where = f"Entry {number} of {len(entries)}"
            if isinstance(obj, Mapping) and obj.get("id") is not None:
                where += f" (id '{obj['id']}')"
            record = rec.entry_from_input(obj, where=where)
            if record.id in seen:
                raise InvalidInput(f"{where}: the id also appears as entry {seen[record.id]}.")
            if isinstance(drafts.get(record.id), Document):
                raise InvalidInput(f"{where}: '{record.id}' is a document, not an FAQ entry.")
            if record.id not in drafts:
                rec.check_new_id(record.id)
            seen[record.id] = number
            records.append(record)
        return records

    def _refuse_taken(self, record_id: str) -> None:
        try:
            existing = self.knowledge.get(record_id)
        except NotFound:
            return
        what = "an entry" if isinstance(existing, Entry) else "a document"
        raise Conflict(f"There is already {what} with id '{record_id}'; edit it or choose "
                       "another id.")
