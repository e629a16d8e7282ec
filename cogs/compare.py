"""/compare: one input through two models of the same task, side by side, with how long each ran."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import HFBot, suggest_models, to_embed
from bot.commands import (
    COMPARED,
    MAX_TEXT_CHARS,
    build_comparison,
    comparison_answers,
    render_comparison,
    submit_comparison,
)


class Compare(commands.Cog):
    def __init__(self, bot: HFBot) -> None:
        self.bot = bot

    @app_commands.command(description="Run one input through two models of the same task and see them side by side.")
    @app_commands.describe(
        task="What the models do",
        text="The text (for generate: the prompt; for fill: a sentence with one [MASK], <mask> or ___)",
        model_a="The first model (empty: the task's default)",
        model_b="The second model (empty: the next one in the list)",
        labels="task: label only: labels separated by commas",
        private="Only you see the answer",
    )
    @app_commands.choices(task=[app_commands.Choice(name=task, value=task) for task in COMPARED])
    @app_commands.autocomplete(model_a=suggest_models, model_b=suggest_models)
    @app_commands.checks.cooldown(3, 30.0, key=lambda i: i.user.id)  # two requests each
    async def compare(
        self,
        interaction: discord.Interaction,
        task: str,
        text: app_commands.Range[str, 1, MAX_TEXT_CHARS],
        model_a: str = "",
        model_b: str = "",
        labels: str | None = None,
        private: bool = False,
    ) -> None:
        # Bad input, a model not in the list and a full queue are refused before deferring: privately.
        requests = build_comparison(self.bot.settings, task, text, model_a, model_b, labels)
        jobs = submit_comparison(
            lambda request: self.bot.submit(request, interaction.user.id, interaction.created_at), requests
        )
        try:
            await interaction.response.defer(thinking=True, ephemeral=private)
            interaction.extras["public"] = not private
            answers = await comparison_answers(requests, jobs)
        finally:
            for job in jobs:
                job.cancel()  # no-op once finished; frees the queue if the answer could not be shown
        await interaction.edit_original_response(content=None, embed=to_embed(render_comparison(task, text, answers)))


async def setup(bot: HFBot) -> None:
    await bot.add_cog(Compare(bot))
