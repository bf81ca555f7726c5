"""The live side of the knowledge-base editor: warming the search index right after a publish
(and after a publish by another server process sharing the database), and "try a question"
(what the bot would do with a message, on the live version).

Why a warm-up: ``Retriever.index()`` notices a new published version on the next search and
builds its index then (reusing unchanged items' vectors). Doing that in a background thread as
soon as the version is published means the first customer after a publish does not pay for
the build, and the console can say when the new version is actually being answered from.
A customer turn that arrives during the build waits on the retriever's lock and is answered
from the new version; a turn already under way keeps the index it started with.

Several server processes may share one database (README, Scale-out): a publish on one is seen
by the others' ``VersionWatcher``, which polls the published version and starts the same warm-up
in each of them.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from chatbot import grounding, replies
from chatbot.dialogue.decision import Decision, Thresholds, is_fast_path
from chatbot.dialogue.manager import plan_turn
from chatbot.periodic import PeriodicJob
from chatbot.service import ChatService, clean_message
from knowledge.retrieval import Hit, Retriever

log = logging.getLogger(__name__)


class IndexWarmer:
    """Builds the retriever's index for the newest version in a background thread."""

    def __init__(self, retriever: Retriever) -> None:
        self.retriever = retriever
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()
        self.last: dict[str, Any] = {}
        self._started = 0.0
        self._live_after: float | None = None  # seconds from publish to live, this build

    def start(self) -> None:
        self._started = time.perf_counter()
        self._live_after: float | None = None
        with self._guard:
            thread = threading.Thread(target=self._run, name="kb-index-warm", daemon=True)
            self._thread = thread
            thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float) -> bool:
        """True once the newest version answers, or no build runs any more (within
        ``timeout`` seconds). The version's calibration may still be fitted after that."""
        thread = self._thread
        deadline = time.monotonic() + timeout
        while thread is not None and thread.is_alive() and time.monotonic() < deadline:
            if self.retriever.version == self.retriever.store.current_version():
                self._live_after = time.perf_counter() - self._started
                return True
            thread.join(0.02)
        return thread is None or not thread.is_alive()

    def _run(self) -> None:
        started = time.perf_counter()
        try:
            index = self.retriever.index()
            self.last = {"version": index.version, "seconds": time.perf_counter() - started,
                         "error": None}
            log.info("knowledge-base version %s is live (index ready in %.2f s)",
                     index.version, self.last["seconds"])
        except Exception as exc:  # the next customer search retries the build
            log.exception("building the index after publish failed")
            self.last = {"version": None, "seconds": time.perf_counter() - started,
                         "error": str(exc) or type(exc).__name__}

    def status(self) -> dict[str, Any]:
        published = self.retriever.store.current_version()
        running = self.running
        live = self.retriever.version == published
        return {
            "published_version": published,
            "live_version": self.retriever.version,
            # Live as soon as the new index answers; its calibration may still be fitted
            # (meanwhile the previous version's is used).
            "ready": live,
            "building": running and not live,
            "calibrating": running and live,
            "last_build_seconds": (self._live_after if running and live
                                   else self.last.get("seconds")),
            "error": self.last.get("error"),
        }


class VersionWatcher(PeriodicJob):
    """Every ``interval`` seconds, warms this process's index when the published version is
    not the one it answers from: a publish by another server sharing the database, or a
    ``chatbot kb import`` beside a running server. (Without it the next customer search
    notices the new version and waits for the build itself.)"""

    thread_name = "kb-version-watch"
    failure = "checking the published knowledge-base version failed"  # e.g. the DB is down

    def __init__(self, warmer: IndexWarmer, interval: float) -> None:
        super().__init__(interval)
        self.warmer = warmer
        self.noticed = 0  # warm-ups this watcher started

    def check(self) -> bool:
        """Start a warm-up if the published version is not live here; True when one started."""
        retriever = self.warmer.retriever
        published = retriever.store.current_version()
        if self.warmer.running or published == retriever.version:
            return False
        log.info("knowledge-base version %s was published elsewhere; building its index",
                 published)
        self.warmer.start()
        self.noticed += 1
        return True

    tick = check


