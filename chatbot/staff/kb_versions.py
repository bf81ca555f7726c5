"""Publishing the knowledge base: pending changes, publish, rollback, versions and diffs.

``KnowledgeVersions`` is the half of ``kb_editor.KnowledgeEditor`` that moves the live version
(the editor inherits it; the staff API and console call the editor). Publish and rollback
rebuild the search index at once in the background (``kb_live.IndexWarmer``), write the audit
log and, with a regression set (``regression.RegressionSet``), first check the new version
against the live one and refuse one that breaks cases passing live, unless an admin
overrides; their result then carries ``"regression"``, the report of the check.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chatbot.errors import InvalidInput, NotFound
from chatbot.service import ChatService
from chatbot.staff import kb_records as rec
from chatbot.staff.accounts import StaffUser, require
from chatbot.staff.audit import AuditLog
from chatbot.staff.kb_live import IndexWarmer, try_question
from chatbot.staff.regression import RegressionSet
from knowledge.records import Record
from knowledge.store import KnowledgeStore

AREA = "kb"
AUDIT_IDS = 100


class KnowledgeVersions:
    knowledge: KnowledgeStore
    chat: ChatService
    audit: AuditLog
    warmer: IndexWarmer
    regression: RegressionSet | None

    # --- pending changes, try, publish ------------------------------------------------

    def changes(self, actor: StaffUser) -> dict[str, Any]:
        """What the draft differs from the live version by: added, changed, removed."""
        require(actor, AREA)
        live = self.knowledge.current_version()
        diff = rec.diff_records(self.knowledge.published(live), self.knowledge.drafts())
        return {"version": live, **diff, "count": sum(rec.diff_counts(diff).values())}

    def try_question(self, actor: StaffUser, text: str) -> dict[str, Any]:
        """Ranked hits with calibrated scores and the decision the bot would take, live version."""
        require(actor, AREA)
        return try_question(self.chat, text)

    def publish(
        self, actor: StaffUser, *, note: str = "", wait: float = 0.0, override: bool = False
    ) -> dict[str, Any]:
        """Drafts become a new version; its index is built at once in the background (``wait``:
        seconds to wait for it). A draft equal to the live version publishes nothing. With a
        regression set the draft is checked first (``override``: an admin publishes anyway)."""
        require(actor, AREA)
        note = rec.note_text(note)
        previous = self.knowledge.current_version()
        if not self.changes(actor)["count"]:
            return {"version": previous, "published": False, "regression": None, **self._live(0)}
        report = self._gate(actor, self.knowledge.drafts, "the draft", override)
        version = self.knowledge.publish(author=actor.email, note=note)
        diff = self._diff(previous, version)
        self._audit_publish(actor, "kb.publish", version, report, note=note, **self._ids(diff))
        self.warmer.start()
        return {"version": version, "published": True, **rec.diff_counts(diff),
                "regression": report, **self._live(wait)}

    def rollback(
        self, actor: StaffUser, version: int, *, wait: float = 0.0, override: bool = False
    ) -> dict[str, Any]:
        """Publish a new version equal to ``version``. Unpublished drafts are replaced (each
        stays in its entry's history). Checked against the regression set like a publish."""
        require(actor, AREA)
        version = self._version_number(version)
        if version == 0:
            raise InvalidInput("Version 0 is the empty knowledge base; choose a published version.")
        target = self._version_records(version)  # NotFound before any check runs
        report = self._gate(actor, lambda: target, f"version {version}", override)
        discarded = self.changes(actor)["count"]
        previous = self.knowledge.current_version()
        new = self.knowledge.rollback(version, author=actor.email)
        diff = self._diff(previous, new)
        self._audit_publish(actor, "kb.rollback", new, report, to=version,
                            discarded_drafts=discarded, **self._ids(diff))
        self.warmer.start()
        return {"version": new, "rolled_back_to": version, "discarded_drafts": discarded,
                **rec.diff_counts(diff), "regression": report, **self._live(wait)}

    def live_status(self, actor: StaffUser) -> dict[str, Any]:
        """Which version is published and which one the running server answers from."""
        require(actor, AREA)
        return self.warmer.status()

    # --- versions ---------------------------------------------------------------------

    def versions(self, actor: StaffUser) -> list[dict[str, Any]]:
        """Newest first: version, published_at, author, note."""
        require(actor, AREA)
        return [{"version": v.version, "published_at": rec.iso(v.published_at),
                 "author": v.author, "note": v.note} for v in self.knowledge.versions()]

    def version(self, actor: StaffUser, version: int) -> dict[str, Any]:
        require(actor, AREA)
        info = next((v for v in self.versions(actor) if v["version"] == version), None)
        if info is None:
            raise NotFound(f"There is no knowledge-base version {version}.")
        return {**info, "records": [r.to_dict() for r in self._version_records(version)]}

    def diff(self, actor: StaffUser, from_version: int, to_version: int) -> dict[str, Any]:
        """How ``to_version`` differs from ``from_version`` (0: the empty knowledge base)."""
        require(actor, AREA)
        a, b = self._version_number(from_version), self._version_number(to_version)
        return {"from": a, "to": b, **self._diff(a, b)}

    # --- internals ---------------------------------------------------------------------

    def _version_number(self, version: Any) -> int:
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise InvalidInput(f"'{version}' is not a version number; use one from the versions list.")
        return version

    def _version_records(self, version: int) -> list[Record]:
        if self._version_number(version) == 0:
            return []
        return self.knowledge.published(version)  # NotFound for an unknown version

    def _diff(self, a: int, b: int) -> dict[str, Any]:
        return rec.diff_records(self._version_records(a), self._version_records(b))

    @staticmethod
    def _ids(diff: Mapping[str, Any]) -> dict[str, Any]:
        """The ids a version change touched, for the audit log (long lists cut short)."""
        out: dict[str, Any] = {}
        for key in ("added", "changed", "removed"):
            ids = [r["id"] for r in diff[key]]
            more = [f"... {len(ids) - AUDIT_IDS} more"] if len(ids) > AUDIT_IDS else []
            out[key] = ids[:AUDIT_IDS] + more
        return out

    def _gate(self, actor: StaffUser, records: Any, label: str, override: bool
              ) -> dict[str, Any] | None:
        """The regression check of what is about to go live (None: no regression set)."""
        if self.regression is None:
            return None
        return self.regression.gate(actor, records, label=label, override=override)

    def _audit_publish(self, actor: StaffUser, action: str, version: int,
                       report: dict[str, Any] | None, **detail: Any) -> None:
        if self.regression is not None:
            self.regression.audit_publish(actor, action, version, report, **detail)
        else:
            self.audit.record(actor, action, f"version {version}", version=version, **detail)

    def _live(self, wait: float) -> dict[str, Any]:
        """Whether the running server already answers from the newest version."""
        if wait > 0:
            self.warmer.wait(min(wait, 300.0))
        status = self.warmer.status()
        seconds = status["last_build_seconds"] if status["ready"] else None
        return {"live": status["ready"], "index_seconds": seconds}
