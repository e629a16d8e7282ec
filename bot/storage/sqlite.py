"""The embedded default: one SQLite file through one aiosqlite connection.

WAL mode, so reads never wait for the writer; a busy timeout, so a briefly locked file makes a write
wait instead of failing; every transaction takes the write lock up front (BEGIN IMMEDIATE), so the
timeout applies there rather than half-way through. Processes on one machine may share the file;
several machines need PostgreSQL (postgres.py).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from .database import BUSY_MESSAGE, BUSY_TIMEOUT, Connection, Database, StoreBusy
from .schema import MIGRATIONS, Statement


class SQLiteDatabase(Database):
    dialect = "sqlite"

    def __init__(
        self,
        path: Path | str,
        *,
        busy_timeout: float = BUSY_TIMEOUT,
        migrations: Sequence[tuple[Statement, ...]] = MIGRATIONS,
    ) -> None:
        super().__init__(busy_timeout=busy_timeout, migrations=migrations)
        self.path = Path(path)
        self._db: aiosqlite.Connection | None = None
        # One connection, so one transaction at a time: concurrent writers queue here (then on the file lock).
        self._writing = asyncio.Lock()

    @property
    def name(self) -> str:
        return str(self.path)

    async def open(self) -> None:
        if self._db is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: no implicit transactions; writes use explicit BEGIN IMMEDIATE.
        db = await aiosqlite.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        try:
            await self._use_wal(db)
            await db.execute("PRAGMA synchronous=FULL")  # a commit survives a power cut, not only a crash
            self._db = db
            await self._migrate()
        except BaseException:
            self._db = None
            await db.close()
            raise

    async def _use_wal(self, db: aiosqlite.Connection) -> None:
        # Switching a new file to WAL needs it to itself and fails at once, without the busy timeout, while
        # another process (starting at the same moment) holds a lock: retry for as long as a write would wait.
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                await db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as error:
                if not _locked(error) or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("The tag store is not open (HFBot.setup_hook opens it).")
        return self._db

    @asynccontextmanager
    async def transaction(self, lock: int | None = None) -> AsyncIterator[Connection]:
        # `lock` needs nothing more: BEGIN IMMEDIATE already makes this the file's only writer.
        db = self.db
        async with self._writing:
            try:
                await db.execute("BEGIN IMMEDIATE")
                yield _Connection(db)
                await db.execute("COMMIT")
            except BaseException as error:
                try:
                    await db.execute("ROLLBACK")
                except sqlite3.OperationalError:
                    pass  # BEGIN itself failed: there is no transaction to roll back
                if _locked(error):
                    raise StoreBusy(BUSY_MESSAGE) from error
                raise

    async def fetch(self, sql: str, parameters: Sequence[object] = ()) -> list[tuple]:
        try:
            return await _Connection(self.db).fetch(sql, parameters)
        except sqlite3.OperationalError as error:
            if _locked(error):
                raise StoreBusy(BUSY_MESSAGE) from error
            raise


class _Connection:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def execute(self, sql: str, parameters: Sequence[object] = ()) -> int:
        cursor = await self._db.execute(sql, parameters)
        return cursor.rowcount

    async def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        await self._db.executemany(sql, rows)

    async def fetch(self, sql: str, parameters: Sequence[object] = ()) -> list[tuple]:
        async with self._db.execute(sql, parameters) as cursor:
            return [tuple(row) for row in await cursor.fetchall()]


def _locked(error: BaseException) -> bool:
    return isinstance(error, sqlite3.OperationalError) and ("locked" in str(error) or "busy" in str(error))
