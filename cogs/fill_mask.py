from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import HFBot, suggest_models
from bot.commands import DEFAULT_TOP_K, MAX_TEXT_CHARS, MAX_TOP_K, MODEL_HELP


class FillMask(commands.Cog):
    def __init__(self, bot: HFBot) -> None:
        self.bot = bot

    @app_commands.command(description="Guess the missing word: write [MASK], <mask> or ___ where it goes.")
    @app_commands.describe(
        text="A sentence with one [MASK], <mask> or ___",
        top_k="How many guesses",
        details="Show what the pipeline did: tokens, logits, softmax, the ids' tokens",
        model=MODEL_HELP,
        private="Only you see the answer",
    )
    @app_commands.autocomplete(model=suggest_models)
    async def fill(
        self,
        interaction: discord.Interaction,
        text: app_commands.Range[str, 1, MAX_TEXT_CHARS],
        top_k: app_commands.Range[int, 1, MAX_TOP_K] = DEFAULT_TOP_K,
        details: bool = False,
        model: str = "",
        private: bool = False,
    ) -> None:
        await self.bot.answer(interaction, "fill", private, text=text, top_k=top_k, details=details, model=model)


async def setup(bot: HFBot) -> None:
    await bot.add_cog(FillMask(bot))
