"""/translate, as its spec (bot/specs/translation.py) declares it, and the "Translate" message menu: the
message's text into the language of the member's Discord client (English where that one is not listed)."""

from __future__ import annotations

import discord
from discord import app_commands

from bot.answers import answer
from bot.engine import InvalidInput
from bot.slash import TaskCog, slash_command
from bot.specs.translation import LANGUAGES


def reader_language(locale: discord.Locale) -> str:
    """The language a member reads, from their client's locale (e.g. "pt-BR" -> Portuguese)."""
    return LANGUAGES.get(str(locale.value).split("-")[0], LANGUAGES["en"])


class Translation(TaskCog):
    translate = slash_command("translate")

    def __init__(self, bot: discord.Client) -> None:
        super().__init__(bot)
        self.menu = app_commands.ContextMenu(name="Translate", callback=self.translate_message)

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    async def translate_message(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """Only the member who asked sees it: it is in their language."""
        if not message.content.strip():
            raise InvalidInput("That message has no text to translate.")
        options = {"text": message.content, "to": reader_language(interaction.locale)}
        await answer(self.bot, interaction, "translate", options, private=True)


setup = Translation.setup
