"""Staff API for the knowledge base (area "kb"): draft entries and documents, import/export,
pending changes, "try a question", publish, versions, diff, rollback and the audit log.

Each route is a thin edge over ``chatbot.staff.kb_editor.KnowledgeEditor``, the functions the
console's knowledge-base tab calls. Entries use the JSONL shape of CONTRACT.md.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import PlainTextResponse

from chatbot.errors import InvalidInput
from chatbot.staff.accounts import StaffUser
from ui.api_schema import DB_INT_MAX, text_response
from ui.errors import ErrorBody
from ui.staff_api.auth import allow
from ui.staff_api.kb_bodies import (
    AuditOut,
    BulkResult,
    DocumentBody,
    DocumentOut,
    DocumentSummary,
    DocumentUpdate,
    EntryBody,
    EntryUpdate,
    ImportResult,
    LiveStatus,
    Ok,
    ParaphraseBody,
    PendingChanges,
    PublishBody,
    PublishResult,
    Revision,
    RollbackBody,
    RollbackResult,
    TryBody,
    TryResult,
    VersionDetail,
    VersionDiff,
    VersionOut,
)

if TYPE_CHECKING:
    from chatbot.staff.services import Staff

def router(staff: Staff) -> APIRouter:
    kb = staff.kb
    r = APIRouter()
    user = allow("kb")

    # --- entries ----------------------------------------------------------------------

    @r.get("/entries", response_model=list[EntryBody], summary="Draft FAQ entries")
    def list_entries(
        search: str = Query("", description="Words that must all appear in the entry's text."),
        tag: str = Query("", description="Only entries with this tag."),
        actor: StaffUser = user,
    ) -> Any:
        return kb.entries(actor, search=search, tag=tag)

    @r.post("/entries", response_model=EntryBody, summary="Create a draft entry (409 if the id exists)")
    def create_entry(body: EntryBody, actor: StaffUser = user) -> Any:
        return kb.create_entry(actor, body.model_dump())

    @r.post("/entries/bulk", response_model=BulkResult, summary="Create or update many, all or none")
    def bulk(body: list[EntryBody], actor: StaffUser = user) -> Any:
        return kb.bulk_upsert(actor, [e.model_dump() for e in body])

    @r.get("/entries/{entry_id}", response_model=EntryBody)
    def get_entry(entry_id: str, actor: StaffUser = user) -> Any:
        return kb.entry(actor, entry_id)

    @r.put("/entries/{entry_id}", response_model=EntryBody, summary="Replace a draft entry")
    def update_entry(entry_id: str, body: EntryUpdate, actor: StaffUser = user) -> Any:
        return kb.update_entry(actor, entry_id, body.model_dump(exclude_none=False))

    @r.delete("/entries/{entry_id}", response_model=Ok)
    def delete_entry(entry_id: str, actor: StaffUser = user) -> Any:
        kb.delete_entry(actor, entry_id)
        return Ok()

    @r.post("/entries/{entry_id}/paraphrases", response_model=EntryBody)
    def add_paraphrase(entry_id: str, body: ParaphraseBody, actor: StaffUser = user) -> Any:
        return kb.add_paraphrase(actor, entry_id, body.text)

    @r.get("/entries/{entry_id}/history", response_model=list[Revision],
           summary="Every revision, oldest first")
    def history(entry_id: str, actor: StaffUser = user) -> list[dict[str, Any]]:
        return kb.history(actor, entry_id)

    @r.get("/tags", summary="Tags of the draft entries with their counts")
    def tags(actor: StaffUser = user) -> dict[str, int]:
        return kb.tags(actor)

    # --- documents --------------------------------------------------------------------

    @r.get("/documents", response_model=list[DocumentSummary])
    def list_documents(search: str = "", actor: StaffUser = user) -> Any:
        return kb.documents(actor, search=search)

    @r.post("/documents", response_model=DocumentOut)
    def create_document(body: DocumentBody, actor: StaffUser = user) -> Any:
        return kb.create_document(actor, body.model_dump())

    @r.get("/documents/{document_id}", response_model=DocumentOut)
    def get_document(document_id: str, actor: StaffUser = user) -> Any:
        return kb.document(actor, document_id)

    @r.put("/documents/{document_id}", response_model=DocumentOut)
    def update_document(document_id: str, body: DocumentUpdate, actor: StaffUser = user) -> Any:
        return kb.update_document(actor, document_id, body.model_dump())

    @r.delete("/documents/{document_id}", response_model=Ok)
    def delete_document(document_id: str, actor: StaffUser = user) -> Any:
        kb.delete_document(actor, document_id)
        return Ok()

    # --- files ------------------------------------------------------------------------

    @r.post("/import", response_model=ImportResult, summary="Import files as drafts, all or none")
    def import_files(
        files: Annotated[list[UploadFile], File(description=".jsonl, .csv, .md, .txt or .html")],
        replace: Annotated[bool, Form(description="Entries not in the files leave the draft.")] = False,
        actor: StaffUser = user,
    ) -> Any:
        with tempfile.TemporaryDirectory(prefix="kb-import-") as folder:
            return kb.import_files(actor, _save_uploads(files, Path(folder)), replace=replace)

    @r.get("/export", summary="The draft or a version as JSONL",
           **text_response("application/x-ndjson", "One entry or document a line"))
    def export(
        version: int | None = Query(None, ge=0, le=DB_INT_MAX,
                                    description="A published version (default: the draft)."),
        actor: StaffUser = user,
    ) -> PlainTextResponse:
        name = f"kb-v{version}.jsonl" if version is not None else "kb-draft.jsonl"
        return PlainTextResponse(
            kb.export_jsonl(actor, version),
            media_type="application/x-ndjson",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    # --- pending changes, try, publish ------------------------------------------------

    @r.get("/changes", response_model=PendingChanges, summary="The draft against the live version")
    def changes(actor: StaffUser = user) -> Any:
        return kb.changes(actor)

    @r.post("/try", response_model=TryResult,
            summary="Hits, scores and the decision the bot would take (live version)")
    def try_question(body: TryBody, actor: StaffUser = user) -> dict[str, Any]:
        return kb.try_question(actor, body.text)

    @r.post("/publish", response_model=PublishResult, summary="Make the draft the live version",
            responses={409: {"model": ErrorBody, "description": "Regression cases would break"}})
    def publish(body: PublishBody | None = None, actor: StaffUser = user) -> Any:
        body = body or PublishBody()
        return kb.publish(actor, note=body.note, wait=body.wait, override=body.override)

    @r.get("/publish/status", response_model=LiveStatus, summary="Which version the server answers from")
    def live_status(actor: StaffUser = user) -> Any:
        return kb.live_status(actor)

    @r.get("/versions", response_model=list[VersionOut], summary="Published versions, newest first")
    def versions(actor: StaffUser = user) -> Any:
        return kb.versions(actor)

    @r.get("/versions/{version}", response_model=VersionDetail)
    def version(
        version: int = PathParam(ge=0, le=DB_INT_MAX), actor: StaffUser = user
    ) -> Any:
        return kb.version(actor, version)

    @r.get("/diff", response_model=VersionDiff, summary="How version 'to' differs from 'from'")
    def diff(
        from_: int = Query(..., alias="from", ge=0, le=DB_INT_MAX,
                           description="0: the empty knowledge base"),
        to: int = Query(..., ge=0, le=DB_INT_MAX),
        actor: StaffUser = user,
    ) -> Any:
        return kb.diff(actor, from_, to)

    @r.post("/rollback", response_model=RollbackResult, summary="A new version equal to an old one",
            responses={409: {"model": ErrorBody, "description": "Regression cases would break"}})
    def rollback(body: RollbackBody, actor: StaffUser = user) -> Any:
        return kb.rollback(actor, body.version, wait=body.wait, override=body.override)

    @r.get("/audit", response_model=list[AuditOut], summary="Who changed what, newest first")
    def audit(
        limit: int = Query(200, ge=1, le=5000),
        action: str = Query("", description="Only actions starting with this, e.g. 'entry.'"),
        target: str = Query("", description="Only this target, e.g. an entry id"),
        actor: StaffUser = user,
    ) -> Any:
        events = staff.audit.events(actor, limit=limit, action_prefix=action, target=target)
        return [e.to_dict() for e in events]

    return r


def _save_uploads(files: list[UploadFile], folder: Path) -> list[Path]:
    """The uploads under their own file names (a document's id is its file name's stem)."""
    paths = []
    for upload in files:
        name = Path(upload.filename or "").name
        if not name or name.startswith("."):
            raise InvalidInput("Every uploaded file needs a name such as faq.jsonl or returns.md.")
        path = folder / name
        if path.exists():
            raise InvalidInput(f"Two uploaded files are named {name}; rename one.")
        path.write_bytes(upload.file.read())
        paths.append(path)
    return paths
