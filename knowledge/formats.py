"""Knowledge-base files: read ``.jsonl``, ``.csv``, ``.md``, ``.txt``, ``.html``; write ``.jsonl``.

Reading is strict and all-or-nothing: the first bad row raises ``InvalidInput`` naming the
file, the line and the problem, and nothing is returned. JSONL lines with ``"kind":
"document"`` carry documents, so an export holds the whole knowledge base.
"""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from knowledge.chunking import html_to_markdown, markdown_title
from knowledge.errors import InvalidInput
from knowledge.records import Document, Entry, Record

FAQ_SUFFIXES = {".jsonl", ".csv"}
MAX_SUBJECT_CHARS = 200
DOCUMENT_SUFFIXES = {".md", ".markdown", ".txt", ".html", ".htm"}
SUPPORTED = sorted(FAQ_SUFFIXES | DOCUMENT_SUFFIXES)
MAX_ID_CHARS = 200


class _RowError(Exception):
    pass


def read_files(paths: Sequence[str | Path]) -> list[Record]:
    """Parse every file; ids must be unique across all of them."""
    records: list[Record] = []
    origin: dict[str, str] = {}
    for raw in paths:
        path = Path(raw)
        for record, where in read_file(path):
            if record.id in origin:
                raise InvalidInput(
                    f"{where}: id '{record.id}' appears twice (first at {origin[record.id]}). "
                    "Give each entry a unique id."
                )
            origin[record.id] = where
            records.append(record)
    return records


def read_file(path: Path) -> list[tuple[Record, str]]:
    """Records of one file, each with ``file:line`` for messages."""
    suffix = path.suffix.lower()
    if suffix not in FAQ_SUFFIXES | DOCUMENT_SUFFIXES:
        raise InvalidInput(
            f"{path}: unsupported file type '{suffix or '(none)'}'. "
            f"Use one of: {', '.join(SUPPORTED)}."
        )
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file.")
    text = _read_text(path)
    if suffix == ".jsonl":
        return _read_jsonl(path, text)
    if suffix == ".csv":
        return _read_csv(path, text)
    try:
        return [(_read_document(path, text), f"{path}, line 1")]
    except _RowError as exc:
        raise InvalidInput(f"{path}: {exc}") from None


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InvalidInput(
            f"{path}, line {line}: the file is not valid UTF-8 (byte {exc.start}). "
            "Save it as UTF-8 and import again."
        ) from None


