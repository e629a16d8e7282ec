"""The database every part of the store shares, as one small interface that SQLite (sqlite.py) and
PostgreSQL (postgres.py) implement, so the stores' queries are written once.

- SQL uses `?` placeholders and what both back-ends speak: INSERT ... ON CONFLICT, RETURNING,
  COLLATE NOCASE (PostgreSQL gets a collation of that name in the first migration).
- `transaction()` yields a `Connection` whose writes commit together on leaving, or not at all;
  a caller that acknowledges after `await` never acknowledges unsaved data. `fetch()` reads outside one.
- A lock still held by another writer after the busy timeout, or on PostgreSQL a lost connection,
  is `StoreBusy`: nothing was written, and the member is asked to try again.
- `schema_version` holds the version; the migrations (schema.py) are applied forward, all in one
  transaction that holds the migration lock, when the database opens: processes starting together
  migrate once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import ClassVar, Protocol

from .schema import Statement, render

BUSY_TIMEOUT = 5.0  # seconds a write waits for a lock held by another connection
BUSY_MESSAGE = "The tag database is busy right now, so nothing was saved. Please try again in a moment."
MIGRATION_LOCK = 0  # the lock key of migrations; guild ids, the other keys, are never 0


class StoreBusy(Exception):
    """The database stayed locked past the busy timeout, or could not be reached; nothing was written.
    Safe to show."""


class StoreUnreachable(RuntimeError):
    """The database could not be opened at start-up; the message names the setting to check."""


class Connection(Protocol):
    """The statements of one transaction."""

    async def execute(self, sql: str, parameters: Sequence[object] = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        ...

    async def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None: ...

    async def fetch(self, sql: str, parameters: Sequence[object] = ()) -> list[tuple]: ...


class Database(ABC):
    dialect: ClassVar[str]  # a key of schema.TYPES

    def __init__(self, *, busy_timeout: float, migrations: Sequence[tuple[Statement, ...]]) -> None:
        self.busy_timeout = busy_timeout
        self.migrations = list(migrations)

    @property
    @abstractmethod
    def name(self) -> str:
        """Where the data is, for messages (never with a password)."""

    @abstractmethod
    async def open(self) -> None:
        """Connect, then migrate (`_migrate`)."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    def transaction(self, lock: int | None = None) -> AbstractAsyncContextManager[Connection]:
        """One transaction, committed on leaving. `lock` (a guild id) is taken first and held to the end, so a
        read-then-write (count the labels, then add one) never interleaves with another process's."""

    @abstractmethod
    async def fetch(self, sql: str, parameters: Sequence[object] = ()) -> list[tuple]:
        """Rows of one query, outside any transaction."""

    async def execute(self, sql: str, parameters: Sequence[object] = ()) -> int:
        """One statement in a transaction of its own; returns the number of rows it changed."""
        async with self.transaction() as connection:
            return await connection.execute(sql, parameters)

    async def schema_version(self) -> int:
        rows = await self.fetch("SELECT version FROM schema_version")
        return rows[0][0] if rows else 0

    async def _migrate(self) -> None:
        async with self.transaction(lock=MIGRATION_LOCK) as db:
            await db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            rows = await db.fetch("SELECT version FROM schema_version")
            current = rows[0][0] if rows else 0
            if current > len(self.migrations):
                raise RuntimeError(
                    f"{self.name} has schema version {current}, newer than this bot's "
                    f"{len(self.migrations)}: update the bot, or point DATABASE_URL (or DATABASE_PATH) elsewhere."
                )
            for statements in self.migrations[current:]:
                for statement in statements:
                    if (sql := render(statement, self.dialect)) is not None:
                        await db.execute(sql)
            if not rows:
                await db.execute("INSERT INTO schema_version (version) VALUES (?)", (len(self.migrations),))
            else:
                await db.execute("UPDATE schema_version SET version = ?", (len(self.migrations),))

    async def delete_guild(self, guild_id: int, tables: Sequence[str]) -> dict[str, int]:
        """Delete a guild's rows from `tables` in one transaction; returns rows deleted per table."""
        async with self.transaction() as db:
            return {table: await db.execute(f"DELETE FROM {table} WHERE guild_id = ?", (guild_id,)) for table in tables}


def upsert(table: str, columns: Sequence[str], key: Sequence[str]) -> str:
    """INSERT of `columns` that replaces the other columns of the row with the same `key`."""
    updates = ", ".join(f"{column} = excluded.{column}" for column in columns if column not in key)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
    )
