"""Alembic is the only way a table changes: blank databases and databases holding rows upgrade,
and every migration goes down again, on SQLite and on PostgreSQL alike."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

import chatbot.models
import knowledge.models
from chatbot.conversations import ConversationStore
from chatbot.db import alembic_config, current_revision, make_engine, upgrade
from knowledge.records import Entry
from knowledge.store import KnowledgeStore

PREVIOUS = "0001"


@pytest.fixture
def engine(database_url: str):
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path):
    engine = make_engine(f"sqlite:///{tmp_path / 'db' / 'chatbot.db'}")
    yield engine
    engine.dispose()


def as_json(value: Any) -> Any:
    """A JSON column read with plain SQL: text on SQLite, already decoded on PostgreSQL."""
    return json.loads(value) if isinstance(value, str) else value


def head(engine) -> str:
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def columns(engine, table: str) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns(table)}


def test_blank_database_upgrades_to_head(engine):
    upgrade(engine)

    assert current_revision(engine) == head(engine)
    tables = set(inspect(engine).get_table_names())
    assert {
        "kb_entries",
        "kb_revisions",
        "kb_versions",
        "kb_version_entries",
        "embedding_cache",
        "conversations",
        "messages",
    } <= tables
    assert {"grounded", "meta"} <= columns(engine, "messages")
    assert "visitor_id" in columns(engine, "conversations")


def test_upgrade_is_idempotent(engine):
    upgrade(engine)
    upgrade(engine)
    assert current_revision(engine) == head(engine)


def test_every_migration_goes_down_and_up_again(engine):
    upgrade(engine)
    script = ScriptDirectory.from_config(alembic_config(engine))
    newest_first = [r.revision for r in script.walk_revisions()]
    for revision, below in zip(newest_first, [*newest_first[1:], None], strict=True):
        assert current_revision(engine) == revision
        command.downgrade(alembic_config(engine), "-1")
        assert current_revision(engine) == below
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(engine)
    assert current_revision(engine) == head(engine)


def test_previous_revision_with_rows_upgrades_and_keeps_them(engine):
    upgrade(engine, PREVIOUS)
    assert current_revision(engine) == PREVIOUS
    assert "grounded" not in columns(engine, "messages")
    now = "2026-01-02 03:04:05.000000"
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO conversations (id, status, created_at, updated_at) "
                "VALUES ('conv-1', 'waiting', :now, :now)"
            ),
            {"now": now},
        )
        conn.execute(
            text(
                "INSERT INTO messages (conversation_id, role, content, decision, sources, "
                "model, latency_ms, created_at) VALUES ('conv-1', 'user', 'Where is my order?', "
                "NULL, '[]', NULL, NULL, :now)"
            ),
            {"now": now},
        )
        conn.execute(
            text(
                "INSERT INTO messages (conversation_id, role, content, decision, sources, "
                "model, latency_ms, created_at) VALUES ('conv-1', 'assistant', 'Use the link.', "
                "'answer', :sources, 'scripted', 12.5, :now)"
            ),
            {"now": now, "sources": json.dumps([{"id": "order-tracking", "title": "T", "score": 0.9}])},
        )
        data = {"question": "How can I track my order?", "answer": "Use the link.",
                "paraphrases": [], "tags": []}
        conn.execute(
            text(
                "INSERT INTO kb_entries (id, kind, data, revision, deleted, updated_at) "
                "VALUES ('order-tracking', 'faq', :data, 1, :no, :now)"
            ),
            {"data": json.dumps(data), "now": now, "no": False},
        )
        conn.execute(
            text(
                "INSERT INTO kb_revisions (entry_id, revision, kind, data, deleted, content_hash, "
                "action, author, created_at) VALUES ('order-tracking', 1, 'faq', :data, :no, "
                "'abc', 'create', 'old', :now)"
            ),
            {"data": json.dumps(data), "now": now, "no": False},
        )
        conn.execute(
            text("INSERT INTO kb_versions (published_at, author, note) VALUES (:now, 'old', '')"),
            {"now": now},
        )
        conn.execute(
            text(
                "INSERT INTO kb_version_entries (version, entry_id, revision_id) "
                "VALUES (1, 'order-tracking', 1)"
            )
        )

    upgrade(engine)

    assert current_revision(engine) == head(engine)
    assert {"grounded", "meta"} <= columns(engine, "messages")
    assert "visitor_id" in columns(engine, "conversations")
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT role, content, decision, latency_ms, grounded, meta FROM messages "
                 "ORDER BY id")
        ).all()
        conv = conn.execute(text("SELECT status, visitor_id FROM conversations")).one()
    assert [(r.role, r.content) for r in rows] == [
        ("user", "Where is my order?"),
        ("assistant", "Use the link."),
    ]
    assert rows[1].decision == "answer" and rows[1].latency_ms == 12.5
    assert all(r.grounded is None for r in rows)
    assert all(as_json(r.meta) == {} for r in rows)
    assert tuple(conv) == ("waiting", None)

    # The stores read the old rows through the current models.
    messages = ConversationStore(engine).messages("conv-1")
    assert [m.content for m in messages] == ["Where is my order?", "Use the link."]
    assert messages[1].sources[0]["id"] == "order-tracking"
    assert messages[1].meta == {}
    store = KnowledgeStore(engine)
    assert store.current_version() == 1
    (entry,) = store.published()
    assert isinstance(entry, Entry)
    assert (entry.id, entry.answer) == ("order-tracking", "Use the link.")
    # ... and keep working on them.
    store.save([Entry("order-tracking", "How can I track my order?", "Use the new link.")],
               publish=True)
    assert [h["revision"] for h in store.history("order-tracking")] == [1, 2]


def test_models_match_migrations(engine):
    """The ORM models and the migrations describe the same schema (no change outside Alembic)."""
    upgrade(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(
            context, [knowledge.models.Base.metadata, chatbot.models.Base.metadata]
        )
    assert diff == []


def test_sqlite_runs_in_wal_mode(sqlite_engine, tmp_path: Path):
    engine = sqlite_engine
    upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 1000
    # WAL is a property of the file: a plain connection sees it too.
    raw = sqlite3.connect(tmp_path / "db" / "chatbot.db")
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()
