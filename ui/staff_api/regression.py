"""Staff API for the knowledge base's regression set (area "kb"): list, add, delete, import and
export cases, and check the draft against the live version.

Thin edges over ``chatbot.staff.regression.RegressionSet``, which the console's Regression
sub-tab and ``chatbot kb regression`` call too. Publishing (``POST /publish``, in
``entries.py``) runs the same check and answers 409 when it would break passing cases.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, File, Form, Path, UploadFile
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from chatbot.errors import InvalidInput
from chatbot.staff.accounts import StaffUser
from ui.api_schema import DB_INT_MAX, text_response
from ui.staff_api.auth import allow

if TYPE_CHECKING:
    from chatbot.staff.services import Staff

MAX_UPLOAD_BYTES = 5_000_000


class CaseTurn(BaseModel):
    role: str = Field(description="user or assistant")
    content: str


class CaseBody(BaseModel):
    """A line of ``chatbot eval --queries``."""

    query: str = Field(description="What the customer writes.")
    expected_id: str | None = Field(description="The entry (or document) that must answer it; "
                                                "null: the bot must clarify or hand off.")
    history: list[CaseTurn] = Field(default_factory=list, description="Earlier turns, replayed first.")


class CaseOut(CaseBody):
    id: int
    author: str
    created_at: str


class CaseImportResult(BaseModel):
    lines: int
    added: int
    unchanged: int = Field(description="Cases already in the set (kept once).")
    deleted: int = Field(description="Cases removed by replace.")
    cases: int = Field(description="Cases in the set now.")


class Outcome(BaseModel):
    passed: bool
    decision: str
    top: str | None = Field(description="The top source's id.")


class CaseResult(BaseModel):
    id: int
    query: str
    expected_id: str | None
    history_turns: int
    status: str = Field(description="still_passing, newly_failing, newly_passing or still_failing")
    before: Outcome
    after: Outcome


class SideCount(BaseModel):
    label: str
    passed: int


class RegressionReport(BaseModel):
    version: int | None = Field(description="The live version compared with.")
    cases: int
    before: SideCount
    after: SideCount
    newly_failing: list[CaseResult]
    newly_passing: list[CaseResult]
    still_failing: list[CaseResult]
    results: list[CaseResult]
    seconds: float


class CaseDeleted(BaseModel):
    ok: bool = True


def router(staff: Staff) -> APIRouter:
    regression = staff.regression
    r = APIRouter()
    user = allow("kb")

    @r.get("/regression", response_model=list[CaseOut], summary="The regression set")
    def cases(actor: StaffUser = user) -> Any:
        return regression.cases(actor)

    @r.post("/regression", response_model=CaseOut,
            summary="Add a case (400: unknown expected id; 409: already there)")
    def add(body: CaseBody, actor: StaffUser = user) -> Any:
        return regression.add(actor, body.model_dump())

    @r.delete("/regression/{case_id}", response_model=CaseDeleted)
    def delete(case_id: int = Path(ge=1, le=DB_INT_MAX), actor: StaffUser = user) -> Any:
        regression.delete(actor, case_id)
        return CaseDeleted()

    @r.post("/regression/import", response_model=CaseImportResult,
            summary="Import cases from a JSONL file, all or none")
    def import_cases(
        file: Annotated[UploadFile, File(description="JSONL, one case a line")],
        replace: Annotated[bool, Form(description="The file becomes the whole set.")] = False,
        actor: StaffUser = user,
    ) -> Any:
        data = file.file.read(MAX_UPLOAD_BYTES + 1)
        name = file.filename or "the file"
        if len(data) > MAX_UPLOAD_BYTES:
            raise InvalidInput(f"{name} is larger than {MAX_UPLOAD_BYTES // 1_000_000} MB.")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidInput(f"{name} is not UTF-8 text.") from None
        return regression.import_jsonl(actor, text, name=name, replace=replace)

    @r.get("/regression/export", summary="The set as JSONL (chatbot eval --queries)",
           **text_response("application/x-ndjson", "One case a line"))
    def export(actor: StaffUser = user) -> PlainTextResponse:
        return PlainTextResponse(
            regression.export_jsonl(actor), media_type="application/x-ndjson",
            headers={"Content-Disposition": 'attachment; filename="regression.jsonl"'})

    @r.post("/regression/check", response_model=RegressionReport,
            summary="The draft against the live version: newly failing and newly passing cases")
    def check(actor: StaffUser = user) -> Any:
        return regression.check(actor)

    return r
