"""The bot's data in one SQLite file, split by concern over one shared connection:

- database.py: the connection, busy handling (`StoreBusy`), transactions and the migrations (schema.py);
- moderation.py: label sets, watched channels, tags, examples, learned models and reviews;
- answers.py: generated answers, for their buttons;
- guilds.py: server settings such as the /chat system prompt.

`Storage` composes them; the bot holds one as `bot.store` (`bot.store.moderation.tags(...)`, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .answers import AnswerStore
from .database import BUSY_TIMEOUT, Database, StoreBusy
from .guilds import GuildStore
from .moderation import (
    Embedding,
    GuildConfig,
    Label,
    LabelModel,
    ModerationStore,
    Rejection,
    Review,
    Tag,
    Watch,
)
from .schema import MIGRATIONS

__all__ = [
    "MIGRATIONS",
    "AnswerStore",
    "Database",
    "Embedding",
    "GuildConfig",
    "GuildStore",
    "Label",
    "LabelModel",
    "ModerationStore",
    "Rejection",
    "Review",
    "Storage",
    "StoreBusy",
    "Tag",
    "Watch",
]


class Storage:
    def __init__(
        self,
        path: Path | str,
        *,
        busy_timeout: float = BUSY_TIMEOUT,
        migrations: Sequence[tuple[str, ...]] = MIGRATIONS,
    ) -> None:
        self.database = Database(path, busy_timeout=busy_timeout, migrations=migrations)
        self.moderation = ModerationStore(self.database)
        self.answers = AnswerStore(self.database)
        self.guilds = GuildStore(self.database)

    async def open(self) -> None:
        await self.database.open()

    async def close(self) -> None:
        await self.database.close()

    async def __aenter__(self) -> Storage:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def purge(self, guild_id: int) -> dict[str, int]:
        """Delete everything stored for a guild, in one transaction; returns rows deleted per table."""
        tables = (*self.moderation.TABLES, *self.guilds.TABLES, *self.answers.TABLES)
        return await self.database.delete_guild(guild_id, tables)
