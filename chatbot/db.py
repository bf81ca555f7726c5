"""Database engine and schema upgrades.

The schema changes only through Alembic migrations (``migrations/``); the app upgrades to
head on start, one process at a time (``_one_migrator``). SQLite runs in WAL mode with a busy
timeout so that readers never block the writer and concurrent turns do not fail with "database
is locked". PostgreSQL (``postgresql+psycopg://...``) is what several server processes share
(README, Scale-out); its sessions run in UTC.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url

import migrations

MIGRATIONS_DIR = Path(migrations.__file__).parent
MIGRATION_LOCK = 0x636861746264  # this application's own advisory-lock key (b"chatbd")


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        return _postgres_engine(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    return engine


def _postgres_engine(url: str) -> Engine:
    # pre_ping: a node keeps working after the database server restarts or fails over.
    engine = create_engine(url, pool_pre_ping=True)

    @event.listens_for(engine, "connect")
    def _utc(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        # Stored times come back in UTC whatever the server's zone, as they do from SQLite,
        # so every node shows and exports the same timestamps.
        cur = dbapi_conn.cursor()
        cur.execute("SET TIME ZONE 'UTC'")
        cur.close()
        dbapi_conn.commit()

    return engine


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (head by default)."""
    with _one_migrator(engine):
        command.upgrade(alembic_config(engine), revision)


@contextmanager
def _one_migrator(engine: Engine) -> Iterator[None]:
    """Processes that start at once on one database (several servers, or a server and
    ``chatbot kb import``) take turns to migrate it, so the later ones find the schema at head
    instead of creating the same tables again: a PostgreSQL advisory lock, or for a SQLite file
    an exclusive lock on ``<database>.migrate-lock`` beside it."""
    url = engine.url
    if url.get_backend_name() == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
        return
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        yield
        return
    with open(f"{url.database}.migrate-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        yield


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
