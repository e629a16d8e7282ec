"""/summarize on a text or on this channel's (or thread's) last messages, as its spec
(bot/specs/summarization.py) declares it, and the "Summarize" message menu."""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands

from bot.answers import answer
from bot.engine import InvalidInput
from bot.slash import TaskCog, slash_command
from bot.specs.summarization import MESSAGES

NO_INTENT = (
    "I can't read this channel's messages: this bot runs without Discord's Message Content intent "
    "(its operator switches it on in the developer portal and sets CHAT_THREADS=true or AUTOTAG=true)."
)
NO_HISTORY = "I can't read this channel's messages: I need the Read Message History permission here."


class Summarization(TaskCog):
    def __init__(self, bot: Any) -> None:
        super().__init__(bot)
        self.menu = app_commands.ContextMenu(name="Summarize", callback=self.summarize_message)

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

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

    async def summarize_message(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """Only the member who asked sees it (a menu has no options)."""
        if not message.content.strip():
            raise InvalidInput("That message has no text to summarize.")
        await answer(self.bot, interaction, "summarize", {"text": message.content}, private=True)


setup = Summarization.setup
