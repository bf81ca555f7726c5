"""Running a regression set against two sets of records (the live version and a draft, or two
versions) and saying which cases changed.

Each side gets its own search index, built in memory from its records (unchanged items take
their vectors from the live index, so a check embeds only what the draft changed); nothing is
written under the data dir and the live retriever keeps answering customers. The cases go
through the customer path itself (``chatbot.evaluation.run_cases``: a conversation per case,
its history replayed, ``ChatService.send_message``) with no language model, on a scratch
in-memory conversation store without the handoff webhook: as ``chatbot eval
--retrieval-only``, decisions included, and a case passes by the same rules
(``evaluation.case_passes``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.pool import StaticPool

from chatbot.conversations import ConversationStore
from chatbot.evaluation import Case, case_passes, run_cases
from chatbot.models import Base
from chatbot.service import ChatService
from knowledge.index import SearchIndex
from knowledge.records import Record
from knowledge.retrieval import Retriever

NAMED_IN_MESSAGES = 10  # cases named in an error message before "and N more"


class PinnedRetriever(Retriever):
    """A retriever that answers from one given index, whatever version is published."""

    def __init__(self, base: Retriever, index: SearchIndex) -> None:
        super().__init__(base.store, base.embedder, base.folder)
        self._index = index

    def index(self) -> SearchIndex:
        assert self._index is not None
        return self._index

    def rebuild(self, show_progress: bool = False) -> SearchIndex:  # never touches the folder
        return self.index()


@dataclass(frozen=True)
class Side:
    """One side of a comparison: a label for people, its records, and an index if one exists."""

    label: str
    records: Sequence[Record]
    index: SearchIndex | None = None


def outcomes(chat: ChatService, cases: Sequence[Case], index: SearchIndex) -> list[dict[str, Any]]:
    """Per case: passed, the decision and the top source, answered from ``index``."""
    engine = create_engine("sqlite://", poolclass=StaticPool,
                           connect_args={"check_same_thread": False})
    try:
        Base.metadata.create_all(engine)  # a scratch store that lives as long as this check
        scratch = replace(chat, retriever=PinnedRetriever(chat.retriever, index),
                          conversations=ConversationStore(engine), generator=None, webhook=None)
        results = run_cases(scratch, cases)
    finally:
        engine.dispose()
    return [{"passed": case_passes(case, r), "decision": r["decision"],
             "top": r["sources"][0]["id"] if r["sources"] else None}
            for case, r in zip(cases, results, strict=True)]


def compare(
    chat: ChatService, cases: Sequence[tuple[int, Case]], before: Side, after: Side
) -> dict[str, Any]:
    """Which cases (``(id, case)``) pass on each side, and which changed."""
    started = time.perf_counter()
    live = chat.retriever.index()
    indexes = []
    for side in (before, after):
        previous = side.index or (indexes[0] if indexes else live)
        indexes.append(side.index or SearchIndex.build(
            side.records, chat.embedder, version=previous.version, previous=previous))
    just_cases = [c for _, c in cases]
    old, new = (outcomes(chat, just_cases, index) for index in indexes)
    results = []
    for (case_id, case), a, b in zip(cases, old, new, strict=True):
        status = ("still_passing" if a["passed"] and b["passed"] else
                  "newly_failing" if a["passed"] else
                  "newly_passing" if b["passed"] else "still_failing")
        results.append({"id": case_id, "query": case.query, "expected_id": case.expected_id,
                        "history_turns": len(case.history), "status": status,
                        "before": a, "after": b})
    by = {s: [r for r in results if r["status"] == s]
          for s in ("newly_failing", "newly_passing", "still_failing")}
    return {
        "cases": len(results),
        "before": {"label": before.label, "passed": sum(r["before"]["passed"] for r in results)},
        "after": {"label": after.label, "passed": sum(r["after"]["passed"] for r in results)},
        **by,
        "results": results,
        "seconds": round(time.perf_counter() - started, 2),
    }


def summary(report: dict[str, Any] | None, *, override: bool = False) -> dict[str, Any] | None:
    """The short form kept in the audit log: counts and the ids of the cases that changed."""
    if report is None:
        return None
    return {"cases": report["cases"], "passed_before": report["before"]["passed"],
            "passed_after": report["after"]["passed"],
            "newly_failing": [r["id"] for r in report["newly_failing"]],
            "newly_passing": [r["id"] for r in report["newly_passing"]], "override": override}


def outcome_text(outcome: dict[str, Any]) -> str:
    """'answers with x', 'hands off', 'asks to clarify' (top: y)."""
    decision, top = outcome["decision"], outcome["top"]
    if decision == "answer":
        return f"answers with '{top}'" if top else "answers with small talk"
    verb = "hands off" if decision == "handoff" else "asks to clarify"
    return f"{verb} (top hit '{top}')" if top else verb


def describe_case(result: dict[str, Any]) -> str:
    expects = (f"expects '{result['expected_id']}'" if result["expected_id"] is not None
               else "expects no answer")
    return (f"#{result['id']} \"{result['query']}\" ({expects}; {result['after_label']} "
            f"{outcome_text(result['after'])})")


def name_cases(results: Sequence[dict[str, Any]], after_label: str) -> str:
    named = [describe_case({**r, "after_label": after_label}) for r in results[:NAMED_IN_MESSAGES]]
    more = len(results) - len(named)
    return "; ".join(named) + (f"; and {more} more" if more > 0 else "")
