"""A real PostgreSQL server for the tests, in a temporary folder.

``PostgresServer.start()`` runs ``initdb`` and ``pg_ctl start`` from Debian's ``postgresql``
package (``/usr/lib/postgresql/<version>/bin``) or from ``PATH``: a throwaway cluster that
listens on a free loopback port, with its unix socket in the same folder and ``trust``
authentication (nothing but this machine's loopback can reach it). ``create_database()`` hands
each test module or test its own empty database.

PostgreSQL refuses to run as root, so under root the cluster belongs to the ``postgres``
account the Debian package creates, and its folder is made outside pytest's ``tmp_path``
(whose parents are closed to other users).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

SUPERUSER = "chatbot"


def find_binaries() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``, newest version first; None without them."""
    found = shutil.which("initdb")
    candidates = [Path(found).parent] if found else []
    versions = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(versions, key=lambda p: _major(p.parent.name), reverse=True)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


def _major(name: str) -> int:
    return int(name) if name.isdigit() else -1


def unavailable_reason() -> str | None:
    """Why the PostgreSQL tests cannot run here, or None when they can."""
    if find_binaries() is None:
        return ("PostgreSQL is not installed (no initdb/pg_ctl on PATH or in "
                "/usr/lib/postgresql/*/bin): apt-get install postgresql")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "the PostgreSQL driver is missing: pip install 'psycopg[binary]'"
    if os.geteuid() == 0 and _account("postgres") is None:
        return "running as root and there is no 'postgres' account to run the server as"
    return None


def _account(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """One throwaway cluster; ``url(name)`` is the SQLAlchemy URL of a database in it."""

    def __init__(self) -> None:
        binaries = find_binaries()
        if binaries is None:
            raise RuntimeError(unavailable_reason())
        self.bin = binaries
        self.port = _free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="chatbot-pg-"))
        self.owner = _account("postgres") if os.geteuid() == 0 else None
        self.log = self.folder / "server.log"

    def _run(self, *args: str) -> None:
        kwargs: dict[str, Any] = {}
        if self.owner is not None:
            kwargs.update(user=self.owner.pw_uid, group=self.owner.pw_gid, extra_groups=[])
        proc = subprocess.run([str(self.bin / args[0]), *args[1:]], capture_output=True,
                              text=True, cwd=self.folder, timeout=120, **kwargs)
        if proc.returncode != 0:
            log = self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{args[0]} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}\n{log}")

    def start(self) -> PostgresServer:
        if self.owner is not None:
            os.chown(self.folder, self.owner.pw_uid, self.owner.pw_gid)
        cluster = self.folder / "cluster"
        self._run("initdb", "-D", str(cluster), "-U", SUPERUSER, "--auth=trust",
                  "--encoding=UTF8", "--locale=C", "--no-sync")
        # Durability is not under test here: skip the fsyncs that make every commit slow. The
        # server's zone is far from UTC so that code relying on it being UTC fails here.
        options = (f"-h 127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300 "
                   "-c timezone=Pacific/Auckland")
        self._run("pg_ctl", "-D", str(cluster), "-l", str(self.log), "-o", options, "-w",
                  "-t", "60", "start")
        return self

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.folder / "cluster"), "-m", "immediate", "-w",
                      "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _admin(self, sql: str) -> None:
        import psycopg

        dsn = f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql)

    def create_database(self) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        name = f"test_{uuid.uuid4().hex[:12]}"
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        # FORCE: a test that failed may have left a connection open.
        self._admin(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
