"""Pure helpers of the knowledge-base editor: validating staff input, searching drafts, and the
difference between two sets of records (a draft and a version, or two versions).

Input is checked by the same rules as knowledge-base files (``knowledge.formats``), so an entry
the console or the staff API accepts is one that ``chatbot kb import`` would accept, with the
same messages; a few extra rules apply to ids typed by staff, which end up in URLs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from chatbot.errors import InvalidInput
from knowledge import formats
from knowledge.records import Document, Entry, Record

MAX_NOTE_CHARS = 500  # kb_versions.note
MAX_PARAPHRASE_CHARS = 1000
# An id typed by staff becomes part of a URL (/entries/{id}) and of passage ids (<doc>#<n>).
URL_UNSAFE = set("/\\#?%")
DOCUMENT_FORMATS = ("md", "txt")


def entry_from_input(obj: Mapping[str, Any], *, where: str = "The entry") -> Entry:
    """An ``Entry`` from the JSONL shape, or ``InvalidInput`` naming the field at fault."""
    if not isinstance(obj, Mapping):
        raise InvalidInput(f"{where} must be a JSON object with id, question and answer.")
    if obj.get("kind", "faq") != "faq":
        raise InvalidInput(f"{where} has kind '{obj.get('kind')}'; FAQ entries have no kind "
                           "(documents are edited as documents).")
    try:
        # The file reader's private error type carries the message for one row.
        return formats.entry_from_dict(dict(obj))
    except formats._RowError as exc:
        raise InvalidInput(f"{where}: {exc}") from None


def document_from_input(obj: Mapping[str, Any], *, where: str = "The document") -> Document:
    if not isinstance(obj, Mapping):
        raise InvalidInput(f"{where} must be a JSON object with id, title and text.")
    fmt = obj.get("format") or "md"
    if fmt not in DOCUMENT_FORMATS:
        raise InvalidInput(f"{where}: 'format' must be md (Markdown) or txt (plain text).")
    try:
        return formats._document_from({**obj, "format": fmt})
    except formats._RowError as exc:
        raise InvalidInput(f"{where}: {exc}") from None


def check_new_id(record_id: str) -> str:
    bad = sorted(set(record_id) & URL_UNSAFE)
    if bad or any(c.isspace() for c in record_id):
        shown = " ".join(repr(c) for c in bad) or "spaces"
        raise InvalidInput(
            f"The id '{record_id}' contains {shown}; use letters, digits, '-', '_' or '.' "
            "(for example 'returns-window')."
        )
    return record_id


def paraphrase_text(text: Any) -> str:
    if not isinstance(text, str) or not " ".join(text.split()):
        raise InvalidInput("The paraphrase is empty; type how a customer would ask the question.")
    text = " ".join(text.split())
    if len(text) > MAX_PARAPHRASE_CHARS:
        raise InvalidInput(
            f"The paraphrase is {len(text):,} characters; the limit is {MAX_PARAPHRASE_CHARS:,}."
        )
    return text


def note_text(note: Any) -> str:
    if note is None:
        return ""
    if not isinstance(note, str):
        raise InvalidInput("The note must be text.")
    note = " ".join(note.split())
    if len(note) > MAX_NOTE_CHARS:
        raise InvalidInput(f"The note is {len(note):,} characters; the limit is {MAX_NOTE_CHARS}.")
    return note


def matches(record: Record, terms: Sequence[str], tag: str) -> bool:
    """Every search term appears in the id, question, answer or a paraphrase (or a document's
    title and text), ignoring case; ``tag`` (if any) is one of the entry's tags."""
    if isinstance(record, Entry):
        if tag and tag.casefold() not in (t.casefold() for t in record.tags):
            return False
        haystack = " ".join((record.id, record.question, record.answer, *record.paraphrases))
    else:
        if tag:
            return False
        haystack = " ".join((record.id, record.title, record.text))
    haystack = haystack.casefold()
    return all(term in haystack for term in terms)


def search_terms(search: str | None) -> list[str]:
    return (search or "").casefold().split()


def tag_counts(records: Iterable[Record]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        if isinstance(record, Entry):
            for tag in record.tags:
                counts[tag] = counts.get(tag, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0].casefold())))


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC (SQLite hands back naive datetimes that were stored as UTC)."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def summary(record: Record) -> dict[str, Any]:
    return {"id": record.id, "kind": record.kind, "title": record.title}


def _fields(record: Record) -> dict[str, Any]:
    data = record.to_dict()
    data.pop("id")
    return data


def diff_records(before: Sequence[Record], after: Sequence[Record]) -> dict[str, Any]:
    """``added`` and ``removed`` (whole records), ``changed`` (each with the fields that
    changed and their values before and after) and the count of ``unchanged`` records."""
    old = {r.id: r for r in before}
    new = {r.id: r for r in after}
    added = [new[i].to_dict() for i in sorted(new.keys() - old.keys())]
    removed = [old[i].to_dict() for i in sorted(old.keys() - new.keys())]
    changed = []
    unchanged = 0
    for record_id in sorted(old.keys() & new.keys()):
        a, b = _fields(old[record_id]), _fields(new[record_id])
        fields = sorted(
            (k for k in a.keys() | b.keys() if a.get(k) != b.get(k)), key=_field_order
        )
        if old[record_id].kind != new[record_id].kind:
            fields = ["kind", *fields]
        if not fields:
            unchanged += 1
            continue
        a["kind"], b["kind"] = old[record_id].kind, new[record_id].kind
        changed.append({
            **summary(new[record_id]),
            "fields": fields,
            "before": {k: a.get(k) for k in fields},
            "after": {k: b.get(k) for k in fields},
        })
    return {"added": added, "removed": removed, "changed": changed, "unchanged": unchanged}


_ORDER = ("kind", "question", "title", "answer", "text", "paraphrases", "tags", "format")


def _field_order(name: str) -> tuple[int, str]:
    return (_ORDER.index(name) if name in _ORDER else len(_ORDER), name)


def diff_counts(diff: Mapping[str, Any]) -> dict[str, int]:
    return {k: len(diff[k]) for k in ("added", "changed", "removed")}
