from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import HFBot, suggest_models
from bot.commands import MAX_TEXT_CHARS, MODEL_HELP


class Sentiment(commands.Cog):
    def __init__(self, bot: HFBot) -> None:
        self.bot = bot

    @app_commands.command(
        description="How positive or negative is a text? Several texts: separate them with | or new lines."
    )
    @app_commands.describe(
        text="One text, or several separated by | or new lines",
        details="Show what the pipeline did: tokens, logits, softmax, id2label",
        model=MODEL_HELP,
        private="Only you see the answer",
    )
    @app_commands.autocomplete(model=suggest_models)
    async def sentiment(
        self,
        interaction: discord.Interaction,
        text: app_commands.Range[str, 1, MAX_TEXT_CHARS],
        details: bool = False,
        model: str = "",
        private: bool = False,
    ) -> None:
        await self.bot.answer(interaction, "sentiment", private, text=text, details=details, model=model)


async def setup(bot: HFBot) -> None:
    await bot.add_cog(Sentiment(bot))
