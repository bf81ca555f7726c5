"""Staff API: analytics, transcripts and their export, and unanswered questions.

Thin edges over ``chatbot.staff.analytics``, ``.transcripts`` and ``.unanswered`` (the console
calls the same methods). Dates are ``YYYY-MM-DD`` (UTC days, both ends included).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from chatbot.staff.accounts import StaffUser
from chatbot.staff.transcripts import TranscriptFilter
from ui.api_schema import DB_INT_MAX, RowId, text_response
from ui.staff_api.auth import allow

if TYPE_CHECKING:
    from chatbot.staff.services import Staff

DATE = "A day, YYYY-MM-DD (UTC)"


class Counts(BaseModel):
    up: int
    down: int


class Latency(BaseModel):
    p50: float | None
    p95: float | None


class DayFigures(BaseModel):
    date: str
    conversations: int
    messages: int
    handoffs: int
    deflection_rate: float | None
    handoff_rate: float | None
    feedback: Counts
    feedback_ratio: float | None
    answers: int
    latency_ms: Latency
    unanswered: int


class TopEntry(BaseModel):
    id: str
    title: str
    answers: int


class AnalyticsOut(BaseModel):
    """CONTRACT.md's figures for the range, plus per-day series and the most used entries;
    every figure is defined in ``chatbot.staff.analytics``."""

    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from")
    to: str
    conversations: int
    messages: int
    deflection_rate: float | None
    handoff_rate: float | None
    handoffs_by_reason: dict[str, int]
    feedback: Counts
    latency_ms: Latency
    handoffs: int
    feedback_ratio: float | None
    answers: int
    unanswered: int
    days: list[DayFigures]
    top_entries: list[TopEntry]


class Source(BaseModel):
    id: str
    title: str = ""
    score: float | None = None


class TranscriptMessage(BaseModel):
    id: int
    role: str
    content: str
    created_at: str
    decision: str | None = None
    sources: list[Source] = []
    latency_ms: float | None = None
    grounded: bool | None = None
    reason: str | None = None
    rating: str | None = None
    comment: str | None = None


class TranscriptOut(BaseModel):
    id: str
    status: str
    handoff_reason: str | None
    assigned_agent: str | None
    created_at: str
    messages: list[TranscriptMessage]


class TranscriptSummary(BaseModel):
    id: str
    status: str
    handoff_reason: str | None
    created_at: str
    last_at: str
    messages: int
    first_question: str
    match: str
    decisions: list[str]
    feedback: Counts


class TranscriptPage(BaseModel):
    total: int
    page: int
    per_page: int
    items: list[TranscriptSummary]


class Nearest(BaseModel):
    id: str
    question: str
    score: float


class UnansweredGroup(BaseModel):
    key: str
    question: str
    count: int
    message_ids: list[int]
    examples: list[str]
    reasons: dict[str, int]
    first_seen: str
    last_seen: str
    nearest: Nearest | None
    suggested_id: str
    conversation_ids: list[str]


class ToEntry(BaseModel):
    message_ids: list[RowId] = Field(description="The group's message ids (from GET /unanswered)")
    entry: dict[str, Any] = Field(
        description="The new entry in the JSONL shape; 'id' may be left out (one is made from "
        "the question)"
    )


class ToParaphrase(BaseModel):
    message_ids: list[RowId]
    entry_id: str
    text: str | None = Field(None, description="Defaults to the first message's text")


class Dismiss(BaseModel):
    message_ids: list[RowId]


class OperatingPoint(BaseModel):
    answer_threshold: float
    clarify_threshold: float
    answer_precision: float | None
    answer_rate: float
    oos_recall: float = Field(description="Out-of-scope questions not answered.")
    handoff_rate_oos: float


class CalibrationOut(BaseModel):
    """The live version's calibration; without a published version only the count."""

    fitted: bool | None = None
    slope: float | None = None
    intercept: float | None = None
    answerable_cases: int | None = None
    unanswerable_cases: int | None = None
    heldout_top1: float | None = None
    kb_version: int | None = None
    operating_point: OperatingPoint | None = Field(
        None, description="At the thresholds in force, on the calibration's own cases.")
    marked_out_of_scope: int = Field(description="Questions staff marked out of scope.")


class Resolution(BaseModel):
    resolved: int
    action: str
    entry: dict[str, Any] | None


def transcript_filter(
    q: str | None = Query(None, description="Conversation id or text in any message"),
    start: str | None = Query(None, alias="from", description=DATE),
    end: str | None = Query(None, alias="to", description=DATE),
    decision: str | None = Query(None, description="answer, clarify or handoff"),
    feedback: str | None = Query(None, description="up, down or none"),
    handoff: str | None = Query(None, description="any, none or a reason"),
    status: str | None = Query(None, description="bot, waiting, agent or closed"),
) -> TranscriptFilter:
    return TranscriptFilter.parse(q, start, end, decision, feedback, handoff, status)


