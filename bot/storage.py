"""The moderators' data in SQLite (through aiosqlite): label sets, watched channels and tags.

- Every query is scoped by guild id: one guild never reads or changes another's rows.
- WAL mode, so reads never wait for the writer; a busy timeout, so a briefly locked
  file makes a write wait instead of failing; every write commits before it returns,
  so a caller that acknowledges after `await` never acknowledges an unsaved tag.
- `schema_version` holds the version; MIGRATIONS are applied forward, all in one
  transaction, when the store opens. Append a migration, never edit a shipped one.
"""
from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from .engine.errors import InvalidInput
from .engine.requests.zero_shot import MAX_LABELS

DEFAULT_METHOD = "embedding"  # one forward per message, whatever the number of labels
DEFAULT_THRESHOLD = 0.5
BUSY_TIMEOUT = 5.0  # seconds a write waits for a lock held by another connection

# MIGRATIONS[i] takes the schema from version i to i + 1.
MIGRATIONS: list[tuple[str, ...]] = [
    (
        """CREATE TABLE guild_settings (
            guild_id INTEGER PRIMARY KEY,
            method TEXT NOT NULL DEFAULT 'embedding',
            threshold REAL NOT NULL DEFAULT 0.5,
            store_text INTEGER NOT NULL DEFAULT 0)""",
        """CREATE TABLE labels (
            guild_id INTEGER NOT NULL,
            name TEXT NOT NULL COLLATE NOCASE,
            emoji TEXT,
            description TEXT,
            position INTEGER NOT NULL,
            PRIMARY KEY (guild_id, name))""",
        """CREATE TABLE watched_channels (
            guild_id INTEGER NOT NULL,
            channel_id INTEGER NOT NULL,
            threshold REAL,
            log_channel_id INTEGER,
            PRIMARY KEY (guild_id, channel_id))""",
        """CREATE TABLE tags (
            id INTEGER PRIMARY KEY,
            guild_id INTEGER NOT NULL,
            channel_id INTEGER NOT NULL,
            message_id INTEGER NOT NULL,
            author_id INTEGER NOT NULL,
            label TEXT NOT NULL,
            score REAL,
            method TEXT NOT NULL,
            tagged_by INTEGER NOT NULL,
            auto INTEGER NOT NULL,
            created_at REAL NOT NULL,
            text TEXT,
            UNIQUE (guild_id, message_id, label))""",
        "CREATE INDEX tags_by_time ON tags (guild_id, created_at)",
    ),
]


BUSY_MESSAGE = "The tag database is busy right now, so nothing was saved. Please try again in a moment."


class StoreBusy(Exception):
    """The database stayed locked past the busy timeout; nothing was written. Safe to show."""


@dataclass(frozen=True)
class Label:
    name: str
    emoji: str | None = None
    description: str | None = None  # what the label means, or a typical message (embedding method)


@dataclass(frozen=True)
class GuildConfig:
    method: str = DEFAULT_METHOD
    threshold: float = DEFAULT_THRESHOLD  # auto-tagging default; a channel may override it
    store_text: bool = False
    labels: tuple[Label, ...] = ()

    def label(self, name: str) -> Label | None:
        return next((label for label in self.labels if label.name.casefold() == name.casefold()), None)


@dataclass(frozen=True)
class Watch:
    channel_id: int
    threshold: float | None  # None: the guild's threshold
    log_channel_id: int | None


@dataclass(frozen=True)
class Tag:
    guild_id: int
    channel_id: int
    message_id: int
    author_id: int
    label: str
    score: float | None
    method: str
    tagged_by: int  # the moderator's user id, or the bot's own id for auto-tags
    auto: bool
    created_at: float  # unix seconds
    text: str | None = None  # only when the guild has store_text on


_TAG_COLUMNS = "guild_id, channel_id, message_id, author_id, label, score, method, tagged_by, auto, created_at, text"


def _tag(row: sqlite3.Row | tuple) -> Tag:
    g, c, m, a, label, score, method, by, auto, at, text = row
    return Tag(g, c, m, a, label, score, method, by, bool(auto), at, text)


