"""/compare: one input through two models of the same task, side by side (bot/compare.py)."""

from __future__ import annotations

from typing import Any

import discord

from bot.answers import EditScreen, deferred
from bot.compare import COOLDOWN, DESCRIPTION, build_comparison, comparison_answers, options, render_comparison
from bot.embeds import to_embed
from bot.slash import TaskCog, build


async def compare(cog: Compare, interaction: discord.Interaction, private: bool = False, **given: Any) -> None:
    bot = cog.bot
    # Bad input, a model not in the list and a full queue are refused before deferring: privately.
    requests = build_comparison(bot.settings, **{name: value for name, value in given.items() if value is not None})
    answering = await deferred(bot, interaction, list(requests), private)
    screen = EditScreen(interaction.edit_original_response, None, 0)
    answers = await comparison_answers(answering, screen, bot.queue_interval)
    reply = render_comparison(given["task"], given["text"], answers)
    await interaction.edit_original_response(content=None, embed=to_embed(reply))


class Compare(TaskCog):
    compare = build("compare", DESCRIPTION, options(), compare, COOLDOWN)


setup = Compare.setup
