"""Server settings outside moderation: the system prompt a server's admins set for /chat (/config)."""

from __future__ import annotations

import time

from .database import Database, upsert


class GuildStore:
    TABLES = ("system_prompts",)

    def __init__(self, database: Database) -> None:
        self.database = database

    async def system_prompt(self, guild_id: int) -> str | None:
        rows = await self.database.fetch("SELECT prompt FROM system_prompts WHERE guild_id = ?", (guild_id,))
        return rows[0][0] if rows else None

    async def set_system_prompt(self, guild_id: int, prompt: str | None, set_by: int) -> None:
        """Store a server's system prompt; None removes it."""
        if prompt is None:
            await self.database.execute("DELETE FROM system_prompts WHERE guild_id = ?", (guild_id,))
        else:
            await self.database.execute(
                upsert("system_prompts", ("guild_id", "prompt", "set_by", "set_at"), ("guild_id",)),
                (guild_id, prompt, set_by, time.time()),
            )
