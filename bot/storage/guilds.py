"""Server settings outside moderation: the system prompt a server's admins set for /chat (/config)."""

from __future__ import annotations

import time

from .database import Database


class GuildStore:
    TABLES = ("system_prompts",)

    def __init__(self, database: Database) -> None:
        self.database = database

    async def system_prompt(self, guild_id: int) -> str | None:
        rows = await self.database.read("SELECT prompt FROM system_prompts WHERE guild_id = ?", (guild_id,))
        return rows[0][0] if rows else None

    async def set_system_prompt(self, guild_id: int, prompt: str | None, set_by: int) -> None:
        """Store a server's system prompt; None removes it."""
        async with self.database.write() as db:
            if prompt is None:
                await db.execute("DELETE FROM system_prompts WHERE guild_id = ?", (guild_id,))
            else:
                await db.execute(
                    "INSERT OR REPLACE INTO system_prompts (guild_id, prompt, set_by, set_at) VALUES (?, ?, ?, ?)",
                    (guild_id, prompt, set_by, time.time()),
                )
