from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import HFBot
from bot.commands import DEFAULT_ROLE, MAX_TEXT_CHARS, ROLES


class Tokens(commands.Cog):
    def __init__(self, bot: HFBot) -> None:
        self.bot = bot

    @app_commands.command(description="See how a model's tokenizer splits a text into tokens and ids.")
    @app_commands.describe(text="Any text", model="Whose tokenizer", private="Only you see the answer")
    @app_commands.choices(model=[app_commands.Choice(name=role.replace("_", "-"), value=role) for role in ROLES])
    async def tokens(
        self,
        interaction: discord.Interaction,
        text: app_commands.Range[str, 1, MAX_TEXT_CHARS],
        model: str = DEFAULT_ROLE,
        private: bool = False,
    ) -> None:
        await self.bot.answer(interaction, "tokens", private, text=text, model=model)


async def setup(bot: HFBot) -> None:
    await bot.add_cog(Tokens(bot))
