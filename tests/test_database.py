"""The database layer where SQLite and PostgreSQL differ: concurrent writers from several
processes or threads, and the time zone of stored times. Each test runs on both databases.

The races are staged: a transaction in the test holds a row that another writer is about to
insert, and commits while that writer waits on it, which is what happens when two servers
sharing a database do the same thing at the same moment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, insert, select

from chatbot.conversations import ConversationStore
from chatbot.db import make_engine, upgrade
from chatbot.errors import Conflict
from knowledge.embeddings import Embedder, text_hash
from knowledge.models import EmbeddingRow, EntryRow, RevisionRow, utcnow
from knowledge.records import Entry
from knowledge.store import KnowledgeStore

ROOT = Path(__file__).resolve().parents[1]
HOLD = 1.0  # seconds the staged transaction keeps its row uncommitted


@pytest.fixture
def engine(database_url: str) -> Iterator[Any]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def while_a_row_is_held(engine: Any, row: Callable[[Any], None], work: Callable[[], Any]) -> Any:
    """Run ``work`` in a thread while a transaction holds ``row`` uncommitted, then commit it
    (``work`` is then waiting on that row); returns what ``work`` returned or raised."""
    with engine.connect() as conn:
        tx = conn.begin()
        row(conn)
        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(work)
            time.sleep(HOLD)
            tx.commit()
            try:
                return future.result(timeout=60)
            except Exception as exc:
                return exc


# Imports first, then waits for the go line on stdin, so that the upgrades start together.
MIGRATE = """
import sys
from chatbot.db import current_revision, make_engine, upgrade
engine = make_engine(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
upgrade(engine)
print(current_revision(engine), flush=True)
"""


def test_servers_starting_together_migrate_the_database_once(database_url):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", MIGRATE, database_url], env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = [proc.communicate(timeout=120) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
    revisions = {out.strip() for out, _ in results}
    assert len(revisions) == 1 and revisions != {"None"}, revisions


def test_stored_times_read_back_in_utc(engine):
    upgrade(engine)
    store = ConversationStore(engine)
    cid = store.create()
    store.add_message(cid, role="user", content="Hello")
    (message,) = store.messages(cid)
    # SQLite gives naive UTC; PostgreSQL gives aware times in the session's zone, which the
    # engine sets to UTC (the test server's own zone is Pacific/Auckland).
    assert message.created_at.utcoffset() in (None, timedelta(0))
    aware = message.created_at.replace(tzinfo=message.created_at.tzinfo or utcnow().tzinfo)
    assert abs(aware - utcnow()) < timedelta(minutes=5)


def test_two_servers_embedding_the_same_new_text_both_succeed(engine, shared_embedding_model):
    upgrade(engine)
    embedder = Embedder(engine=engine)
    text = "A brand-new answer both servers embed after one publish."

    def other_server(conn: Any) -> None:
        vector = np.zeros(embedder.dim, dtype=np.float32).tobytes()
        conn.execute(insert(EmbeddingRow).values(model=embedder.name,
                                                 content_hash=text_hash(text), vector=vector))

    result = while_a_row_is_held(engine, other_server, lambda: embedder.embed_documents([text]))
    assert not isinstance(result, Exception), repr(result)
    expected = embedder.embed_sentences([text])[0]
    assert np.allclose(result[0], expected, atol=1e-5)
    with engine.connect() as conn:
        rows = conn.execute(select(EmbeddingRow.vector).where(
            EmbeddingRow.content_hash == text_hash(text))).scalars().all()
    assert len(rows) == 1


def test_two_editors_saving_one_entry_at_once_get_a_conflict_not_an_error(engine):
    upgrade(engine)
    store = KnowledgeStore(engine)
    entry = Entry("gift-cards", "Do you sell gift cards?", "Yes, from £10.")

    def other_editor(conn: Any) -> None:
        data = {"question": entry.question, "answer": "No.", "paraphrases": [], "tags": []}
        conn.execute(insert(EntryRow).values(id=entry.id, kind="faq", data=data, revision=1,
                                             deleted=False, updated_at=utcnow()))
        conn.execute(insert(RevisionRow).values(
            entry_id=entry.id, revision=1, kind="faq", data=data, deleted=False,
            content_hash="x", action="create", author="other", created_at=utcnow()))

    result = while_a_row_is_held(engine, other_editor, lambda: store.save([entry]))
    if isinstance(result, Exception):  # it waited on the other's row, then lost the race
        assert isinstance(result, Conflict), repr(result)
        assert "try again" in result.message
        assert store.get(entry.id).answer == "No."
    else:  # it started after the other committed: an ordinary second revision
        assert [h["revision"] for h in store.history(entry.id)] == [1, 2]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(EntryRow)).scalar() == 1
