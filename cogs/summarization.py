"""/summarize on a text or on this channel's (or thread's) last messages, as its spec
(bot/specs/summarization.py) declares it, and the "Summarize" message menu."""

from __future__ import annotations

from typing import Any

import discord

from bot.answers import answer
from bot.engine import InvalidInput
from bot.slash import MessageMenu, TaskCog, slash_command
from bot.specs.summarization import MESSAGES

NO_INTENT = (
    "I can't read this channel's messages: this bot runs without Discord's Message Content intent "
    "(its operator switches it on in the developer portal and sets CHAT_THREADS=true or AUTOTAG=true)."
)
NO_HISTORY = "I can't read this channel's messages: I need the Read Message History permission here."


class Summarization(TaskCog):
    menus = (MessageMenu("Summarize", "summarize", text="text", private=True),)  # a menu has no `private` option

    async def summarize_options(self, interaction: discord.Interaction, private: bool = False, **options: Any) -> None:
        count = options["messages"]
        context = {}
        if count is not None and options["text"] is None:
            MESSAGES.check(count)  # before reading anything
            context = await self.read(interaction.channel, count)
        await answer(self.bot, interaction, "summarize", options, private, **context)

    summarize = slash_command("summarize", summarize_options)

    async def read(self, channel: discord.abc.Messageable, count: int) -> dict[str, str]:
        """The channel's last `count` messages with text, oldest first, as "author: text" lines."""
        if not self.bot.intents.message_content:  # every other member's message would read as empty
            raise InvalidInput(NO_INTENT)
        try:
            messages = [message async for message in channel.history(limit=count)]
        except discord.Forbidden as error:
            raise InvalidInput(NO_HISTORY) from error
        lines = [f"{m.author.display_name}: {m.content}" for m in reversed(messages) if m.content.strip()]
        return {"transcript": "\n".join(lines), "origin": f"the last {count} messages"}


setup = Summarization.setup
