"""Request and response bodies of the knowledge-base staff API (``ui.staff_api.entries``):
what the OpenAPI schema shows for entries, documents, publishing, versions and the audit log."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ui.api_schema import VersionNumber
from ui.staff_api.regression import RegressionReport

EXAMPLE = {
    "id": "returns-window",
    "question": "How long do I have to return an item?",
    "answer": "You can return unworn items within 30 days of delivery.",
    "paraphrases": ["Can I still send it back?"],
    "tags": ["returns"],
}


class EntryBody(BaseModel):
    """An FAQ entry in the JSONL shape; other fields are kept as they are."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"example": EXAMPLE})
    id: str
    question: str
    answer: str
    paraphrases: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)


class EntryUpdate(EntryBody):
    """As ``EntryBody``; ``id`` may be left out (it is the one in the address)."""

    id: str | None = None  # type: ignore[assignment]


class DocumentBody(BaseModel):
    id: str
    title: str
    text: str = Field(description="Markdown (format md) or plain text (format txt).")
    format: str = Field("md", description="md or txt")


class DocumentOut(DocumentBody):
    kind: str = "document"


class DocumentUpdate(DocumentBody):
    id: str | None = None  # type: ignore[assignment]


class DocumentSummary(BaseModel):
    id: str
    title: str
    format: str
    chars: int


class Ok(BaseModel):
    ok: bool = True


class BulkResult(BaseModel):
    created: int
    updated: int
    unchanged: int


class ParaphraseBody(BaseModel):
    text: str


class ImportResult(BaseModel):
    files: int
    records: int
    created: int
    updated: int
    unchanged: int
    deleted: int


class Revision(BaseModel):
    revision: int
    action: Literal["create", "update", "delete"]
    author: str
    created_at: str
    data: dict[str, Any] = Field(description="The entry or document as it was then.")


class TryBody(BaseModel):
    text: str = Field(description="A customer's first message.")


class Signals(BaseModel):
    dense: float
    lead: float
    keyword: float
    code: float


class TryHit(BaseModel):
    rank: int
    id: str
    kind: str = Field(description="faq or passage")
    title: str
    parent: str = Field(description="The entry's id, or the document of a passage.")
    score: float = Field(description="Calibrated: the chance that this hit answers it.")
    text: str
    signals: Signals


class TryThresholds(BaseModel):
    answer: float
    clarify: float
    margin: float
    fast_path: float


class TryResult(BaseModel):
    question: str
    version: int = Field(description="The live version that was searched.")
    decision: Literal["answer", "clarify", "handoff"]
    reason: str
    explanation: str
    reply: str | None = Field(description="What the customer would read; null when the language "
                              "model would write it (not run here).")
    fast_path: bool
    candidates: list[str] = Field(description="The entries a clarify question offers.")
    hits: list[TryHit]
    thresholds: TryThresholds


class PublishBody(BaseModel):
    note: str = Field("", description="What changed, for the versions list.")
    wait: float = Field(0, ge=0, le=120, description="Seconds to wait until the server answers "
                                                     "from the new version (0: return at once).")
    override: bool = Field(False, description="Admins: publish even though regression cases "
                                              "that pass live would fail (audited).")


class PublishResult(BaseModel):
    version: int
    published: bool = Field(description="False when the draft equals the live version.")
    added: int = 0
    changed: int = 0
    removed: int = 0
    live: bool = Field(description="The running server already answers from this version.")
    index_seconds: float | None = None
    regression: RegressionReport | None = Field(
        None, description="The regression check of the draft against the previous live version "
                          "(null: no regression set, or nothing was published).")


class RollbackBody(BaseModel):
    version: VersionNumber = Field(description="The version whose content becomes live again.")
    wait: float = Field(0, ge=0, le=120)
    override: bool = Field(False, description="Admins: roll back even though regression cases "
                                              "would fail (audited).")


class RollbackResult(BaseModel):
    version: int = Field(description="The new version (equal to rolled_back_to).")
    rolled_back_to: int
    discarded_drafts: int = Field(description="Unpublished draft changes replaced (kept in history).")
    added: int
    changed: int
    removed: int
    live: bool
    index_seconds: float | None = None
    regression: RegressionReport | None = None


class VersionOut(BaseModel):
    version: int
    published_at: str
    author: str
    note: str = ""


class VersionDetail(VersionOut):
    records: list[dict[str, Any]]


class Changed(BaseModel):
    id: str
    kind: str
    title: str
    fields: list[str]
    before: dict[str, Any]
    after: dict[str, Any]


class Diff(BaseModel):
    added: list[dict[str, Any]]
    removed: list[dict[str, Any]]
    changed: list[Changed]
    unchanged: int


class VersionDiff(Diff):
    from_: int = Field(alias="from")
    to: int
    model_config = ConfigDict(populate_by_name=True)


class PendingChanges(Diff):
    version: int = Field(description="The live version the draft is compared with.")
    count: int


class LiveStatus(BaseModel):
    published_version: int
    live_version: int
    ready: bool
    building: bool
    calibrating: bool = False
    last_build_seconds: float | None
    error: str | None


class AuditOut(BaseModel):
    at: str
    actor: str
    action: str
    target: str
    detail: dict[str, Any]
