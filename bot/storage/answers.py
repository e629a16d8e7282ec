"""Generated answers: what /generate's and /chat's Regenerate and Continue buttons need after a restart
(the request, as JSON, and the text so far), keyed by the answer's message id."""

from __future__ import annotations

import time

from .database import Database, upsert


class AnswerStore:
    TABLES = ("answers",)

    def __init__(self, database: Database) -> None:
        self.database = database

    async def save(self, message_id: int, guild_id: int, owner_id: int, request: str, text: str) -> None:
        """Keep an answer's request (JSON) and text, for its buttons."""
        await self.database.execute(
            upsert("answers", ("message_id", "guild_id", "owner_id", "request", "text", "created_at"), ("message_id",)),
            (message_id, guild_id, owner_id, request, text, time.time()),
        )

    async def get(self, message_id: int) -> tuple[str, str] | None:
        """An answer's request (JSON) and text, or None."""
        rows = await self.database.fetch("SELECT request, text FROM answers WHERE message_id = ?", (message_id,))
        return (rows[0][0], rows[0][1]) if rows else None
