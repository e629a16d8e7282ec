"""The moderators' data in SQLite (through aiosqlite): label sets, watched channels, tags, the
examples learned labels train on, the trained heads, and auto-tags waiting for review.

- Every query is scoped by guild id: one guild never reads or changes another's rows.
- WAL mode, so reads never wait for the writer; a busy timeout, so a briefly locked
  file makes a write wait instead of failing; every write commits before it returns,
  so a caller that acknowledges after `await` never acknowledges an unsaved tag.
- `schema_version` holds the version; MIGRATIONS are applied forward, all in one
  transaction, when the store opens. Append a migration, never edit a shipped one.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from .engine.errors import InvalidInput
from .specs.learned_labels import MAX_EXAMPLES_PER_LABEL, NONE_OF_THESE, Example, LinearHead
from .specs.zero_shot import MAX_LABELS

DEFAULT_METHOD = "embedding"  # one forward per message, whatever the number of labels
DEFAULT_THRESHOLD = 0.5
DEFAULT_REVIEW_THRESHOLD = 0.3  # auto-tags scoring from here up to the threshold go to the review queue
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
    (
        # Learned labels. A moderator's tag is a positive example; with store_text off its text is not kept,
        # only its embedding (vector, float32 bytes, and the model that made it).
        "ALTER TABLE tags ADD COLUMN vector BLOB",
        "ALTER TABLE tags ADD COLUMN vector_model TEXT",
        # Answers that a message is not a label ("Not this"), or none of them (label '': "None of these").
        """CREATE TABLE rejections (
            guild_id INTEGER NOT NULL,
            channel_id INTEGER NOT NULL,
            message_id INTEGER NOT NULL,
            label TEXT NOT NULL COLLATE NOCASE,
            tagged_by INTEGER NOT NULL,
            created_at REAL NOT NULL,
            text TEXT,
            vector BLOB,
            vector_model TEXT,
            PRIMARY KEY (guild_id, message_id, label))""",
        """CREATE TABLE label_models (
            guild_id INTEGER PRIMARY KEY,
            embedding_model TEXT NOT NULL,
            label_set TEXT NOT NULL,
            classes TEXT NOT NULL,
            dim INTEGER NOT NULL,
            weights BLOB NOT NULL,
            bias BLOB NOT NULL,
            examples INTEGER NOT NULL,
            examples_until REAL NOT NULL,
            trained_at REAL NOT NULL)""",
        # Auto-tags below certainty, posted to the log channel until a moderator answers.
        """CREATE TABLE reviews (
            guild_id INTEGER NOT NULL,
            channel_id INTEGER NOT NULL,
            message_id INTEGER NOT NULL,
            author_id INTEGER NOT NULL,
            label TEXT NOT NULL,
            score REAL NOT NULL,
            method TEXT NOT NULL,
            created_at REAL NOT NULL,
            text TEXT,
            vector BLOB,
            vector_model TEXT,
            PRIMARY KEY (guild_id, message_id))""",
        "ALTER TABLE guild_settings ADD COLUMN review_threshold REAL",
    ),
    (
        # A server's system prompt for /chat conversations (set by its admins with /config).
        """CREATE TABLE system_prompts (
            guild_id INTEGER PRIMARY KEY,
            prompt TEXT NOT NULL,
            set_by INTEGER NOT NULL,
            set_at REAL NOT NULL)""",
        # What /generate's Regenerate and Continue buttons need after a restart: the request and the text so far.
        """CREATE TABLE answers (
            message_id INTEGER PRIMARY KEY,
            guild_id INTEGER NOT NULL,
            owner_id INTEGER NOT NULL,
            request TEXT NOT NULL,
            text TEXT NOT NULL,
            created_at REAL NOT NULL)""",
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
    review_threshold: float = DEFAULT_REVIEW_THRESHOLD

    def label(self, name: str) -> Label | None:
        return next((label for label in self.labels if label.name.casefold() == name.casefold()), None)

    @property
    def label_set(self) -> tuple[str, ...]:
        """The label names as a model remembers them (order doesn't matter)."""
        return tuple(sorted(label.name for label in self.labels))


@dataclass(frozen=True)
class Embedding:
    """A message's sentence embedding (float32 bytes) and the model that made it."""

    vector: bytes
    model: str


@dataclass(frozen=True)
class LabelModel:
    head: LinearHead
    label_set: tuple[str, ...]  # GuildConfig.label_set when it was trained
    examples: int  # examples it was trained on
    examples_until: float  # examples created up to this time were read; later ones are "new"
    trained_at: float

    def fits(self, config: GuildConfig, embedding_model: str) -> bool:
        """Trained on this label set with this embedding model; otherwise it is rebuilt."""
        return self.label_set == config.label_set and self.head.model == embedding_model


@dataclass(frozen=True)
class Rejection:
    """A moderator's answer that a message is not `label` ("Not this"), or none of the labels (label '')."""

    guild_id: int
    channel_id: int
    message_id: int
    label: str
    tagged_by: int
    created_at: float
    text: str | None = None


@dataclass(frozen=True)
class Review:
    """An auto-tag below certainty, waiting in the log channel for a moderator."""

    guild_id: int
    channel_id: int
    message_id: int
    author_id: int
    label: str
    score: float
    method: str
    created_at: float
    text: str | None = None  # only when the guild has store_text on
    embedding: Embedding | None = None


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
_REVIEW_COLUMNS = (
    "guild_id, channel_id, message_id, author_id, label, score, method, created_at, text, vector, vector_model"
)


def _tag(row: sqlite3.Row | tuple) -> Tag:
    g, c, m, a, label, score, method, by, auto, at, text = row
    return Tag(g, c, m, a, label, score, method, by, bool(auto), at, text)


class TagStore:
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
        settings = await self._read(
            "SELECT method, threshold, store_text, review_threshold FROM guild_settings WHERE guild_id = ?", (guild_id,)
        )
        labels = await self._read(
            "SELECT name, emoji, description FROM labels WHERE guild_id = ? ORDER BY position", (guild_id,)
        )
        method, threshold, store_text, review = (
            settings[0] if settings else (DEFAULT_METHOD, DEFAULT_THRESHOLD, 0, None)
        )
        return GuildConfig(
            method,
            threshold,
            bool(store_text),
            tuple(Label(*row) for row in labels),
            DEFAULT_REVIEW_THRESHOLD if review is None else review,
        )

    async def add_label(
        self, guild_id: int, name: str, emoji: str | None = None, description: str | None = None
    ) -> bool:
        """Add a label (True), or update an existing label's emoji and description where given (False).
        Refuses a 26th label."""
        async with self._write() as db:  # count and insert in one transaction: two moderators can't make 26
            cursor = await db.execute(
                "UPDATE labels SET emoji = COALESCE(?, emoji), description = COALESCE(?, description) "
                "WHERE guild_id = ? AND name = ?",
                (emoji, description, guild_id, name),
            )
            if cursor.rowcount:
                return False
            count, last = await (
                await db.execute("SELECT COUNT(*), MAX(position) FROM labels WHERE guild_id = ?", (guild_id,))
            ).fetchone()
            if count >= MAX_LABELS:
                raise InvalidInput(
                    f"The label set is full ({MAX_LABELS} labels). Remove one with /labelset remove first."
                )
            await db.execute(
                "INSERT INTO labels (guild_id, name, emoji, description, position) VALUES (?, ?, ?, ?, ?)",
                (guild_id, name, emoji, description, (last or 0) + 1),
            )
            return True

    async def remove_label(self, guild_id: int, name: str) -> bool:
        async with self._write() as db:
            cursor = await db.execute("DELETE FROM labels WHERE guild_id = ? AND name = ?", (guild_id, name))
            return cursor.rowcount > 0

    async def update_settings(
        self,
        guild_id: int,
        *,
        method: str | None = None,
        threshold: float | None = None,
        store_text: bool | None = None,
        review_threshold: float | None = None,
    ) -> GuildConfig:
        async with self._write() as db:
            await db.execute(
                "INSERT OR IGNORE INTO guild_settings (guild_id, method, threshold) VALUES (?, ?, ?)",
                (guild_id, DEFAULT_METHOD, DEFAULT_THRESHOLD),
            )
            await db.execute(
                "UPDATE guild_settings SET method = COALESCE(?, method), threshold = COALESCE(?, threshold), "
                "store_text = COALESCE(?, store_text), review_threshold = COALESCE(?, review_threshold) WHERE guild_id = ?",
                (method, threshold, None if store_text is None else int(store_text), review_threshold, guild_id),
            )
        return await self.config(guild_id)

    # --- conversations -------------------------------------------------------------------
    async def system_prompt(self, guild_id: int) -> str | None:
        rows = await self._read("SELECT prompt FROM system_prompts WHERE guild_id = ?", (guild_id,))
        return rows[0][0] if rows else None

    async def set_system_prompt(self, guild_id: int, prompt: str | None, set_by: int) -> None:
        """Store a server's system prompt; None removes it."""
        async with self._write() as db:
            if prompt is None:
                await db.execute("DELETE FROM system_prompts WHERE guild_id = ?", (guild_id,))
            else:
                await db.execute(
                    "INSERT OR REPLACE INTO system_prompts (guild_id, prompt, set_by, set_at) VALUES (?, ?, ?, ?)",
                    (guild_id, prompt, set_by, time.time()),
                )

    async def save_answer(self, message_id: int, guild_id: int, owner_id: int, request: str, text: str) -> None:
        """Keep an answer's request (JSON) and text, for its buttons."""
        async with self._write() as db:
            await db.execute(
                "INSERT OR REPLACE INTO answers (message_id, guild_id, owner_id, request, text, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (message_id, guild_id, owner_id, request, text, time.time()),
            )

    async def answer(self, message_id: int) -> tuple[str, str] | None:
        """An answer's request (JSON) and text, or None."""
        rows = await self._read("SELECT request, text FROM answers WHERE message_id = ?", (message_id,))
        return (rows[0][0], rows[0][1]) if rows else None

    # --- watched channels ----------------------------------------------------------------
    async def watch(self, guild_id: int, channel_id: int, threshold: float | None, log_channel_id: int | None) -> None:
        async with self._write() as db:
            await db.execute(
                "INSERT OR REPLACE INTO watched_channels (guild_id, channel_id, threshold, log_channel_id) "
                "VALUES (?, ?, ?, ?)",
                (guild_id, channel_id, threshold, log_channel_id),
            )

    async def unwatch(self, guild_id: int, channel_id: int) -> bool:
        async with self._write() as db:
            cursor = await db.execute(
                "DELETE FROM watched_channels WHERE guild_id = ? AND channel_id = ?", (guild_id, channel_id)
            )
            return cursor.rowcount > 0

    async def watches(self, guild_id: int) -> list[Watch]:
        rows = await self._read(
            "SELECT channel_id, threshold, log_channel_id FROM watched_channels WHERE guild_id = ? ORDER BY channel_id",
            (guild_id,),
        )
        return [Watch(*row) for row in rows]

    async def watch_of(self, guild_id: int, channel_id: int) -> Watch | None:
        rows = await self._read(
            "SELECT channel_id, threshold, log_channel_id FROM watched_channels WHERE guild_id = ? AND channel_id = ?",
            (guild_id, channel_id),
        )
        return Watch(*rows[0]) if rows else None

    # --- tags ----------------------------------------------------------------------------
    async def add_tags(self, tags: Sequence[Tag], embedding: Embedding | None = None) -> None:
        """Store tags in one transaction (committed on return). A moderator's tag replaces any tag of
        the same label on that message; an auto-tag never replaces a moderator's. A moderator's tag is
        a training example: it keeps the message's `embedding`, and overrides earlier answers that the
        message is not that label or none of them."""
        async with self._write() as db:
            await self._insert_tags(db, tags, embedding)

    @staticmethod
    async def _insert_tags(db: aiosqlite.Connection, tags: Sequence[Tag], embedding: Embedding | None) -> None:
        await db.executemany(
            f"INSERT INTO tags ({_TAG_COLUMNS}, vector, vector_model) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (guild_id, message_id, label) DO UPDATE SET score = excluded.score, method = excluded.method, "
            "tagged_by = excluded.tagged_by, auto = excluded.auto, created_at = excluded.created_at, text = excluded.text, "
            "vector = excluded.vector, vector_model = excluded.vector_model "
            "WHERE excluded.auto = 0 OR tags.auto = 1",
            [
                (
                    t.guild_id,
                    t.channel_id,
                    t.message_id,
                    t.author_id,
                    t.label,
                    t.score,
                    t.method,
                    t.tagged_by,
                    int(t.auto),
                    t.created_at,
                    t.text,
                    *(_embedding_columns(None if t.auto else embedding)),
                )
                for t in tags
            ],
        )
        await db.executemany(
            "DELETE FROM rejections WHERE guild_id = ? AND message_id = ? AND label IN ('', ?)",
            [(t.guild_id, t.message_id, t.label) for t in tags if not t.auto],
        )

    @staticmethod
    async def _insert_rejection(db: aiosqlite.Connection, rejection: Rejection, embedding: Embedding | None) -> None:
        r = rejection
        await db.execute(
            "INSERT OR REPLACE INTO rejections (guild_id, channel_id, message_id, label, tagged_by, created_at, text, "
            "vector, vector_model) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                r.guild_id,
                r.channel_id,
                r.message_id,
                r.label,
                r.tagged_by,
                r.created_at,
                r.text,
                *_embedding_columns(embedding),
            ),
        )

    async def reject(self, rejection: Rejection, embedding: Embedding | None = None) -> None:
        """Keep a moderator's "Not this" / "None of these" as a training example."""
        async with self._write() as db:
            await self._insert_rejection(db, rejection, embedding)

    async def recent(
        self, guild_id: int, *, channel_id: int | None = None, label: str | None = None, limit: int = 10
    ) -> list[Tag]:
        rows = await self._read(
            f"SELECT {_TAG_COLUMNS} FROM tags WHERE guild_id = ? AND (? IS NULL OR channel_id = ?) "
            "AND (? IS NULL OR label = ? COLLATE NOCASE) ORDER BY created_at DESC, id DESC LIMIT ?",
            (guild_id, channel_id, channel_id, label, label, limit),
        )
        return [_tag(row) for row in rows]

    async def label_counts(self, guild_id: int, since: float) -> list[tuple[str, int]]:
        """(label, number of tags) since `since`, most used first."""
        rows = await self._read(
            "SELECT label, COUNT(*) AS n FROM tags WHERE guild_id = ? AND created_at >= ? "
            "GROUP BY label ORDER BY n DESC, label",
            (guild_id, since),
        )
        return [(label, n) for label, n in rows]

    async def tags(self, guild_id: int, since: float | None = None) -> list[Tag]:
        """Every tag of the guild (since `since`), oldest first: the CSV export."""
        rows = await self._read(
            f"SELECT {_TAG_COLUMNS} FROM tags WHERE guild_id = ? AND created_at >= ? ORDER BY created_at, id",
            (guild_id, since or 0.0),
        )
        return [_tag(row) for row in rows]

    async def remove_tags(self, guild_id: int, message_id: int) -> list[Tag]:
        """Undo: delete the tags of one message; returns what was deleted."""
        async with self._write() as db:
            cursor = await db.execute(
                f"SELECT {_TAG_COLUMNS} FROM tags WHERE guild_id = ? AND message_id = ?", (guild_id, message_id)
            )
            removed = [_tag(row) for row in await cursor.fetchall()]
            for table in ("tags", "rejections", "reviews"):  # every answer about the message, and its pending review
                await db.execute(f"DELETE FROM {table} WHERE guild_id = ? AND message_id = ?", (guild_id, message_id))
        return removed

    # --- learned labels --------------------------------------------------------------------
    async def examples(self, guild_id: int) -> list[tuple[int, Example]]:
        """(message id, example) of every moderator's answer, each label's newest MAX_EXAMPLES_PER_LABEL."""
        rows = await self._read(
            "SELECT message_id, label, 1, text, vector, vector_model, created_at FROM tags WHERE guild_id = ? AND auto = 0 "
            "UNION ALL SELECT message_id, label, 0, text, vector, vector_model, created_at FROM rejections WHERE guild_id = ? "
            "ORDER BY created_at DESC",
            (guild_id, guild_id),
        )
        kept: dict[tuple[str, bool], int] = {}
        out = []
        for message_id, label, positive, text, vector, model, _ in rows:
            # "None of these" is stored as a rejection of label '' but trains as a class of its own.
            example = Example(label, bool(positive) or label == NONE_OF_THESE, text, vector, model)
            key = (example.label.casefold(), example.positive)
            kept[key] = kept.get(key, 0) + 1
            if kept[key] <= MAX_EXAMPLES_PER_LABEL:
                out.append((message_id, example))
        return out

    async def example_counts(self, guild_id: int) -> dict[str, int]:
        """Moderators' tags per label (casefolded): the positive examples each label has."""
        rows = await self._read(
            "SELECT label COLLATE NOCASE, COUNT(*) FROM tags WHERE guild_id = ? AND auto = 0 "
            "GROUP BY label COLLATE NOCASE",
            (guild_id,),
        )
        return {label.casefold(): n for label, n in rows}

    async def new_examples(self, guild_id: int, since: float) -> int:
        """Moderators' answers given after `since`."""
        rows = await self._read(
            "SELECT (SELECT COUNT(*) FROM tags WHERE guild_id = ? AND auto = 0 AND created_at > ?) + "
            "(SELECT COUNT(*) FROM rejections WHERE guild_id = ? AND created_at > ?)",
            (guild_id, since, guild_id, since),
        )
        return rows[0][0]

    async def save_model(self, guild_id: int, model: LabelModel) -> None:
        head = model.head
        async with self._write() as db:
            await db.execute(
                "INSERT OR REPLACE INTO label_models (guild_id, embedding_model, label_set, classes, dim, weights, bias, "
                "examples, examples_until, trained_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    guild_id,
                    head.model,
                    json.dumps(model.label_set),
                    json.dumps(head.classes),
                    head.dim,
                    head.weights,
                    head.bias,
                    model.examples,
                    model.examples_until,
                    model.trained_at,
                ),
            )

    async def label_model(self, guild_id: int) -> LabelModel | None:
        rows = await self._read(
            "SELECT embedding_model, label_set, classes, dim, weights, bias, examples, examples_until, trained_at "
            "FROM label_models WHERE guild_id = ?",
            (guild_id,),
        )
        if not rows:
            return None
        model, label_set, classes, dim, weights, bias, examples, until, trained_at = rows[0]
        head = LinearHead(tuple(json.loads(classes)), weights, bias, dim, model)
        return LabelModel(head, tuple(json.loads(label_set)), examples, until, trained_at)

    # --- the review queue ------------------------------------------------------------------
    async def add_review(self, review: Review) -> None:
        r = review
        async with self._write() as db:
            await db.execute(
                f"INSERT OR REPLACE INTO reviews ({_REVIEW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    r.guild_id,
                    r.channel_id,
                    r.message_id,
                    r.author_id,
                    r.label,
                    r.score,
                    r.method,
                    r.created_at,
                    r.text,
                    *_embedding_columns(r.embedding),
                ),
            )

    async def review(self, guild_id: int, message_id: int) -> Review | None:
        rows = await self._read(
            f"SELECT {_REVIEW_COLUMNS} FROM reviews WHERE guild_id = ? AND message_id = ?", (guild_id, message_id)
        )
        return _review(rows[0]) if rows else None

    async def answer_review(self, guild_id: int, message_id: int, tagged_by: int, label: str | None) -> Review | None:
        """A moderator's answer to a review, in one transaction: `label` is confirmed as a tag (a training example
        with the review's embedding), or with None the reviewed label is rejected ("Not this"). Returns the review,
        or None when it was already answered or undone (nothing is written then)."""
        async with self._write() as db:
            cursor = await db.execute(
                f"SELECT {_REVIEW_COLUMNS} FROM reviews WHERE guild_id = ? AND message_id = ?", (guild_id, message_id)
            )
            row = await cursor.fetchone()
            if row is None:
                return None
            r = _review(row)
            now = time.time()
            if label is None:
                await self._insert_rejection(
                    db, Rejection(guild_id, r.channel_id, message_id, r.label, tagged_by, now, r.text), r.embedding
                )
            else:
                score = r.score if label.casefold() == r.label.casefold() else None
                await self._insert_tags(
                    db,
                    [
                        Tag(
                            guild_id,
                            r.channel_id,
                            message_id,
                            r.author_id,
                            label,
                            score,
                            r.method,
                            tagged_by,
                            False,
                            now,
                            r.text,
                        )
                    ],
                    r.embedding,
                )
            await db.execute("DELETE FROM reviews WHERE guild_id = ? AND message_id = ?", (guild_id, message_id))
            return r

    # --- a guild's data as a whole -------------------------------------------------------
    async def purge(self, guild_id: int) -> dict[str, int]:
        """Delete everything stored for a guild; returns rows deleted per table."""
        deleted = {}
        async with self._write() as db:
            for table in (
                "tags",
                "labels",
                "watched_channels",
                "guild_settings",
                "rejections",
                "label_models",
                "reviews",
                "system_prompts",
                "answers",
            ):
                cursor = await db.execute(f"DELETE FROM {table} WHERE guild_id = ?", (guild_id,))
                deleted[table] = cursor.rowcount
        return deleted


def _embedding_columns(embedding: Embedding | None) -> tuple[bytes | None, str | None]:
    return (embedding.vector, embedding.model) if embedding else (None, None)


def _review(row: sqlite3.Row | tuple) -> Review:
    *fields, vector, model = row
    return Review(*fields, embedding=Embedding(vector, model) if vector is not None else None)


def _locked(error: BaseException) -> bool:
    return isinstance(error, sqlite3.OperationalError) and ("locked" in str(error) or "busy" in str(error))
