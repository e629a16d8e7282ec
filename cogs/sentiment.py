from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import HFBot
from bot.commands import MAX_TEXT_CHARS


class Sentiment(commands.Cog):
    def __init__(self, bot: HFBot) -> None:
        self.bot = bot

    @app_commands.command(description="How positive or negative is a text? Several texts: separate them with | or new lines.")
    @app_commands.describe(text="One text, or several separated by | or new lines",
                           details="Show what the pipeline did: tokens, logits, softmax, id2label",
                           private="Only you see the answer")
    async def sentiment(self, interaction: discord.Interaction, text: app_commands.Range[str, 1, MAX_TEXT_CHARS],
                        details: bool = False, private: bool = False) -> None:
        await self.bot.answer(interaction, "sentiment", private, text=text, details=details)


async def setup(bot: HFBot) -> None:
    await bot.add_cog(Sentiment(bot))
