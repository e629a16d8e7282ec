"""The two back-ends the storage and moderation tests run on: an SQLite file, and a schema of its own on a
real PostgreSQL server started for the test session.

`PostgresServer` runs Debian's PostgreSQL server programs (postgresql-15; another folder with PG_BIN)
in a temporary directory: trust authentication, 127.0.0.1 on a free port, its unix socket in the same
directory. PostgreSQL refuses to run as root, so as root it runs as the `postgres` user.

`Backend` gives a test its database (`target`, what Storage and DATABASE_URL take), fresh ones
(`another()`), the tables and columns there, and a lock held by another connection (`locked()`),
as a backup script or a migration on another machine would hold it.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import sqlite3
import subprocess
import tempfile
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import asyncpg

SERVER_USER = "postgres"  # Debian's package creates it; the server runs as it when the tests run as root
START_TIMEOUT = 60  # seconds for pg_ctl to see the server accept connections (a busy 2-core machine)


def postgres_programs() -> Path:
    """The folder of initdb, pg_ctl and postgres: PG_BIN, or the newest of Debian's /usr/lib/postgresql/*/bin."""
    candidates = [os.environ["PG_BIN"]] if os.environ.get("PG_BIN") else glob.glob("/usr/lib/postgresql/*/bin")
    found = sorted(
        (Path(folder) for folder in candidates if (Path(folder) / "pg_ctl").exists()),
        key=lambda folder: int(folder.parent.name) if folder.parent.name.isdigit() else 0,
    )
    if not found:
        raise RuntimeError(
            "PostgreSQL's server programs (initdb, pg_ctl) are not installed: `apt-get install postgresql-15`, "
            "or set PG_BIN to the folder that has them."
        )
    return found[-1]


class PostgresServer:
    """One server for the test session: `start()`, `new_database()` per test, `stop()` removes everything."""

    def __init__(self) -> None:
        self.programs = postgres_programs()
        self.port = 0
        self._schemas = itertools.count(1)
        self._as_user: list[str] = []
        owner = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise RuntimeError(
                    f"PostgreSQL refuses to run as root, and there is no {SERVER_USER!r} user to run it as "
                    "(Debian's postgresql package creates it)."
                ) from None
            self._as_user = ["runuser", "-u", SERVER_USER, "--"]
        self.directory = Path(tempfile.mkdtemp(prefix="bot-postgres-"))
        if owner is not None:
            os.chown(self.directory, owner.pw_uid, owner.pw_gid)

    def _run(self, program: str, *args: str) -> None:
        command = [*self._as_user, str(self.programs / program), *args]
        done = subprocess.run(command, capture_output=True, text=True, cwd=self.directory, timeout=START_TIMEOUT + 30)
        if done.returncode:
            log = self.directory / "server.log"
            raise RuntimeError(
                f"{program} failed ({done.returncode}): {done.stderr.strip()}\n"
                + (log.read_text()[-2000:] if log.exists() else "")
            )

    @property
    def data(self) -> str:
        return str(self.directory / "data")

    def start(self) -> PostgresServer:
        self._run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-locale", "--no-sync")
        for attempt in itertools.count(1):  # another process may take the free port before the server does
            with socket.socket() as probe:  # a free port: the kernel picks one
                probe.bind(("127.0.0.1", 0))
                self.port = probe.getsockname()[1]
            try:
                return self.resume()
            except RuntimeError:
                if attempt == 3:
                    raise

    def resume(self) -> PostgresServer:
        """Start the server again on its data and port (after `halt`)."""
        # -F: no fsync. The server is not what these tests kill; the bot processes are.
        options = f"-h 127.0.0.1 -p {self.port} -k {self.directory} -F"
        log = str(self.directory / "server.log")
        self._run("pg_ctl", "start", "-D", self.data, "-l", log, "-o", options, "-w", "-t", str(START_TIMEOUT))
        return self

    def halt(self) -> None:
        """Stop the server at once, as a crash or a failover would (its clients' connections drop)."""
        self._run("pg_ctl", "stop", "-D", self.data, "-m", "immediate", "-w")

    def stop(self) -> None:
        if (self.directory / "data" / "postmaster.pid").exists():
            self._run("pg_ctl", "stop", "-D", self.data, "-m", "fast", "-w")
        shutil.rmtree(self.directory, ignore_errors=True)

    def url(self, schema: str = "public") -> str:
        # asyncpg sends the URL's other parameters as settings: search_path puts every table in `schema`.
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres?search_path={schema}"

    async def new_database(self) -> str:
        """The URL of a new, empty database: a schema of its own (CREATE DATABASE takes a second on 2 busy cores)."""
        schema = f"test_{next(self._schemas)}"
        connection = await asyncpg.connect(self.url())
        try:
            await connection.execute(f"CREATE SCHEMA {schema}")
        finally:
            await connection.close()
        return self.url(schema)


class Backend(ABC):
    name: str
    target: Path | str  # the test's database, for Storage
    url: str  # the same, for DATABASE_URL

    @abstractmethod
    async def another(self) -> str:
        """The URL of a second, empty database."""

    @abstractmethod
    async def columns(self) -> dict[str, set[str]]:
        """Every table of the test's database, with its columns."""

    @abstractmethod
    def locked(self) -> AbstractAsyncContextManager[None]:
        """Another connection holds the write lock of the test's database until the block ends."""


class SQLiteBackend(Backend):
    name = "sqlite"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.target = folder / "data" / "bot.sqlite3"  # the folder does not exist yet: open() creates it
        self._files = itertools.count(1)

    @property
    def url(self) -> str:
        return f"sqlite:///{self.target}"

    async def another(self) -> str:
        return f"sqlite:///{self.folder / f'another-{next(self._files)}.sqlite3'}"

    async def columns(self) -> dict[str, set[str]]:
        with sqlite3.connect(self.target) as raw:
            tables = [name for (name,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            return {table: {column[1] for column in raw.execute(f"PRAGMA table_info({table})")} for table in tables}

    @asynccontextmanager
    async def locked(self) -> AsyncIterator[None]:
        other = sqlite3.connect(self.target, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # e.g. a backup script holding the write lock
        try:
            yield
        finally:
            other.execute("COMMIT")
            other.close()


class PostgresBackend(Backend):
    name = "postgres"

    def __init__(self, server: PostgresServer, url: str) -> None:
        self.server = server
        self.target = self.url = url

    async def another(self) -> str:
        return await self.server.new_database()

    async def columns(self) -> dict[str, set[str]]:
        connection = await asyncpg.connect(self.url)
        try:
            rows = await connection.fetch(
                "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()"
            )
        finally:
            await connection.close()
        tables: dict[str, set[str]] = {}
        for table, column in rows:
            tables.setdefault(table, set()).add(column)
        return tables

    @asynccontextmanager
    async def locked(self) -> AsyncIterator[None]:
        # EXCLUSIVE: no other transaction writes any table, reads go on (as SQLite's write lock in WAL mode).
        tables = ", ".join(await self.columns())
        connection = await asyncpg.connect(self.url)
        try:
            async with connection.transaction():
                await connection.execute(f"LOCK TABLE {tables} IN EXCLUSIVE MODE")
                yield
        finally:
            await connection.close()
