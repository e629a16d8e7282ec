from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import HFBot, suggest_models
from bot.commands import MAX_TEXT_CHARS, METHODS, MODEL_HELP


class Labeling(commands.Cog):
    def __init__(self, bot: HFBot) -> None:
        self.bot = bot

    @app_commands.command(description="Rank your own labels for a text (zero-shot classification).")
    @app_commands.describe(
        text="The text to label",
        labels="Labels separated by commas, e.g. sports, politics, cooking",
        multi_label="Score each label on its own instead of making them compete",
        method="nli: more accurate; embedding: faster",
        model=MODEL_HELP,
        details="Show what the pipeline did: tokens, logits, softmax, id2label",
        private="Only you see the answer",
    )
    @app_commands.choices(method=[app_commands.Choice(name=method, value=method) for method in METHODS])
    @app_commands.autocomplete(model=suggest_models)
    async def label(
        self,
        interaction: discord.Interaction,
        text: app_commands.Range[str, 1, MAX_TEXT_CHARS],
        labels: app_commands.Range[str, 1, 2000],
        multi_label: bool = False,
        method: str | None = None,
        details: bool = False,
        model: str = "",
        private: bool = False,
    ) -> None:
        await self.bot.answer(
            interaction,
            "label",
            private,
            text=text,
            labels=labels,
            multi_label=multi_label,
            method=method,
            details=details,
            model=model,
        )


async def setup(bot: HFBot) -> None:
    await bot.add_cog(Labeling(bot))
