"""The knowledge base's regression set: questions whose handling must not silently get worse.

A case is a line of ``chatbot eval --queries`` (CONTRACT.md): ``query``, ``expected_id`` (the
entry or document that must answer it; None: the bot must not answer, it should clarify or
hand off) and an optional ``history`` replayed first. Cases live in ``kb_regression_cases``.

Before a new version goes live (publish, rollback) the set runs against it and against the
live version (``regression_run.compare``). Cases that pass live and fail on the new version
are *newly failing*: an editor cannot publish them (``Conflict``, naming the cases); an admin
can, with ``override``, and the audit log records the override and the cases it broke. With
no cases, or nothing newly failing, publishing behaves as it always has.

Every public method takes the acting staff user first and checks the "kb" area; the console,
the staff API and the CLI (``CLI_ACTOR``) call the same methods. Changes to the set are
audited; an import is all-or-nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import sessionmaker

from chatbot.errors import Conflict, Forbidden, InvalidInput, NotFound
from chatbot.evaluation import Case, case_from_obj, parse_cases
from chatbot.models import RegressionCaseRow
from chatbot.service import ChatService
from chatbot.staff import regression_run as run
from chatbot.staff.accounts import StaffUser, require
from chatbot.staff.audit import AuditLog
from chatbot.staff.kb_records import iso
from knowledge.records import Document, Record
from knowledge.store import KnowledgeStore

AREA = "kb"
MAX_CASES = 1000  # each publish runs the whole set twice
MAX_QUERY_CHARS = 4000
CLI_ACTOR = StaffUser(id=0, email="cli", role="admin")  # the server's administrator


def _key(case: Case) -> str:
    """Cases that ask the same thing the same way are one case."""
    turns = [(t["role"], " ".join(t["content"].split())) for t in case.history]
    return json.dumps([" ".join(case.query.split()).casefold(), case.expected_id, turns])


def _row_case(row: RegressionCaseRow) -> Case:
    return Case(row.query, row.expected_id, list(row.history or []))


def _case_dict(row: RegressionCaseRow) -> dict[str, Any]:
    return {"id": row.id, "query": row.query, "expected_id": row.expected_id,
            "history": list(row.history or []), "author": row.author,
            "created_at": iso(row.created_at)}


class RegressionSet:
    def __init__(
        self, engine: Engine, knowledge: KnowledgeStore, chat: ChatService | None,
        audit: AuditLog,
    ) -> None:
        """``chat`` (the customer path the checks run through) may be None where only the set
        is edited (the CLI, without loading the embedding model)."""
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self.knowledge = knowledge
        self.chat = chat
        self.audit = audit

    # --- the set ----------------------------------------------------------------------

    def cases(self, actor: StaffUser) -> list[dict[str, Any]]:
        """Every case, oldest first, with its id (``delete`` takes it)."""
        require(actor, AREA)
        with self._sessions() as session:
            return [_case_dict(r) for r in session.scalars(
                select(RegressionCaseRow).order_by(RegressionCaseRow.id))]

    def add(self, actor: StaffUser, case: Mapping[str, Any]) -> dict[str, Any]:
        """One new case (the JSONL shape); Conflict when the same case is already there."""
        require(actor, AREA)
        parsed = self._checked(case_from_obj(dict(case) if isinstance(case, Mapping) else case,
                                             "The case"), "The case", self._known_ids())
        with self._sessions.begin() as session:
            if _key(parsed) in self._keys(session):
                raise Conflict(f"The regression set already has the case \"{parsed.query}\".")
            self._refuse_full(session, 1)
            row = self._insert(session, parsed, actor.email)
        self.audit.record(actor, "regression.add", f"case {row.id}", query=parsed.query,
                          expected_id=parsed.expected_id)
        return _case_dict(row)

    def delete(self, actor: StaffUser, case_id: int) -> None:
        require(actor, AREA)
        with self._sessions.begin() as session:
            row = session.get(RegressionCaseRow, case_id)
            if row is None:
                raise NotFound(f"There is no regression case {case_id}.")
            query, expected = row.query, row.expected_id
            session.delete(row)
        self.audit.record(actor, "regression.delete", f"case {case_id}", query=query,
                          expected_id=expected)

    def import_jsonl(
        self, actor: StaffUser, text: str, *, name: str = "the file", replace: bool = False
    ) -> dict[str, int]:
        """Cases from JSONL text, all or nothing: a malformed line or an unknown expected id
        rejects the file and the set stays as it was. Cases already there are kept once;
        ``replace``: the file becomes the whole set."""
        require(actor, AREA)
        try:
            cases = parse_cases(text, name)
            if not cases:
                raise InvalidInput(f"{name} holds no cases.")
            known = self._known_ids()
            numbers = [n for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
            cases = [self._checked(c, f"{name}, line {n}", known)
                     for n, c in zip(numbers, cases, strict=True)]
        except InvalidInput as exc:
            raise InvalidInput(exc.message + " Nothing was imported.") from None
        wanted = {_key(c) for c in cases}
        deleted = 0
        with self._sessions.begin() as session:
            if replace:  # cases also in the file keep their rows (and ids)
                for row in list(session.scalars(select(RegressionCaseRow))):
                    if _key(_row_case(row)) not in wanted:
                        session.delete(row)
                        deleted += 1
                session.flush()
            seen = self._keys(session)
            fresh = []
            for case in cases:
                if _key(case) not in seen:
                    seen.add(_key(case))
                    fresh.append(case)
            self._refuse_full(session, len(fresh))
            for case in fresh:
                self._insert(session, case, actor.email)
            total = len(seen)
        added, unchanged = len(fresh), len(cases) - len(fresh)
        result = {"lines": len(cases), "added": added, "unchanged": unchanged,
                  "deleted": deleted, "cases": total}
        self.audit.record(actor, "regression.import", name, replace=replace, **result)
        return result

    def export_jsonl(self, actor: StaffUser) -> str:
        """The set in the ``chatbot eval --queries`` shape."""
        lines = []
        for case in self.cases(actor):
            obj: dict[str, Any] = {"query": case["query"], "expected_id": case["expected_id"]}
            if case["history"]:
                obj["history"] = case["history"]
            lines.append(json.dumps(obj, ensure_ascii=False) + "\n")
        return "".join(lines)

    # --- checks -----------------------------------------------------------------------

    def check(self, actor: StaffUser) -> dict[str, Any]:
        """The draft against the live version, without publishing anything."""
        require(actor, AREA)
        return self.compare_with_live(self.knowledge.drafts(), "the draft") or self.empty()

    def compare_with_live(
        self, records: Sequence[Record], label: str
    ) -> dict[str, Any] | None:
        """``records`` against the live version; None when the set is empty."""
        cases = self._all()
        if not cases:
            return None
        live = self.knowledge.current_version()
        chat = self._chat()
        index = chat.retriever.index()
        before = run.Side(f"live version {live}", self.knowledge.published(live),
                          index if index.version == live else None)
        report = run.compare(chat, cases, before, run.Side(label, records))
        return {"version": live, **report}

    def compare_versions(self, before: int, after: int, *, after_index: Any = None
                         ) -> dict[str, Any] | None:
        """Two published versions (``chatbot kb import`` reports what its import changed)."""
        cases = self._all()
        if not cases:
            return None
        sides = (run.Side(f"version {before}", self.knowledge.published(before)),
                 run.Side(f"version {after}", self.knowledge.published(after), after_index))
        return {"version": before, **run.compare(self._chat(), cases, *sides)}

    def gate(
        self,
        actor: StaffUser,
        records: Callable[[], Sequence[Record]],
        *,
        label: str,
        override: bool = False,
    ) -> dict[str, Any] | None:
        """Check ``records()`` (what is about to go live) before it is published.

        Raises Conflict when cases that pass live would fail (admins may pass ``override``),
        Forbidden when someone other than an admin overrides. Returns the report (None: no
        cases). When ``records()`` changed while the check ran (another editor saved), it is
        checked again, so what is published is what was checked.
        """
        for _ in range(3):
            checked = records()
            report = self.compare_with_live(checked, label)
            if records() == checked:
                break
        else:
            raise Conflict("The draft keeps changing while it is checked; publish again in a "
                           "moment.")
        if report is None or not report["newly_failing"]:
            return report
        failing = report["newly_failing"]
        names = run.name_cases(failing, label)
        lead = (f"Publishing would break {len(failing)} regression case(s) that pass on the "
                f"live version {report['version']}: {names}.")
        if not override:
            raise Conflict(f"{lead} Fix the draft (or the cases); an admin can publish it anyway "
                           "with override.")
        if actor.role != "admin":
            raise Forbidden(f"{lead} Only an admin can override the regression check.")
        return report

    def audit_publish(self, actor: StaffUser, action: str, version: int,
                      report: dict[str, Any] | None, **detail: Any) -> None:
        """The publish (or rollback) with the check's counts, and an override (cases broken
        on purpose) as an event of its own that lists the broken cases."""
        overridden = bool(report and report["newly_failing"])
        self.audit.record(actor, action, f"version {version}", version=version,
                          regression=run.summary(report, override=overridden), **detail)
        if overridden and report is not None:
            failing = [{"id": r["id"], "query": r["query"], "expected_id": r["expected_id"],
                        "now": run.outcome_text(r["after"])} for r in report["newly_failing"]]
            self.audit.record(actor, "kb.regression_override", f"version {version}",
                              version=version, failing=failing[:100], count=len(failing))

    @staticmethod
    def empty() -> dict[str, Any]:
        return {"version": None, "cases": 0, "before": {"label": "", "passed": 0},
                "after": {"label": "", "passed": 0}, "newly_failing": [], "newly_passing": [],
                "still_failing": [], "results": [], "seconds": 0.0}

    # --- internals --------------------------------------------------------------------

    def _chat(self) -> ChatService:
        if self.chat is None:
            raise RuntimeError("this RegressionSet was built without the chat service")
        return self.chat

    def _all(self) -> list[tuple[int, Case]]:
        with self._sessions() as session:
            return [(r.id, _row_case(r)) for r in session.scalars(
                select(RegressionCaseRow).order_by(RegressionCaseRow.id))]

    def _known_ids(self) -> tuple[set[str], set[str]]:
        """(ids of every draft entry and document, ids of the documents)."""
        drafts = self.knowledge.drafts()
        return {r.id for r in drafts}, {r.id for r in drafts if isinstance(r, Document)}

    @staticmethod
    def _checked(case: Case, where: str, known: tuple[set[str], set[str]]) -> Case:
        ids, documents = known
        query = " ".join(case.query.split())
        if not query:
            raise InvalidInput(f"{where}: the query is empty.")
        if len(case.query) > MAX_QUERY_CHARS:
            raise InvalidInput(f"{where}: the query is {len(case.query):,} characters; the "
                               f"limit is {MAX_QUERY_CHARS:,}.")
        for i, turn in enumerate(case.history):
            if not turn["content"].strip():
                raise InvalidInput(f"{where}: history[{i}] has no content.")
        expected = case.expected_id
        if expected is not None and expected not in ids and (
            "#" not in expected or expected.split("#", 1)[0] not in documents
        ):
            raise InvalidInput(
                f"{where}: expected_id '{expected}' is not an entry or document of the knowledge "
                "base (use an id from the entries list, or null for a question it must not "
                "answer).")
        history = [{"role": t["role"], "content": t["content"]} for t in case.history]
        return Case(case.query.strip(), expected, history)

    @staticmethod
    def _keys(session: Any) -> set[str]:
        return {_key(_row_case(r)) for r in session.scalars(select(RegressionCaseRow))}

    @staticmethod
    def _refuse_full(session: Any, adding: int) -> None:
        count = len(session.scalars(select(RegressionCaseRow.id)).all())
        if count + adding > MAX_CASES:
            raise InvalidInput(f"The regression set would hold {count + adding:,} cases; the "
                               f"limit is {MAX_CASES:,}. Nothing was added.")

    @staticmethod
    def _insert(session: Any, case: Case, author: str) -> RegressionCaseRow:
        row = RegressionCaseRow(query=case.query, expected_id=case.expected_id,
                                history=case.history, author=author)
        session.add(row)
        session.flush()
        return row
