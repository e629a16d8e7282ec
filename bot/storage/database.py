"""The one SQLite connection (through aiosqlite) that every part of the store shares.

- WAL mode, so reads never wait for the writer; a busy timeout, so a briefly locked
  file makes a write wait instead of failing (`StoreBusy` once it has waited too long);
  every write commits before it returns, so a caller that acknowledges after `await`
  never acknowledges unsaved data.
- `schema_version` holds the version; the migrations (bot/storage/schema.py) are applied
  forward, all in one transaction, when the database opens.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from .schema import MIGRATIONS

BUSY_TIMEOUT = 5.0  # seconds a write waits for a lock held by another connection
BUSY_MESSAGE = "The tag database is busy right now, so nothing was saved. Please try again in a moment."


class StoreBusy(Exception):
    """The database stayed locked past the busy timeout; nothing was written. Safe to show."""


class Database:
    def __init__(
        self,
        path: Path | str,
        *,
        busy_timeout: float = BUSY_TIMEOUT,
        migrations: Sequence[tuple[str, ...]] = MIGRATIONS,
    ) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self.migrations = list(migrations)
        self._db: aiosqlite.Connection | None = None
        # One connection, so one transaction at a time: concurrent writers queue here (then on the file lock).
        self._writing = asyncio.Lock()

    # --- lifecycle -----------------------------------------------------------------------
    async def open(self) -> None:
        if self._db is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: no implicit transactions; writes use explicit BEGIN IMMEDIATE.
        db = await aiosqlite.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=FULL")  # a commit survives a power cut, not only a crash
            self._db = db
            await self._migrate()
        except BaseException:
            self._db = None
            await db.close()
            raise

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("The tag store is not open (HFBot.setup_hook opens it).")
        return self._db

    async def schema_version(self) -> int:
        rows = await self.read("SELECT version FROM schema_version")
        return rows[0][0] if rows else 0

    async def _migrate(self) -> None:
        async with self.write() as db:
            await db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = await (await db.execute("SELECT version FROM schema_version")).fetchone()
            current = row[0] if row else 0
            if current > len(self.migrations):
                raise RuntimeError(
                    f"{self.path} has schema version {current}, newer than this bot's "
                    f"{len(self.migrations)}: update the bot, or point DATABASE_PATH elsewhere."
                )
            for statements in self.migrations[current:]:
                for statement in statements:
                    await db.execute(statement)
            if row is None:
                await db.execute("INSERT INTO schema_version (version) VALUES (?)", (len(self.migrations),))
            else:
                await db.execute("UPDATE schema_version SET version = ?", (len(self.migrations),))

    # --- reading and writing ---------------------------------------------------------------
    @asynccontextmanager
    async def write(self) -> AsyncIterator[aiosqlite.Connection]:
        """One transaction, committed on leaving; the write lock is taken up front (IMMEDIATE)
        so the busy timeout applies there rather than failing half-way through."""
        db = self.db
        async with self._writing:
            try:
                await db.execute("BEGIN IMMEDIATE")
                yield db
                await db.execute("COMMIT")
            except BaseException as error:
                try:
                    await db.execute("ROLLBACK")
                except sqlite3.OperationalError:
                    pass  # BEGIN itself failed: there is no transaction to roll back
                if _locked(error):
                    raise StoreBusy(BUSY_MESSAGE) from error
                raise

    async def read(self, sql: str, parameters: Sequence[object] = ()) -> list[tuple]:
        try:
            async with self.db.execute(sql, parameters) as cursor:
                return list(await cursor.fetchall())
        except sqlite3.OperationalError as error:
            if _locked(error):
                raise StoreBusy(BUSY_MESSAGE) from error
            raise

    async def delete_guild(self, guild_id: int, tables: Sequence[str]) -> dict[str, int]:
        """Delete a guild's rows from `tables` in one transaction; returns rows deleted per table."""
        deleted = {}
        async with self.write() as db:
            for table in tables:
                cursor = await db.execute(f"DELETE FROM {table} WHERE guild_id = ?", (guild_id,))
                deleted[table] = cursor.rowcount
        return deleted


def _locked(error: BaseException) -> bool:
    return isinstance(error, sqlite3.OperationalError) and ("locked" in str(error) or "busy" in str(error))