def try_question(chat: ChatService, text: str, *, k: int | None = None) -> dict[str, Any]:
    """The hits and decision of a first message ``text``, through the customer path's own
    ``plan_turn`` and thresholds; nothing is stored and no language model runs."""
    text = clean_message(text, chat.settings.max_message_chars)
    k = k or chat.settings.retrieval_top_k
    thresholds = chat.turn_thresholds()
    plan = plan_turn(text, [], chat.retriever, thresholds=thresholds, k=k)
    decision = plan.decision
    # The decision keeps only the candidates when it clarifies; show the whole ranking.
    ranked = chat.retriever.search(plan.query.text, k=k) if plan.intent.kind in (
        "question", "human") else []
    fast = is_fast_path(decision, thresholds)
    return {
        "question": text,
        "version": chat.retriever.version,
        "decision": "answer" if decision.kind == "smalltalk" else decision.kind,
        "reason": decision.reason,
        "explanation": explain(decision, thresholds, fast),
        "reply": _reply(chat, plan.intent.text, decision, fast),
        "fast_path": fast,
        "candidates": [h.id for h in decision.hits] if decision.kind == "clarify" else [],
        "hits": [_hit(rank, h) for rank, h in enumerate(ranked, start=1)],
        "thresholds": {"answer": thresholds.answer, "clarify": thresholds.clarify,
                       "margin": thresholds.margin, "fast_path": thresholds.fast_path},
    }


def _hit(rank: int, hit: Hit) -> dict[str, Any]:
    return {"rank": rank, "id": hit.id, "kind": hit.kind, "title": hit.title,
            "parent": hit.parent, "score": round(hit.score, 4), "text": hit.text,
            "signals": {"dense": round(hit.dense, 4), "lead": round(hit.lead, 4),
                        "keyword": round(hit.keyword, 4), "code": round(hit.code, 4)}}


def _reply(chat: ChatService, question: str, decision: Decision, fast: bool) -> str | None:
    """What the customer would read; None when the language model would write it."""
    if decision.kind == "smalltalk":
        return replies.SMALLTALK[decision.reason]
    if decision.kind == "handoff":
        return replies.HANDOFF.get(decision.reason)
    if decision.kind == "clarify":
        return replies.clarify_text(decision.hits, decision.reason)
    top = decision.hits[0]
    if fast or chat.generator is None:
        return grounding.fallback_text(question, top.kind, top.text, chat.embedder.embed_sentences)
    return None


def explain(decision: Decision, t: Thresholds, fast: bool) -> str:
    top = decision.top
    score = f"{top.score:.3f}" if top else "-"
    if decision.kind == "smalltalk":
        return f"Small talk ({decision.reason}): the bot replies without searching the knowledge base."
    if decision.reason == "customer_request":
        return "Hand off: the message asks for a person."
    if decision.reason == "no_answer":
        best = f"the best hit scores {score}" if top else "nothing was found"
        return f"Hand off: {best}, below the clarify threshold {t.clarify:.2f}."
    if decision.kind == "answer":
        how = (f"the fast path sends the entry's own answer (score ≥ {t.fast_path:.2f})" if fast
               else "the language model writes the reply from the top hits (not run here)")
        return (f"Answer with '{top.id}' ({score}): at or above the answer threshold "  # type: ignore[union-attr]
                f"{t.answer:.2f}, no other entry within {t.margin:g}; {how}.")
    if decision.reason == "ambiguous":
        ids = ", ".join(f"'{h.id}' ({h.score:.3f})" for h in decision.hits)
        return f"Clarify: {ids} score within {t.margin:g} of each other; the bot asks which is meant."
    if decision.kind == "clarify":
        return (f"Clarify: the best hit scores {score}, below the answer threshold {t.answer:.2f} "
                f"but at or above the clarify threshold {t.clarify:.2f}; the bot asks to confirm.")
    return f"{decision.kind.capitalize()} ({decision.reason}); the best hit scores {score}."
