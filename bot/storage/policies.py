"""Calibrated policies (/policy, cogs/policies.py) and the scores of auto-tagged messages that a dry run replays.
Every query is scoped by guild id. Scores are kept SCORES_KEPT_DAYS, without the messages' text."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from .database import Database, upsert

EVERY_CHANNEL = 0  # a policy's channel_id when it applies in every watched channel
SCORES_KEPT_DAYS = 30


@dataclass(frozen=True)
class Policy:
    guild_id: int
    label: str
    channel_id: int  # EVERY_CHANNEL, or one watched channel (its threads included)
    action: str  # a key of bot.policies.ACTIONS
    timeout_seconds: int | None  # the timeout action's duration
    target_precision: float  # what the moderator asked for, 0..1
    threshold: float  # derived from it on the server's examples
    precision: float  # what that threshold gave on held-out examples
    recall: float
    set_by: int
    set_at: float
    paused: str | None = None  # why it only logs for now: its precision can't be met on the new examples


@dataclass(frozen=True)
class Scored:
    """An auto-tagged message's scores."""

    guild_id: int
    watched_id: int  # the watched channel: a thread's parent
    channel_id: int
    message_id: int
    author_id: int
    scores: dict[str, float]
    created_at: float


_POLICY_FIELDS = (
    "guild_id",
    "label",
    "channel_id",
    "action",
    "timeout_seconds",
    "target_precision",
    "threshold",
    "precision_at",
    "recall_at",
    "set_by",
    "set_at",
    "paused",
)
_SCORED_FIELDS = ("guild_id", "watched_id", "channel_id", "message_id", "author_id", "scores", "created_at")


class PolicyStore:
    TABLES = ("policies", "scored_messages")

    def __init__(self, database: Database) -> None:
        self.database = database

    async def set_policy(self, policy: Policy) -> None:
        """Add a policy, or replace the one for the same label and channel."""
        p = policy
        await self.database.execute(
            upsert("policies", _POLICY_FIELDS, ("guild_id", "label", "channel_id")),
            (
                p.guild_id,
                p.label,
                p.channel_id,
                p.action,
                p.timeout_seconds,
                p.target_precision,
                p.threshold,
                p.precision,
                p.recall,
                p.set_by,
                p.set_at,
                p.paused,
            ),
        )

    async def recalibrate(self, before: Policy, after: Policy) -> bool:
        """Replace `before`'s threshold, precision, recall and pause by `after`'s, unless a moderator set or
        removed the policy meanwhile (its set_at changed): their choice wins. Whether it was updated."""
        a = after
        updated = await self.database.execute(
            "UPDATE policies SET threshold = ?, precision_at = ?, recall_at = ?, paused = ? "
            "WHERE guild_id = ? AND label = ? AND channel_id = ? AND set_at = ?",
            (a.threshold, a.precision, a.recall, a.paused, a.guild_id, before.label, before.channel_id, before.set_at),
        )
        return updated > 0

    async def remove_policy(self, guild_id: int, label: str, channel_id: int) -> bool:
        removed = await self.database.execute(
            "DELETE FROM policies WHERE guild_id = ? AND label = ? AND channel_id = ?", (guild_id, label, channel_id)
        )
        return removed > 0

    async def policies(self, guild_id: int) -> list[Policy]:
        rows = await self.database.fetch(
            f"SELECT {', '.join(_POLICY_FIELDS)} FROM policies WHERE guild_id = ? ORDER BY label, channel_id",
            (guild_id,),
        )
        return [Policy(*row) for row in rows]

    async def add_scored(self, scored: Scored) -> None:
        """Keep a message's scores, and forget the guild's scores older than SCORES_KEPT_DAYS."""
        s = scored
        async with self.database.transaction() as db:
            await db.execute(
                upsert("scored_messages", _SCORED_FIELDS, ("guild_id", "message_id")),
                (
                    s.guild_id,
                    s.watched_id,
                    s.channel_id,
                    s.message_id,
                    s.author_id,
                    json.dumps(s.scores),
                    s.created_at,
                ),
            )
            await db.execute(
                "DELETE FROM scored_messages WHERE guild_id = ? AND created_at < ?",
                (s.guild_id, time.time() - SCORES_KEPT_DAYS * 86400),
            )

    async def scored_since(self, guild_id: int, since: float) -> list[Scored]:
        rows = await self.database.fetch(
            f"SELECT {', '.join(_SCORED_FIELDS)} FROM scored_messages WHERE guild_id = ? AND created_at >= ? "
            "ORDER BY created_at",
            (guild_id, since),
        )
        return [Scored(g, w, c, m, a, json.loads(scores), at) for g, w, c, m, a, scores, at in rows]