# Each route's area, and the acting user (module-level, as FastAPI dependencies are markers).
ANALYTICS = allow("analytics")
CONVERSATIONS = allow("conversations")
KB = allow("kb")  # unanswered questions are knowledge-base work: admins and editors
FILTERS = Depends(transcript_filter)


def router(staff: Staff) -> APIRouter:
    api = APIRouter()

    @api.get("/analytics", response_model=AnalyticsOut)
    def analytics(
        user: StaffUser = ANALYTICS,
        start: str | None = Query(None, alias="from", description=DATE + "; default 29 days "
                                  "before 'to'"),
        end: str | None = Query(None, alias="to", description=DATE + "; default today"),
    ) -> dict[str, Any]:
        return staff.analytics.report(user, start, end)

    @api.get("/analytics.csv", **text_response(
        "text/csv", "One row a day, a total row, then rows by handoff reason and by entry"))
    def analytics_csv(
        user: StaffUser = ANALYTICS,
        start: str | None = Query(None, alias="from", description=DATE),
        end: str | None = Query(None, alias="to", description=DATE),
    ) -> PlainTextResponse:
        text = staff.analytics.report_csv(user, start, end)
        return PlainTextResponse(text, media_type="text/csv", headers={
            "Content-Disposition": 'attachment; filename="analytics.csv"'})

    @api.get("/conversations/export",
             **text_response("application/x-ndjson", "One conversation a line, oldest first"))
    def export_conversations(
        user: StaffUser = CONVERSATIONS,
        filters: TranscriptFilter = FILTERS,
    ) -> StreamingResponse:
        lines = staff.transcripts.export_lines(user, filters)
        return StreamingResponse(lines, media_type="application/x-ndjson", headers={
            "Content-Disposition": 'attachment; filename="conversations.jsonl"'})

    @api.get("/conversations", response_model=TranscriptPage)
    def search_conversations(
        user: StaffUser = CONVERSATIONS,
        filters: TranscriptFilter = FILTERS,
        page: int = Query(1, le=DB_INT_MAX, description="From 1"),
        per_page: int = Query(20, description="1 to 200"),
    ) -> dict[str, Any]:
        return staff.transcripts.search(user, filters, page=page, per_page=per_page)

    @api.get("/conversations/{conversation_id}", response_model=TranscriptOut)
    def conversation(conversation_id: str, user: StaffUser = CONVERSATIONS) -> Any:
        return staff.transcripts.conversation(user, conversation_id)

    @api.get("/unanswered", response_model=list[UnansweredGroup])
    def unanswered(
        user: StaffUser = KB,
        start: str | None = Query(None, alias="from", description=DATE),
        end: str | None = Query(None, alias="to", description=DATE),
        limit: int = Query(50, description="Largest groups first; 1 to 1000"),
    ) -> list[dict[str, Any]]:
        return [g.to_dict() for g in staff.unanswered.groups(user, start, end, limit=limit)]

    @api.post("/unanswered/entry", response_model=Resolution)
    def unanswered_to_entry(body: ToEntry, user: StaffUser = KB) -> dict[str, Any]:
        return staff.unanswered.to_entry(user, body.message_ids, body.entry)

    @api.post("/unanswered/paraphrase", response_model=Resolution)
    def unanswered_to_paraphrase(
        body: ToParaphrase, user: StaffUser = KB
    ) -> dict[str, Any]:
        return staff.unanswered.to_paraphrase(user, body.message_ids, body.entry_id, body.text)

    @api.get("/calibration", response_model=CalibrationOut,
             summary="How sure the bot is: the live KB version's calibration and operating "
             "point (answer precision, answer rate, out-of-scope recall)")
    def calibration(user: StaffUser = KB) -> dict[str, Any]:
        return staff.unanswered.calibration(user)

    @api.post("/unanswered/out-of-scope", response_model=Resolution,
              summary="Not for the KB: teaches the next calibration not to answer such questions")
    def unanswered_out_of_scope(body: Dismiss, user: StaffUser = KB) -> dict[str, Any]:
        return staff.unanswered.mark_out_of_scope(user, body.message_ids)

    @api.post("/unanswered/dismiss", response_model=Resolution)
    def unanswered_dismiss(body: Dismiss, user: StaffUser = KB) -> dict[str, Any]:
        return staff.unanswered.dismiss(user, body.message_ids)

    return api
