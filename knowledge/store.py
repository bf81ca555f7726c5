"""KnowledgeStore: entries with revisions, and published versions.

Invariants:
- every change (create, update, delete) appends a row to ``kb_revisions``; the draft row in
  ``kb_entries`` always equals the newest revision;
- an unchanged record (same content hash) creates no revision;
- a published version is immutable: it maps entry ids to revision ids, so customers are
  answered from exactly what was published while drafts change;
- imports are one transaction: a bad file leaves the knowledge base as it was.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, insert, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from knowledge.errors import Conflict, InvalidInput, NotFound
from knowledge.models import EntryRow, RevisionRow, VersionEntryRow, VersionRow, utcnow
from knowledge.records import Record, content_hash, record_data, record_from_data


@dataclass(frozen=True)
class ChangeSummary:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0


@dataclass(frozen=True)
class VersionInfo:
    version: int
    published_at: datetime
    author: str
    note: str


class KnowledgeStore:
    def __init__(self, engine: Engine) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def _writing(self) -> Iterator[Session]:
        """One write transaction. Two editors (on one server or on two sharing the database)
        changing the same entry at the same moment both read revision N and both write N + 1;
        the unique (entry, revision) key refuses the second, which is told to try again."""
        try:
            with self._sessions.begin() as session:
                yield session
        except IntegrityError as exc:
            raise Conflict(
                "Someone else changed the same entries at the same moment, so this change was "
                "not saved; reload and try again."
            ) from exc

    # --- drafts -----------------------------------------------------------------------

    def save(
        self,
        records: Sequence[Record],
        *,
        author: str = "system",
        replace: bool = False,
        publish: bool = False,
        note: str = "",
    ) -> tuple[ChangeSummary, int | None]:
        """Create or update records (``replace``: delete every other entry) in one transaction.

        Returns the change summary and, with ``publish``, the new version number.
        """
        with self._writing() as session:
            summary = self._save(session, records, author=author, replace=replace)
            version = self._publish(session, author=author, note=note) if publish else None
        return summary, version

    def delete(self, entry_id: str, *, author: str = "system") -> None:
        with self._writing() as session:
            row = session.get(EntryRow, entry_id)
            if row is None or row.deleted:
                raise NotFound(f"There is no entry with id '{entry_id}'.")
            self._append_revision(session, row, row.kind, row.data, deleted=True, author=author)

    def drafts(self) -> list[Record]:
        with self._sessions() as session:
            rows = session.scalars(
                select(EntryRow).where(EntryRow.deleted.is_(False)).order_by(EntryRow.id)
            )
            return [record_from_data(r.kind, r.id, r.data) for r in rows]

    def get(self, entry_id: str) -> Record:
        with self._sessions() as session:
            row = session.get(EntryRow, entry_id)
            if row is None or row.deleted:
                raise NotFound(f"There is no entry with id '{entry_id}'.")
            return record_from_data(row.kind, row.id, row.data)

    def history(self, entry_id: str) -> list[dict[str, Any]]:
        with self._sessions() as session:
            rows = session.scalars(
                select(RevisionRow)
                .where(RevisionRow.entry_id == entry_id)
                .order_by(RevisionRow.revision)
            )
            return [
                {
                    "revision": r.revision,
                    "action": r.action,
                    "author": r.author,
                    "created_at": r.created_at,
                    "data": r.data,
                }
                for r in rows
            ]

    # --- versions ---------------------------------------------------------------------

    def publish(self, *, author: str = "system", note: str = "") -> int:
        with self._writing() as session:
            return self._publish(session, author=author, note=note)

    def current_version(self) -> int:
        with self._sessions() as session:
            return session.scalar(select(func.max(VersionRow.version))) or 0

    def versions(self) -> list[VersionInfo]:
        with self._sessions() as session:
            rows = session.scalars(select(VersionRow).order_by(VersionRow.version.desc()))
            return [VersionInfo(r.version, r.published_at, r.author, r.note) for r in rows]

    def published(self, version: int | None = None) -> list[Record]:
        """The records customers are answered from (the latest version by default)."""
        with self._sessions() as session:
            if version is None:
                version = session.scalar(select(func.max(VersionRow.version))) or 0
            if version == 0:  # nothing published yet: an empty knowledge base
                return []
            if session.get(VersionRow, version) is None:
                raise NotFound(f"There is no knowledge-base version {version}.")
            rows = session.execute(
                select(RevisionRow.kind, RevisionRow.entry_id, RevisionRow.data)
                .join(VersionEntryRow, VersionEntryRow.revision_id == RevisionRow.id)
                .where(VersionEntryRow.version == version)
                .order_by(RevisionRow.entry_id)
            )
            return [record_from_data(kind, eid, data) for kind, eid, data in rows]

    def rollback(self, version: int, *, author: str = "system") -> int:
        """Publish a new version whose content equals ``version``."""
        with self._writing() as session:
            if session.get(VersionRow, version) is None:
                raise NotFound(f"There is no knowledge-base version {version}.")
            old = session.execute(
                select(RevisionRow.entry_id, RevisionRow.kind, RevisionRow.data)
                .join(VersionEntryRow, VersionEntryRow.revision_id == RevisionRow.id)
                .where(VersionEntryRow.version == version)
            ).all()
            records = [record_from_data(kind, eid, data) for eid, kind, data in old]
            self._save(session, records, author=author, replace=True)
            return self._publish(session, author=author, note=f"rollback to version {version}")

    # --- internals --------------------------------------------------------------------

    def _save(
        self, session: Session, records: Sequence[Record], *, author: str, replace: bool
    ) -> ChangeSummary:
        created = updated = unchanged = deleted = 0
        ids = set()
        for record in records:
            if record.id in ids:
                raise InvalidInput(f"The id '{record.id}' appears twice in one change.")
            ids.add(record.id)
            data = record_data(record)
            row = session.get(EntryRow, record.id)
            if row is None:
                row = EntryRow(id=record.id, kind=record.kind, data=data, revision=0)
                session.add(row)
                self._append_revision(session, row, record.kind, data, author=author)
                created += 1
            elif row.deleted or row.kind != record.kind or content_hash(row.data) != content_hash(
                data
            ):
                was_deleted = row.deleted
                self._append_revision(session, row, record.kind, data, author=author)
                created += was_deleted
                updated += not was_deleted
            else:
                unchanged += 1
        if replace:
            others = session.scalars(
                select(EntryRow).where(EntryRow.deleted.is_(False), EntryRow.id.not_in(ids))
            )
            for row in list(others):
                self._append_revision(session, row, row.kind, row.data, deleted=True, author=author)
                deleted += 1
        return ChangeSummary(created, updated, unchanged, deleted)

    @staticmethod
    def _append_revision(
        session: Session,
        row: EntryRow,
        kind: str,
        data: dict[str, Any],
        *,
        author: str,
        deleted: bool = False,
    ) -> None:
        action = "delete" if deleted else ("create" if row.revision == 0 or row.deleted else "update")
        row.revision += 1
        row.kind = kind
        row.data = data
        row.deleted = deleted
        row.updated_at = utcnow()
        session.add(
            RevisionRow(
                entry_id=row.id,
                revision=row.revision,
                kind=kind,
                data=data,
                deleted=deleted,
                content_hash=content_hash({"kind": kind, "data": data}),
                action=action,
                author=author,
            )
        )
        session.flush()

    @staticmethod
    def _publish(session: Session, *, author: str, note: str) -> int:
        version = VersionRow(author=author, note=note)
        session.add(version)
        session.flush()
        # One INSERT ... SELECT: a version lists every live entry, and 10k ORM rows took a
        # second of a publish.
        live = (
            select(literal(version.version), RevisionRow.entry_id, RevisionRow.id)
            .join(
                EntryRow,
                (EntryRow.id == RevisionRow.entry_id) & (EntryRow.revision == RevisionRow.revision),
            )
            .where(EntryRow.deleted.is_(False))
        )
        session.execute(
            insert(VersionEntryRow).from_select(
                ["version", "entry_id", "revision_id"], live
            )
        )
        return version.version
