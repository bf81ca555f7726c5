"""Unanswered questions (area "kb"): what customers asked that the bot could not answer,
grouped by meaning, and resolved by an editor in one step.

Which questions count is defined in ``chatbot.staff.questions``. They are grouped by average-
linkage clustering of their sentence embeddings: two groups merge while the mean cosine
similarity between their questions is at least ``GROUP_THRESHOLD``. Measured with the bundled
all-MiniLM-L6-v2 on 34 shop questions in 10 topics (3-4 wordings each, none in the demo KB):
paraphrases have cosine 0.42-0.90 (median 0.67), questions of different topics at most 0.64
(median 0.13). At 0.50 the clustering gives 11 groups: 7 topics exactly, "how do I get a
discount" mixed with "student discount" (cosine up to 0.64), "careers" split in two; 0.45
gives 9 groups with more mixing, 0.60 splits paraphrases into 17 groups. The test set
(``tests/test_staff_unanswered.py``) holds five of those topics. Splitting costs an editor one more
click; mixing hides a question, so the threshold leans to splitting.

Resolving a group writes one ``unanswered_resolutions`` row per message (so it leaves the
list) and one audit event; the entry or paraphrase itself goes through the knowledge-base
editor, as a draft until the next publish.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from chatbot.errors import Conflict, InvalidInput, NotFound
from chatbot.models import MessageRow, UnansweredResolutionRow
from chatbot.staff.accounts import StaffUser, require
from chatbot.staff.audit import AuditLog
from chatbot.staff.dates import Span
from chatbot.staff.questions import OUT_OF_SCOPE, Question, collect, out_of_scope_texts

if TYPE_CHECKING:
    from chatbot.staff.kb_editor import KnowledgeEditor
    from knowledge.embeddings import Embedder
    from knowledge.retrieval import Retriever

GROUP_THRESHOLD = 0.50
MAX_QUESTIONS = 4000  # the newest ones are grouped: the distance matrix grows with n²
MAX_EXAMPLES = 5
MAX_IDS = 5000  # message ids in one resolution
_STOPWORDS = frozenset(
    "a an the i my me we our you your is are am do does did can could would should will to of "
    "for in on at it this that with and or be have has how what when where which why who "
    "please there any".split()
)


@dataclass
class Group:
    question: str  # the example nearest the group's centre
    message_ids: list[int]
    examples: list[str]  # distinct texts, most frequent first
    reasons: dict[str, int]
    first_seen: datetime
    last_seen: datetime
    nearest: dict[str, Any] | None  # {"id", "question", "score"} of the closest FAQ entry
    suggested_id: str
    conversation_ids: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.message_ids)

    @property
    def key(self) -> str:
        return f"q{min(self.message_ids)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "question": self.question,
            "count": self.count,
            "message_ids": self.message_ids,
            "examples": self.examples,
            "reasons": self.reasons,
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "nearest": self.nearest,
            "suggested_id": self.suggested_id,
            "conversation_ids": self.conversation_ids,
        }


def suggest_id(question: str) -> str:
    """An entry id from a question: its first few content words, e.g. ``gift-cards``."""
    words = re.findall(r"[a-z0-9]+", question.lower())
    content = [w for w in words if w not in _STOPWORDS] or words
    slug = "-".join(content[:5])[:60].strip("-")
    return slug or "new-entry"


def cluster(vectors: np.ndarray, threshold: float = GROUP_THRESHOLD) -> list[list[int]]:
    """Average-linkage groups of unit vectors (indexes), largest first."""
    n = len(vectors)
    if n == 0:
        return []
    if n == 1:
        return [[0]]
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist

    distances = np.clip(pdist(np.asarray(vectors, dtype=np.float64), "cosine"), 0.0, 2.0)
    labels = fcluster(linkage(distances, method="average"), t=1.0 - threshold, criterion="distance")
    groups: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        groups.setdefault(int(label), []).append(index)
    return sorted(groups.values(), key=lambda g: (-len(g), g[0]))


def _norm(text: str) -> str:
    return " ".join(text.lower().split()).rstrip("?!. ")


class Unanswered:
    def __init__(
        self,
        engine: Engine,
        embedder: Embedder,
        retriever: Retriever,
        editor: KnowledgeEditor,
        audit: AuditLog,
        calibration_report: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self._calibration_report = calibration_report
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self.embedder = embedder
        self.retriever = retriever
        self.editor = editor
        self.audit = audit

    # --- reading ----------------------------------------------------------------------

    def questions(
        self, actor: StaffUser, start: str | date | None = None, end: str | date | None = None
    ) -> list[Question]:
        """Unresolved unanswered questions asked between ``start`` and ``end`` (open ends)."""
        require(actor, "kb")
        span = Span.parse(start, end)
        with self._sessions() as session:
            return collect(session, span)

    def groups(
        self,
        actor: StaffUser,
        start: str | date | None = None,
        end: str | date | None = None,
        *,
        limit: int = 50,
    ) -> list[Group]:
        """Groups of similar unresolved questions, largest first (ties: most recent first)."""
        if not 1 <= limit <= 1000:
            raise InvalidInput(f"'limit' must be between 1 and 1000 (got {limit}).")
        questions = self.questions(actor, start, end)[-MAX_QUESTIONS:]
        if not questions:
            return []
        # Identical texts are embedded once and always share a group.
        texts = sorted({_norm(q.text) for q in questions})
        position = {text: i for i, text in enumerate(texts)}
        vectors = self.embedder.embed_sentences(texts)
        out = []
        for members in cluster(vectors):
            chosen = set(members)
            group = [q for q in questions if position[_norm(q.text)] in chosen]
            out.append(self._group(group, vectors[members], [texts[m] for m in members]))
        out.sort(key=lambda g: (-g.count, -g.last_seen.timestamp()))
        return out[:limit]

    def _group(self, questions: list[Question], vectors: np.ndarray, keys: list[str]) -> Group:
        """One group: ``vectors[i]`` embeds the normalised text ``keys[i]``."""
        counts = Counter(_norm(q.text) for q in questions)
        wording: dict[str, str] = {}
        for q in questions:  # the most recent wording stands for identical texts
            wording[_norm(q.text)] = q.text
        weights = np.array([counts[k] for k in keys], dtype=np.float64)
        centre = (weights[:, None] * vectors).sum(axis=0)
        closeness = vectors @ centre
        nearest_centre = keys[int(np.argmax(closeness))]
        order = sorted(range(len(keys)), key=lambda i: (-counts[keys[i]], -closeness[i]))
        reasons = Counter(reason for q in questions for reason in q.reasons)
        representative = wording[nearest_centre]
        return Group(
            question=representative,
            message_ids=[q.message_id for q in questions],
            examples=[wording[keys[i]] for i in order[:MAX_EXAMPLES]],
            reasons=dict(reasons.most_common()),
            first_seen=min(q.at for q in questions),
            last_seen=max(q.at for q in questions),
            nearest=self._nearest(representative),
            suggested_id=suggest_id(representative),
            conversation_ids=sorted({q.conversation_id for q in questions}),
        )

    def _nearest(self, question: str) -> dict[str, Any] | None:
        for hit in self.retriever.search(question, k=10):
            if hit.kind == "faq":
                return {"id": hit.id, "question": hit.title, "score": round(hit.score, 4)}
        return None

    # --- resolving --------------------------------------------------------------------

    def to_entry(
        self, actor: StaffUser, message_ids: Sequence[int], entry: Mapping[str, Any]
    ) -> dict[str, Any]:
        """A new draft entry answers the group; its id defaults to one made from the question."""
        require(actor, "kb")
        ids = self._unresolved(message_ids)
        if not isinstance(entry, Mapping):
            raise InvalidInput("The entry must be an object with 'question' and 'answer'.")
        entry = dict(entry)
        if not str(entry.get("id") or "").strip():
            entry["id"] = suggest_id(str(entry.get("question") or ""))
        created = self.editor.create_entry(actor, entry)
        entry_id = str(created.get("id", entry["id"]))
        self._resolve(actor, ids, "entry", entry_id)
        return {"resolved": len(ids), "action": "entry", "entry": created}

    def to_paraphrase(
        self, actor: StaffUser, message_ids: Sequence[int], entry_id: str, text: str | None = None
    ) -> dict[str, Any]:
        """The group's question becomes a paraphrase of an existing entry (``text`` defaults to
        the first message's text)."""
        require(actor, "kb")
        ids = self._unresolved(message_ids)
        entry_id = (entry_id or "").strip()
        if not entry_id:
            raise InvalidInput("Say which entry the paraphrase belongs to ('entry_id').")
        text = " ".join((text or "").split()) or self._text_of(ids[0])
        updated = self.editor.add_paraphrase(actor, entry_id, text)
        self._resolve(actor, ids, "paraphrase", entry_id, text=text)
        return {"resolved": len(ids), "action": "paraphrase", "entry": updated}

    def dismiss(self, actor: StaffUser, message_ids: Sequence[int]) -> dict[str, Any]:
        """The questions need no entry (spam, out of scope, already handled)."""
        require(actor, "kb")
        ids = self._unresolved(message_ids)
        self._resolve(actor, ids, "dismissed", None)
        return {"resolved": len(ids), "action": "dismissed", "entry": None}

    def calibration(self, actor: StaffUser) -> dict[str, Any]:
        """How sure the bot is on the live version (``ChatService.calibration_report``), and
        how many questions staff marked out of scope for the next calibration."""
        require(actor, "kb")
        report = self._calibration_report() if self._calibration_report else {}
        with self._sessions() as session:
            marked = len(out_of_scope_texts(session))
        return {**report, "marked_out_of_scope": marked}

    def mark_out_of_scope(self, actor: StaffUser, message_ids: Sequence[int]) -> dict[str, Any]:
        """The questions are not for the knowledge base: they leave the list, and the next
        published version's calibration counts them as unanswerable (so the bot learns not to
        answer such questions confidently)."""
        require(actor, "kb")
        ids = self._unresolved(message_ids)
        self._resolve(actor, ids, OUT_OF_SCOPE, None)
        return {"resolved": len(ids), "action": OUT_OF_SCOPE, "entry": None}

    def _unresolved(self, message_ids: Sequence[int]) -> list[int]:
        """The ids, checked: customer messages that exist and are not resolved yet."""
        if isinstance(message_ids, (str, bytes)) or not isinstance(message_ids, Sequence):
            raise InvalidInput("'message_ids' must be a list of message ids.")
        if not message_ids:
            raise InvalidInput("'message_ids' is empty: pick the questions to resolve.")
        if len(message_ids) > MAX_IDS:
            raise InvalidInput(f"At most {MAX_IDS:,} questions can be resolved at once.")
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in message_ids):
            raise InvalidInput("'message_ids' must hold whole numbers only.")
        ids = sorted(set(message_ids))
        with self._sessions() as session:
            found = dict(session.execute(
                select(MessageRow.id, MessageRow.role).where(MessageRow.id.in_(ids))
            ).tuples().all())
            done = set(session.scalars(select(UnansweredResolutionRow.message_id).where(
                UnansweredResolutionRow.message_id.in_(ids))))
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFound(f"There is no message {_list(missing)}.")
        not_customer = [i for i in ids if found[i] != "user"]
        if not_customer:
            raise InvalidInput(f"Message {_list(not_customer)} is not a customer's question.")
        if done:
            raise Conflict(
                f"Question {_list(sorted(done))} was already resolved; reload the list."
            )
        return ids

    def _text_of(self, message_id: int) -> str:
        with self._sessions() as session:
            return session.get(MessageRow, message_id).content  # type: ignore[union-attr]

    def _resolve(
        self, actor: StaffUser, ids: list[int], action: str, entry_id: str | None, **detail: Any
    ) -> None:
        try:
            with self._sessions.begin() as session:
                session.add_all(
                    UnansweredResolutionRow(
                        message_id=i, action=action, entry_id=entry_id, author=actor.email
                    )
                    for i in ids
                )
        except IntegrityError:  # someone resolved one of them since the check
            raise Conflict(
                "Someone else resolved some of these questions meanwhile; reload the list."
                + (f" The entry '{entry_id}' was saved." if entry_id else "")
            ) from None
        self.audit.record(
            actor, f"unanswered.{'dismiss' if action == 'dismissed' else action}",
            entry_id or "", message_ids=ids, **detail,
        )


def _list(ids: Sequence[int]) -> str:
    shown = ", ".join(str(i) for i in ids[:10])
    return shown + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