def _read_jsonl(path: Path, text: str) -> list[tuple[Record, str]]:
    out: list[tuple[Record, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{where}: not valid JSON ({exc.msg}, column {exc.colno}).") from None
        if not isinstance(obj, dict):
            raise InvalidInput(f"{where}: expected a JSON object, got {type(obj).__name__}.")
        try:
            record: Record = (
                _document_from(obj) if obj.get("kind") == "document" else entry_from_dict(obj)
            )
        except _RowError as exc:
            raise InvalidInput(f"{where}: {exc}") from None
        out.append((record, where))
    if not out:
        raise InvalidInput(f"{path}: the file holds no entries.")
    return out


def _read_csv(path: Path, text: str) -> list[tuple[Record, str]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [(h or "").strip().lower() for h in reader.fieldnames or []]
    missing = [c for c in ("id", "question", "answer") if c not in header]
    if missing:
        raise InvalidInput(
            f"{path}, line 1: the header lacks the column(s) {', '.join(missing)}; "
            "it needs at least id,question,answer."
        )
    reader.fieldnames = header
    out: list[tuple[Record, str]] = []
    start = 2
    for row in reader:
        where = f"{path}, line {start}"
        start = reader.line_num + 1
        if None in row:
            raise InvalidInput(f"{where}: the row has more fields than the header.")
        if not any((v or "").strip() for v in row.values()):
            continue
        obj: dict[str, Any] = {k: v for k, v in row.items() if v is not None}
        for col in ("paraphrases", "tags"):
            cell = obj.pop(col, "") or ""
            obj[col] = [p.strip() for p in cell.split("|") if p.strip()]
        try:
            out.append((entry_from_dict(obj, extra_keys=False), where))
        except _RowError as exc:
            raise InvalidInput(f"{where}: {exc}") from None
    if not out:
        raise InvalidInput(f"{path}: the file holds no entries.")
    return out


def _read_document(path: Path, text: str) -> Document:
    suffix = path.suffix.lower()
    doc_id = _check_id(path.stem)
    if suffix in (".html", ".htm"):
        title, body = html_to_markdown(text)
        fmt = "html"
    else:
        title, body = "", text
        fmt = "md" if suffix in (".md", ".markdown") else "txt"
    if not body.strip():
        raise InvalidInput(f"{path}: the document is empty.")
    title = title or (markdown_title(body) if fmt != "txt" else None) or _title_from_stem(path.stem)
    return Document(id=doc_id, title=title, text=_clean(body, multiline=True), format=fmt)


def _title_from_stem(stem: str) -> str:
    return stem.replace("-", " ").replace("_", " ").strip().capitalize()


def entry_from_dict(obj: dict[str, Any], *, extra_keys: bool = True) -> Entry:
    """Validate one entry in the JSONL shape; raises with a message naming the field."""
    for key in ("id", "question", "answer"):
        if key not in obj or obj[key] is None:
            raise _RowError(f"the required field '{key}' is missing.")
    entry_id = obj["id"]
    if isinstance(entry_id, bool) or not isinstance(entry_id, str | int):
        raise _RowError("'id' must be a string.")
    question = _text_field(obj, "question")
    answer = _text_field(obj, "answer")
    known = {"id", "question", "answer", "paraphrases", "tags", "kind"}
    extra = {k: v for k, v in obj.items() if k not in known} if extra_keys else {}
    subject = obj.get("subject")
    if subject is not None and subject != "":
        if not isinstance(subject, str) or not subject.strip():
            raise _RowError("'subject' must be a non-empty string (the product, place or plan "
                            "the entry is about), or left out for a general entry.")
        if len(subject) > MAX_SUBJECT_CHARS:
            raise _RowError(f"'subject' has {len(subject):,} characters; the limit is "
                            f"{MAX_SUBJECT_CHARS}.")
        extra["subject"] = " ".join(subject.split())
    else:
        extra.pop("subject", None)
    return Entry(
        id=_check_id(str(entry_id)),
        question=question,
        answer=answer,
        paraphrases=tuple(_string_list(obj, "paraphrases")),
        tags=tuple(_string_list(obj, "tags")),
        extra=extra,
    )


def _document_from(obj: dict[str, Any]) -> Document:
    for key in ("id", "title", "text"):
        if not isinstance(obj.get(key), str) or not obj[key].strip():
            raise _RowError(f"a document needs a non-empty string '{key}'.")
    fmt = obj.get("format", "md")
    if fmt not in ("md", "txt", "html"):
        raise _RowError("'format' must be md, txt or html.")
    return Document(
        id=_check_id(obj["id"]),
        title=_clean(obj["title"]),
        text=_clean(obj["text"], multiline=True),
        format=fmt,
    )


def _text_field(obj: dict[str, Any], key: str) -> str:
    value = obj[key]
    if not isinstance(value, str):
        raise _RowError(f"'{key}' must be a string, not {type(value).__name__}.")
    value = _clean(value, multiline=True)
    if not value:
        raise _RowError(f"'{key}' is empty.")
    return value


def _string_list(obj: dict[str, Any], key: str) -> list[str]:
    value = obj.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise _RowError(f"'{key}' must be a list of strings.")
    out: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise _RowError(f"'{key}' must hold only strings, found {type(item).__name__}.")
        item = _clean(item)
        if item and item not in out:
            out.append(item)
    return out


def _check_id(entry_id: str) -> str:
    entry_id = entry_id.strip()
    if not entry_id:
        raise _RowError("'id' is empty.")
    if len(entry_id) > MAX_ID_CHARS:
        raise _RowError(f"'id' is {len(entry_id)} characters long; the limit is {MAX_ID_CHARS}.")
    if any(unicodedata.category(c).startswith("C") for c in entry_id):
        raise _RowError("'id' contains control characters.")
    return entry_id


def _clean(text: str, *, multiline: bool = False) -> str:
    text = unicodedata.normalize("NFC", text)
    keep = "\n\t" if multiline else ""
    text = "".join(c for c in text if c in keep or unicodedata.category(c) != "Cc")
    return text.strip() if multiline else " ".join(text.split())


def write_jsonl(path: Path, records: Iterable[Record]) -> int:
    """Write records as JSONL (entries in the contract shape, documents with kind)."""
    count = 0
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
            count += 1
    tmp.replace(path)
    return count