class TagStore:
    def __init__(self, path: Path | str, *, busy_timeout: float = BUSY_TIMEOUT,
                 migrations: Sequence[tuple[str, ...]] = MIGRATIONS) -> None:
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

    async def __aenter__(self) -> TagStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("The tag store is not open (HFBot.setup_hook opens it).")
        return self._db

    async def schema_version(self) -> int:
        rows = await self._read("SELECT version FROM schema_version")
        return rows[0][0] if rows else 0

    async def _migrate(self) -> None:
        async with self._write() as db:
            await db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = await (await db.execute("SELECT version FROM schema_version")).fetchone()
            current = row[0] if row else 0
            if current > len(self.migrations):
                raise RuntimeError(f"{self.path} has schema version {current}, newer than this bot's "
                                   f"{len(self.migrations)}: update the bot, or point DATABASE_PATH elsewhere.")
            for statements in self.migrations[current:]:
                for statement in statements:
                    await db.execute(statement)
            if row is None:
                await db.execute("INSERT INTO schema_version (version) VALUES (?)", (len(self.migrations),))
            else:
                await db.execute("UPDATE schema_version SET version = ?", (len(self.migrations),))

    # --- plumbing ------------------------------------------------------------------------
    @asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
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

    async def _read(self, sql: str, parameters: Sequence[object] = ()) -> list[tuple]:
        try:
            async with self.db.execute(sql, parameters) as cursor:
                return list(await cursor.fetchall())
        except sqlite3.OperationalError as error:
            if _locked(error):
                raise StoreBusy(BUSY_MESSAGE) from error
            raise

    # --- label sets ----------------------------------------------------------------------
    async def config(self, guild_id: int) -> GuildConfig:
        settings = await self._read("SELECT method, threshold, store_text FROM guild_settings WHERE guild_id = ?", (guild_id,))
        labels = await self._read("SELECT name, emoji, description FROM labels WHERE guild_id = ? ORDER BY position", (guild_id,))
        method, threshold, store_text = settings[0] if settings else (DEFAULT_METHOD, DEFAULT_THRESHOLD, 0)
        return GuildConfig(method, threshold, bool(store_text), tuple(Label(*row) for row in labels))

    async def add_label(self, guild_id: int, name: str, emoji: str | None = None, description: str | None = None) -> bool:
        """Add a label (True), or update an existing label's emoji and description where given (False).
        Refuses a 26th label."""
        async with self._write() as db:  # count and insert in one transaction: two moderators can't make 26
            cursor = await db.execute("UPDATE labels SET emoji = COALESCE(?, emoji), description = COALESCE(?, description) "
                                      "WHERE guild_id = ? AND name = ?", (emoji, description, guild_id, name))
            if cursor.rowcount:
                return False
            count, last = await (await db.execute("SELECT COUNT(*), MAX(position) FROM labels WHERE guild_id = ?", (guild_id,))).fetchone()
            if count >= MAX_LABELS:
                raise InvalidInput(f"The label set is full ({MAX_LABELS} labels). Remove one with /labelset remove first.")
            await db.execute("INSERT INTO labels (guild_id, name, emoji, description, position) VALUES (?, ?, ?, ?, ?)",
                             (guild_id, name, emoji, description, (last or 0) + 1))
            return True

    async def remove_label(self, guild_id: int, name: str) -> bool:
        async with self._write() as db:
            cursor = await db.execute("DELETE FROM labels WHERE guild_id = ? AND name = ?", (guild_id, name))
            return cursor.rowcount > 0

    async def update_settings(self, guild_id: int, *, method: str | None = None, threshold: float | None = None,
                              store_text: bool | None = None) -> GuildConfig:
        async with self._write() as db:
            await db.execute("INSERT OR IGNORE INTO guild_settings (guild_id, method, threshold) VALUES (?, ?, ?)",
                             (guild_id, DEFAULT_METHOD, DEFAULT_THRESHOLD))
            await db.execute(
                "UPDATE guild_settings SET method = COALESCE(?, method), threshold = COALESCE(?, threshold), "
                "store_text = COALESCE(?, store_text) WHERE guild_id = ?",
                (method, threshold, None if store_text is None else int(store_text), guild_id))
        return await self.config(guild_id)

    # --- watched channels ----------------------------------------------------------------
    async def watch(self, guild_id: int, channel_id: int, threshold: float | None, log_channel_id: int | None) -> None:
        async with self._write() as db:
            await db.execute("INSERT OR REPLACE INTO watched_channels (guild_id, channel_id, threshold, log_channel_id) "
                             "VALUES (?, ?, ?, ?)", (guild_id, channel_id, threshold, log_channel_id))

    async def unwatch(self, guild_id: int, channel_id: int) -> bool:
        async with self._write() as db:
            cursor = await db.execute("DELETE FROM watched_channels WHERE guild_id = ? AND channel_id = ?", (guild_id, channel_id))
            return cursor.rowcount > 0

    async def watches(self, guild_id: int) -> list[Watch]:
        rows = await self._read("SELECT channel_id, threshold, log_channel_id FROM watched_channels WHERE guild_id = ? "
                                "ORDER BY channel_id", (guild_id,))
        return [Watch(*row) for row in rows]

    async def watch_of(self, guild_id: int, channel_id: int) -> Watch | None:
        rows = await self._read("SELECT channel_id, threshold, log_channel_id FROM watched_channels "
                                "WHERE guild_id = ? AND channel_id = ?", (guild_id, channel_id))
        return Watch(*rows[0]) if rows else None

    # --- tags ----------------------------------------------------------------------------
    async def add_tags(self, tags: Sequence[Tag]) -> None:
        """Store tags in one transaction (committed on return). A moderator's tag replaces any tag of
        the same label on that message; an auto-tag never replaces a moderator's."""
        async with self._write() as db:
            await db.executemany(
                f"INSERT INTO tags ({_TAG_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (guild_id, message_id, label) DO UPDATE SET score = excluded.score, method = excluded.method, "
                "tagged_by = excluded.tagged_by, auto = excluded.auto, created_at = excluded.created_at, text = excluded.text "
                "WHERE excluded.auto = 0 OR tags.auto = 1",
                [(t.guild_id, t.channel_id, t.message_id, t.author_id, t.label, t.score, t.method, t.tagged_by, int(t.auto),
                  t.created_at, t.text) for t in tags])

    async def recent(self, guild_id: int, *, channel_id: int | None = None, label: str | None = None, limit: int = 10) -> list[Tag]:
        rows = await self._read(
            f"SELECT {_TAG_COLUMNS} FROM tags WHERE guild_id = ? AND (? IS NULL OR channel_id = ?) "
            "AND (? IS NULL OR label = ? COLLATE NOCASE) ORDER BY created_at DESC, id DESC LIMIT ?",
            (guild_id, channel_id, channel_id, label, label, limit))
        return [_tag(row) for row in rows]

    async def label_counts(self, guild_id: int, since: float) -> list[tuple[str, int]]:
        """(label, number of tags) since `since`, most used first."""
        rows = await self._read("SELECT label, COUNT(*) AS n FROM tags WHERE guild_id = ? AND created_at >= ? "
                                "GROUP BY label ORDER BY n DESC, label", (guild_id, since))
        return [(label, n) for label, n in rows]

    async def tags(self, guild_id: int, since: float | None = None) -> list[Tag]:
        """Every tag of the guild (since `since`), oldest first: the CSV export."""
        rows = await self._read(f"SELECT {_TAG_COLUMNS} FROM tags WHERE guild_id = ? AND created_at >= ? ORDER BY created_at, id",
                                (guild_id, since or 0.0))
        return [_tag(row) for row in rows]

    async def remove_tags(self, guild_id: int, message_id: int) -> list[Tag]:
        """Undo: delete the tags of one message; returns what was deleted."""
        async with self._write() as db:
            cursor = await db.execute(f"SELECT {_TAG_COLUMNS} FROM tags WHERE guild_id = ? AND message_id = ?", (guild_id, message_id))
            removed = [_tag(row) for row in await cursor.fetchall()]
            await db.execute("DELETE FROM tags WHERE guild_id = ? AND message_id = ?", (guild_id, message_id))
        return removed

    # --- a guild's data as a whole -------------------------------------------------------
    async def purge(self, guild_id: int) -> dict[str, int]:
        """Delete everything stored for a guild; returns rows deleted per table."""
        deleted = {}
        async with self._write() as db:
            for table in ("tags", "labels", "watched_channels", "guild_settings"):
                cursor = await db.execute(f"DELETE FROM {table} WHERE guild_id = ?", (guild_id,))
                deleted[table] = cursor.rowcount
        return deleted


def _locked(error: BaseException) -> bool:
    return isinstance(error, sqlite3.OperationalError) and ("locked" in str(error) or "busy" in str(error))
