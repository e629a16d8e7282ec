"""A bot process that only tags, for the durability test: `python -m tests.tag_writer TARGET GUILD FIRST`.

It writes one moderator's tag per transaction on messages FIRST, FIRST + 1, ... of GUILD in the database
TARGET (an SQLite file or a PostgreSQL URL), and prints each message id once its write returned: the
moment the bot would tell the moderator "Tag saved". It runs until it is killed.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time

from bot.storage import Storage, StoreBusy, Tag


async def tag_forever(target: str, guild_id: int, first: int) -> None:
    async with Storage(target) as store:
        for message_id in itertools.count(first):
            tag = Tag(guild_id, 10, message_id, 7, "spam", 0.9, "embedding", 42, False, time.time())
            try:
                await store.moderation.add_tags([tag])
            except StoreBusy:
                continue  # the moderator is told to try again: not acknowledged
            sys.stdout.write(f"{message_id}\n")
            sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(tag_forever(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
