"""PostgreSQL through an asyncpg pool, for bot processes on several machines sharing one database.

What SQLite's single writer gave for free is explicit here: statements that must not interleave with
another process's take a per-guild advisory lock (`transaction(lock=guild_id)`), and everything else is
one atomic statement (INSERT ... ON CONFLICT, DELETE ... RETURNING) under unique constraints.
`lock_timeout` is the busy timeout; a lock still held after it, a lost or refused connection, or a
statement that runs past its time is `StoreBusy`, with SQLite's message.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from urllib.parse import urlsplit

import asyncpg

from .database import BUSY_MESSAGE, BUSY_TIMEOUT, Connection, Database, StoreBusy, StoreUnreachable
from .schema import MIGRATIONS, Statement

SCHEMES = ("postgresql", "postgres")
POOL_SIZE = 4  # connections per bot process: writes are short, and 25 processes stay under the default 100
CONNECT_TIMEOUT = 10.0
STATEMENT_TIME = 10.0  # seconds a statement may run once it has its locks, before the server counts as gone
# What a member can only wait out: lock timeouts, deadlocks, a server restarting, full or lost connections.
BUSY_ERRORS = (
    asyncpg.LockNotAvailableError,
    asyncpg.TransactionRollbackError,
    asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError,
    asyncpg.PostgresConnectionError,
    OSError,
    asyncio.TimeoutError,
)


class PostgresDatabase(Database):
    dialect = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        busy_timeout: float = BUSY_TIMEOUT,
        migrations: Sequence[tuple[Statement, ...]] = MIGRATIONS,
    ) -> None:
        super().__init__(busy_timeout=busy_timeout, migrations=migrations)
        self.url = url
        self._pool: asyncpg.Pool | None = None

    @property
    def name(self) -> str:
        parts = urlsplit(self.url)
        return f"postgresql://{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"

    async def open(self) -> None:
        if self._pool is not None:
            return
        try:
            pool = await asyncpg.create_pool(
                self.url,
                min_size=1,
                max_size=POOL_SIZE,
                timeout=CONNECT_TIMEOUT,
                command_timeout=self.busy_timeout + STATEMENT_TIME,
                server_settings={"lock_timeout": str(round(self.busy_timeout * 1000)), "application_name": "hf-bot"},
            )
        except (*BUSY_ERRORS, asyncpg.PostgresError) as error:
            raise StoreUnreachable(
                f"Can't open the database {self.name} ({type(error).__name__}: {error}). "
                "Check DATABASE_URL, and that PostgreSQL is running and reachable from this machine."
            ) from error
        self._pool = pool
        try:
            await self._migrate()
        except BaseException:
            self._pool = None
            await pool.close()
            raise

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("The tag store is not open (HFBot.setup_hook opens it).")
        return self._pool

    @asynccontextmanager
    async def transaction(self, lock: int | None = None) -> AsyncIterator[Connection]:
        async with self._connection() as connection, connection.transaction():
            if lock is not None:
                await connection.execute("SELECT pg_advisory_xact_lock($1)", lock)
            yield _Connection(connection)

    async def fetch(self, sql: str, parameters: Sequence[object] = ()) -> list[tuple]:
        async with self._connection() as connection:
            return await _Connection(connection).fetch(sql, parameters)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection of the pool; what the server or the network does to it while in use is StoreBusy."""
        pool = self.pool
        try:
            async with pool.acquire(timeout=self.busy_timeout) as connection:
                yield connection
        except BUSY_ERRORS as error:
            raise StoreBusy(BUSY_MESSAGE) from error
        except asyncpg.InterfaceError as error:
            # Rolling back on a connection that just dropped says "the underlying connection is closed" while
            # handling the loss; other interface errors are the bot's own mistakes.
            if not isinstance(error.__context__, BUSY_ERRORS):
                raise
            raise StoreBusy(BUSY_MESSAGE) from error


class _Connection:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    async def execute(self, sql: str, parameters: Sequence[object] = ()) -> int:
        status = await self._connection.execute(numbered(sql), *parameters)
        count = status.rsplit(" ", 1)[-1]  # "UPDATE 2", "INSERT 0 1"; "CREATE TABLE" changed no row
        return int(count) if count.isdigit() else 0

    async def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        await self._connection.executemany(numbered(sql), rows)

    async def fetch(self, sql: str, parameters: Sequence[object] = ()) -> list[tuple]:
        return [tuple(record) for record in await self._connection.fetch(numbered(sql), *parameters)]


_PLACEHOLDER_OR_LITERAL = re.compile(r"'(?:[^']|'')*'|\?")


@lru_cache(maxsize=512)
def numbered(sql: str) -> str:
    """`?` placeholders as PostgreSQL's $1, $2, ...; a `?` inside a quoted literal stays."""
    counter = itertools.count(1)
    return _PLACEHOLDER_OR_LITERAL.sub(lambda m: f"${next(counter)}" if m[0] == "?" else m[0], sql)
