"""Shared fixtures: real parts in temporary places.

- Every test gets ``CHATBOT_DATA_DIR`` pointed into its own ``tmp_path`` (autouse), so nothing
  touches ``./data``.
- The bundled embedding model (all-MiniLM-L6-v2) is loaded once per session. ``Embedder`` and
  ``build_services`` construct their own ``SentenceTransformer``; the ``shared_embedding_model``
  fixture makes that constructor return the one already-loaded model, so every test still goes
  through the real ``Embedder`` and ``build_services`` code with its own database.
- ``make_services`` builds the real service layer on a migrated SQLite file with the tiny shop
  knowledge base of ``tests/fixtures`` published and indexed.
- ``database_url`` runs a test twice: on a SQLite file and on an empty database of a real
  PostgreSQL server (``tests/postgres.py``, one throwaway cluster per session). Without
  PostgreSQL installed the second run is skipped and says why.
- ``bundled_lm``: the real bundled language model on CPU, loaded once for the slow tests.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from helpers import TINY_KB_FILES
from postgres import PostgresServer, unavailable_reason

# No network here or on a user's machine in CI: keep libraries from trying.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The data dir of this test; settings from the developer's shell are cleared."""
    for name in list(os.environ):
        if name.startswith("CHATBOT_"):
            monkeypatch.delenv(name)
    folder = tmp_path / "data"
    monkeypatch.setenv("CHATBOT_DATA_DIR", str(folder))
    monkeypatch.setenv("CHATBOT_DEMO_KB", "false")
    return folder


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the session (skips the test when none is installed)."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> Iterator[str]:
    """The SQLAlchemy URL of a new, empty PostgreSQL database, dropped after the test."""
    url = postgres.create_database()
    yield url
    postgres.drop_database(url)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_database(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """Settings that put a whole test module's services on SQLite (the data dir's file, no
    override), then on a PostgreSQL database of its own: pass them to ``module_services``."""
    if request.param == "sqlite":
        yield {}
        return
    server = request.getfixturevalue("postgres")
    url = server.create_database()
    yield {"database_url": url}
    server.drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, data_dir: Path) -> str:
    """The test's database: the data dir's SQLite file (the default), then (second run) an
    empty PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{(data_dir / 'chatbot.db').resolve()}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(scope="session")
def shared_embedding_model() -> Iterator[dict[Any, Any]]:
    """Every ``SentenceTransformer(...)`` of the session returns one cached real model per path."""
    import sentence_transformers

    real = sentence_transformers.SentenceTransformer
    cache: dict[Any, Any] = {}

    def cached(model_name_or_path: str, *args: Any, **kwargs: Any) -> Any:
        key = (str(model_name_or_path), args, tuple(sorted(kwargs.items())))
        if key not in cache:
            cache[key] = real(model_name_or_path, *args, **kwargs)
        return cache[key]

    patch = pytest.MonkeyPatch()
    patch.setattr(sentence_transformers, "SentenceTransformer", cached)
    yield cache
    patch.undo()


@pytest.fixture(scope="session")
def embedder(shared_embedding_model: dict[Any, Any]) -> Any:
    """A database-less Embedder for grounding checks and pure retrieval helpers."""
    from knowledge.embeddings import Embedder

    return Embedder()


@pytest.fixture(scope="session")
def bundled_lm() -> Any:
    """The real bundled language model on CPU, loaded once for the slow tests that use it."""
    from chatbot.generation.local import LocalGenerator

    return LocalGenerator("bundled", device="cpu", threads=2)


@pytest.fixture(scope="session")
def bundled_float32_model() -> Any:
    """The bundled model as plain float32 torch (``bundled_lm`` may decode with int8 weights)."""
    import torch

    from chatbot.generation.local import load_model

    return load_model("bundled", dtype=torch.float32).eval()


@pytest.fixture(scope="session")
def tiny_records() -> list[Any]:
    from knowledge.formats import read_files

    return read_files(TINY_KB_FILES)


@pytest.fixture(scope="session")
def kb_template(
    tmp_path_factory: pytest.TempPathFactory,
    shared_embedding_model: dict[Any, Any],
    tiny_records: list[Any],
) -> Path:
    """A data dir with the tiny KB imported, published and indexed; tests get copies of it."""
    from chatbot.services import build_services
    from chatbot.settings import Settings

    folder = tmp_path_factory.mktemp("kb-template") / "data"
    services = build_services(Settings(data_dir=folder, demo_kb=False), load_generator=False)
    services.knowledge.save(tiny_records, publish=True)
    services.retriever.index()
    services.engine.dispose()
    with sqlite3.connect(folder / "chatbot.db") as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return folder


@pytest.fixture
def make_services(
    data_dir: Path,
    shared_embedding_model: dict[Any, Any],
    kb_template: Path,
    tiny_records: list[Any],
) -> Iterator[Callable[..., Any]]:
    """``make_services(generator, kb=True, records=None, **settings)`` → real ``Services``.

    With ``kb`` the data dir starts as a copy of ``kb_template`` (the tiny KB, published as
    version 1 and indexed), or with ``records`` published instead. With a ``database_url``
    other than SQLite the template's database cannot be copied: the tiny KB is published into
    that database instead.
    """
    from chatbot.generation.scripted import ScriptedGenerator
    from chatbot.services import build_services
    from chatbot.settings import Settings

    built: list[Any] = []

    def make(
        generator: Any = None,
        *,
        kb: bool = True,
        records: Sequence[Any] | None = None,
        folder: Path | None = None,
        **overrides: Any,
    ) -> Any:
        folder = folder or data_dir
        if kb and records is None and _server_database(overrides.get("database_url")):
            records = tiny_records
        if kb and records is None and not folder.exists():
            shutil.copytree(kb_template, folder)
        settings = Settings(data_dir=folder, demo_kb=False, **overrides)
        services = build_services(
            settings,
            generator=generator if generator is not None else ScriptedGenerator(),
            load_generator=False,
        )
        built.append(services)
        if kb and records is not None:
            services.knowledge.save(list(records), publish=True)
        if kb:
            services.retriever.index()
        return services

    yield make
    for services in built:
        services.engine.dispose()


def _server_database(url: str | None) -> bool:
    return bool(url) and not str(url).startswith("sqlite")
