"""Learned labels in the background: after a moderator's answer or a label-set change (the
`examples_changed` event of bot/moderation_ui.py), a server's head is retrained in the background
lane when due (bot/learning.py), at most one training per server at a time. Each retraining derives
the calibrated policies' thresholds again from the new examples, and tells the auto-tag log channels
when one moved notably or was paused (bot/policies.py)."""

from __future__ import annotations

import asyncio
import logging

import discord
from discord.ext import commands

from bot.client import HFBot
from bot.engine import EngineError
from bot.learning import due, keep, prepare, recalibrate
from bot.moderation_log import post
from bot.moderation_ui import ModerationCog
from bot.policies import notable, render_recalibrated
from bot.storage import EVERY_CHANNEL, Policy, StoreBusy

log = logging.getLogger(__name__)


class LearnedLabels(ModerationCog):
    def __init__(self, bot: HFBot) -> None:
        super().__init__(bot)
        self.trainings: dict[int, asyncio.Task] = {}  # guild -> its background retraining, at most one each
        self.changed: set[int] = set()  # guilds whose examples changed while their training ran: check again after

    async def cog_unload(self) -> None:
        for task in self.trainings.values():
            task.cancel()

    @commands.Cog.listener()
    async def on_examples_changed(self, guild_id: int) -> None:
        running = self.trainings.get(guild_id)
        if running is None or running.done():
            self.trainings[guild_id] = asyncio.create_task(self._train_while_changed(guild_id))
        else:  # a training that read the examples before this change: not lost, checked when it ends
            self.changed.add(guild_id)

    async def _train_while_changed(self, guild_id: int) -> None:
        await self._train_if_due(guild_id)
        while guild_id in self.changed:
            self.changed.discard(guild_id)
            await self._train_if_due(guild_id)

    async def _train_if_due(self, guild_id: int) -> None:
        store, settings = self.store, self.bot.settings
        try:
            if await due(store, guild_id, settings):
                training = await prepare(store, guild_id, settings.min_examples)
                trained = await self.bot.engine.submit(training.request, user=f"guild:{guild_id}", background=True)
                await keep(store, training, trained)
                changed = await recalibrate(
                    self.bot.engine, store, self.bot.store.policies, guild_id, settings.min_examples
                )
                await self.tell(guild_id, [change for change in changed if notable(*change)])
        except (EngineError, StoreBusy) as error:  # the examples are safe in the database: the next answer retries
            log.warning("Background retraining for guild %s did not finish: %s", guild_id, error)
        except Exception:
            log.exception("Background retraining for guild %s failed", guild_id)

    async def tell(self, guild_id: int, changes: list[tuple[Policy, Policy]]) -> None:
        """Each auto-tag log channel gets the notable recalibrations of the policies that act in its channels."""
        guild = self.bot.get_guild(guild_id)
        if guild is None or not changes:
            return
        watches = await self.store.watches(guild_id)
        for log_id in sorted({w.log_channel_id for w in watches if w.log_channel_id}):
            logged = {EVERY_CHANNEL} | {w.channel_id for w in watches if w.log_channel_id == log_id}
            mine = [(before, after) for before, after in changes if after.channel_id in logged]
            if mine:
                await post(guild.get_channel(log_id), render_recalibrated(mine), discord.ui.View())


async def setup(bot: HFBot) -> None:
    await bot.add_cog(LearnedLabels(bot))
