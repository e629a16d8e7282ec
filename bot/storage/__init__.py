"""The bot's data in one database, SQLite (the embedded default) or PostgreSQL (several machines),
split by concern over one shared `Database`:

- database.py: the interface (transactions, busy handling as `StoreBusy`, the migrations of schema.py),
  implemented by sqlite.py and postgres.py;
- moderation.py: label sets, watched channels, tags, examples, learned models and reviews;
- answers.py: generated answers, for their buttons;
- guilds.py: server settings such as the /chat system prompt;
- policies.py: calibrated policies and the auto-tagged messages' scores they are replayed on.

`Storage` composes them; the bot holds one as `bot.store` (`bot.store.moderation.tags(...)`, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .answers import AnswerStore
from .database import BUSY_TIMEOUT, Database, StoreBusy, StoreUnreachable
from .guilds import GuildStore
from .moderation import (
    DAY,
    Embedding,
    FineTunedEncoder,
    GuildConfig,
    Label,
    LabelModel,
    ModerationStore,
    Rejection,
    Review,
    Tag,
    Watch,
)
from .policies import EVERY_CHANNEL, Policy, PolicyStore, Scored
from .postgres import SCHEMES as POSTGRES_SCHEMES
from .postgres import PostgresDatabase
from .schema import MIGRATIONS, Statement
from .sqlite import SQLiteDatabase

__all__ = [
    "DAY",
    "MIGRATIONS",
    "AnswerStore",
    "Database",
    "Embedding",
    "GuildConfig",
    "GuildStore",
    "Label",
    "FineTunedEncoder",
    "LabelModel",
    "ModerationStore",
    "EVERY_CHANNEL",
    "Policy",
    "PolicyStore",
    "Scored",
    "Rejection",
    "Review",
    "Storage",
    "StoreBusy",
    "StoreUnreachable",
    "Tag",
    "Watch",
    "DATABASE_URL_SCHEMES",
    "database_for",
]

SQLITE_PREFIX = "sqlite:///"  # sqlite:///relative/path, sqlite:////absolute/path
DATABASE_URL_SCHEMES = (*(f"{scheme}://" for scheme in POSTGRES_SCHEMES), SQLITE_PREFIX)


def database_for(
    target: Path | str, *, busy_timeout: float = BUSY_TIMEOUT, migrations: Sequence[tuple[Statement, ...]] = MIGRATIONS
) -> Database:
    """The database DATABASE_URL names: postgresql://user:password@host:port/name (or postgres://...), or
    sqlite:///path; a path without a scheme is an SQLite file."""
    options = {"busy_timeout": busy_timeout, "migrations": migrations}
    if isinstance(target, Path) or "://" not in target:
        return SQLiteDatabase(target, **options)
    if target.startswith(SQLITE_PREFIX):
        return SQLiteDatabase(target.removeprefix(SQLITE_PREFIX), **options)
    if target.partition("://")[0] in POSTGRES_SCHEMES:
        return PostgresDatabase(target, **options)
    raise ValueError(f"{target!r} is not postgresql://... nor {SQLITE_PREFIX}...")


class Storage:
    def __init__(
        self,
        target: Path | str,
        *,
        busy_timeout: float = BUSY_TIMEOUT,
        migrations: Sequence[tuple[Statement, ...]] = MIGRATIONS,
    ) -> None:
        """`target`: an SQLite file, or a URL as `database_for` reads it."""
        self.database = database_for(target, busy_timeout=busy_timeout, migrations=migrations)
        self.moderation = ModerationStore(self.database)
        self.answers = AnswerStore(self.database)
        self.guilds = GuildStore(self.database)
        self.policies = PolicyStore(self.database)

    async def open(self) -> None:
        await self.database.open()

    async def close(self) -> None:
        await self.database.close()

    async def __aenter__(self) -> Storage:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def guild_ids(self) -> list[int]:
        """The servers with labels, tags or policies, in id order (the console's moderation view picks from them)."""
        rows = await self.database.fetch(
            "SELECT guild_id FROM labels UNION SELECT guild_id FROM tags UNION SELECT guild_id FROM policies "
            "ORDER BY guild_id"
        )
        return [guild_id for (guild_id,) in rows]

    async def purge(self, guild_id: int) -> dict[str, int]:
        """Delete everything stored for a guild, in one transaction; returns rows deleted per table."""
        tables = (*self.moderation.TABLES, *self.policies.TABLES, *self.guilds.TABLES, *self.answers.TABLES)
        return await self.database.delete_guild(guild_id, tables)
