"""The "Help me learn" questions: among the auto-tagged channels' messages that no label reached the threshold
for and that the review queue does not take, the bot asks its moderators about those it is least sure of
(bot/asking.py), in the review queue with its answers (cogs/reviews.py). At most ASK_PER_DAY a server in any
24 hours, never about the same author twice in a row, never where its moderators turned it off (/learn ask)."""

from __future__ import annotations

import logging
import time

import discord
from discord.ext import commands

from bot.asking import render_learning, unsure
from bot.client import HFBot
from bot.moderation import in_review_queue
from bot.moderation_ui import ModerationCog, embedding_model, moderator_group, moderator_only, send
from bot.specs.learned_labels import LabelMessageResult
from bot.storage import DAY, GuildConfig

log = logging.getLogger(__name__)


class Asking(ModerationCog):
    learn = moderator_group("learn", "Moderators: what the bot has learned, and its questions")

    def __init__(self, bot: HFBot) -> None:
        super().__init__(bot)
        self.clock = time.time  # what "a day" is measured by; tests move it

    async def show_learning(self, interaction: discord.Interaction) -> None:
        guild_id, settings = interaction.guild_id, self.bot.settings
        reply = render_learning(
            await self.store.config(guild_id),
            await self.store.example_counts(guild_id),
            await self.store.label_model(guild_id),
            embedding_model(self.bot),
            settings.min_examples,
            await self.store.asked_since(guild_id, self.clock() - DAY),
            settings.ask_per_day,
        )
        await send(interaction, reply)

    @learn.command(name="status", description="Examples per label, what is learned, and the bot's questions")
    @moderator_only
    async def learn_status(self, interaction: discord.Interaction) -> None:
        await self.show_learning(interaction)

    @learn.command(name="ask", description="Let the bot ask about the messages it is least sure of (Help me learn)")
    @moderator_only
    async def learn_ask(self, interaction: discord.Interaction, enabled: bool) -> None:
        await self.store.update_settings(interaction.guild_id, ask=enabled)
        await self.show_learning(interaction)

    @commands.Cog.listener()
    async def on_autotag_unsure(
        self,
        message: discord.Message,
        result: LabelMessageResult,
        config: GuildConfig,
        log_channel: discord.abc.GuildChannel | None,
    ) -> None:
        if (
            not config.ask
            or self.bot.settings.ask_per_day == 0
            or in_review_queue(result, config)  # asked already, without counting against the day's questions
            or not isinstance(log_channel, discord.TextChannel)
        ):
            return
        why = unsure(result)
        if why is None:
            return
        try:
            asked = await self.store.claim_ask(
                message.guild.id, message.id, message.author.id, self.clock(), self.bot.settings.ask_per_day
            )
        except Exception:
            log.exception("Could not count the question about message %s", message.id)
            return
        if asked:
            self.bot.dispatch("review_wanted", message, result, config, log_channel, why)


async def setup(bot: HFBot) -> None:
    await bot.add_cog(Asking(bot))
