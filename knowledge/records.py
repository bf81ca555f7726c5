"""The knowledge base's records: FAQ entries, documents and the passages documents split into."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Entry:
    """One FAQ entry, in the JSONL shape of CONTRACT.md (plus any extra fields kept as-is)."""

    id: str
    question: str
    answer: str
    paraphrases: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    kind = "faq"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "question": self.question,
            "answer": self.answer,
            "paraphrases": list(self.paraphrases),
            "tags": list(self.tags),
        }
        for key, value in self.extra.items():
            out.setdefault(key, value)
        return out

    @property
    def title(self) -> str:
        return self.question

    @property
    def subject(self) -> str:
        """The product, place or plan the entry is about ("" for a general entry)."""
        value = self.extra.get("subject")
        return value.strip() if isinstance(value, str) else ""

    def variants(self) -> list[str]:
        """Every phrasing that should retrieve this entry, question first, duplicates dropped."""
        seen: dict[str, None] = {}
        for text in (self.question, *self.paraphrases):
            seen.setdefault(text, None)
        return list(seen)


@dataclass(frozen=True)
class Document:
    """A policy page or manual; retrieval sees it as passages with ids ``<id>#<n>``."""

    id: str
    title: str
    text: str
    format: str = "md"  # md | txt | html (the text is stored as Markdown or plain text)

    kind = "document"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": "document",
            "title": self.title,
            "text": self.text,
            "format": self.format,
        }


@dataclass(frozen=True)
class Passage:
    id: str  # "<document id>#<n>", n from 1
    document_id: str
    title: str
    text: str


Record = Entry | Document


def record_from_data(kind: str, entry_id: str, data: dict[str, Any]) -> Record:
    if kind == "document":
        return Document(
            id=entry_id, title=data["title"], text=data["text"], format=data.get("format", "md")
        )
    known = {"id", "question", "answer", "paraphrases", "tags"}
    return Entry(
        id=entry_id,
        question=data["question"],
        answer=data["answer"],
        paraphrases=tuple(data.get("paraphrases", ())),
        tags=tuple(data.get("tags", ())),
        extra={k: v for k, v in data.items() if k not in known},
    )


def record_data(record: Record) -> dict[str, Any]:
    data = record.to_dict()
    data.pop("id")
    data.pop("kind", None)
    return data


def content_hash(payload: Any) -> str:
    raw = json.dumps(payload, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()
