"""Auto-tagging: /autotag picks the channels (threads included) whose new messages are labelled in the
engine's background lane; labels at or above the threshold are stored as tags and posted to the channel's
log, with Delete message and Timeout author under each entry (bot/moderation_log.py). Messages no label
reached the threshold for go on to the review queue (cogs/reviews.py) as the `autotag_unsure` event; every
scored message goes to the calibrated policies (cogs/policies.py) as the `autotag_scored` event."""

from __future__ import annotations

import asyncio
import logging
import time

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import HFBot
from bot.engine import Busy, EngineError
from bot.engine.errors import InvalidInput
from bot.engine.request import check_number
from bot.moderation import AUTOTAG_OFF, auto_labels, message_text, render_autotag_log, render_watches, require_labels
from bot.moderation_log import DeleteButton, TimeoutMenu, admit, log_view, post, post_summaries, watched_channel_id
from bot.moderation_ui import ModerationCog, Target, label_message, moderator_group, moderator_only, send
from bot.storage import StoreBusy, Tag

log = logging.getLogger(__name__)


class AutoTag(ModerationCog):
    autotag = moderator_group("autotag", "Moderators: tag new messages in chosen channels automatically")

    def __init__(self, bot: HFBot) -> None:
        super().__init__(bot)
        self.summaries: dict[int, asyncio.Task] = {}  # watched channel -> the timer of its raid summary, one each

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(DeleteButton, TimeoutMenu)  # under every log entry, also after a restart

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(DeleteButton, TimeoutMenu)
        for task in self.summaries.values():
            task.cancel()

    @commands.Cog.listener()
    async def on_log_entries_held(self, guild: discord.Guild, channel_id: int) -> None:
        """A raid held back a log entry (bot/moderation_log.py admit): its summary is posted when the window
        ends, even if the channel then goes quiet."""
        running = self.summaries.get(channel_id)
        if running is None or running.done():
            self.summaries[channel_id] = asyncio.create_task(
                self._summarize_when_over(guild, channel_id), name=f"raid-summary-{channel_id}"
            )

    async def _summarize_when_over(self, guild: discord.Guild, channel_id: int) -> None:
        limiter = self.bot.log_limiter
        try:
            while (left := limiter.ends_in(channel_id)) > 0:
                await limiter.sleep(left)
            await post_summaries(self.bot, guild, [channel_id])
        except Exception:  # a task's error would be lost: log it
            log.exception("Could not post the raid summary of channel %s", channel_id)

    async def show_watches(self, interaction: discord.Interaction) -> None:
        config = await self.store.config(interaction.guild_id)
        watches = await self.store.watches(interaction.guild_id)
        await send(interaction, render_watches(watches, config, self.bot.settings.autotag))

    @autotag.command(name="enable", description="Tag new messages in a channel automatically")
    @app_commands.describe(
        channel="The channel to watch",
        threshold="Score a tag needs (default: the server's threshold)",
        log_channel="Post each auto-tag here",
    )
    @moderator_only
    async def autotag_enable(
        self,
        interaction: discord.Interaction,
        channel: discord.TextChannel,
        threshold: app_commands.Range[float, 0.0, 1.0] | None = None,
        log_channel: discord.TextChannel | None = None,
    ) -> None:
        if not self.bot.settings.autotag:
            raise InvalidInput(AUTOTAG_OFF)
        if threshold is not None:
            check_number(threshold, "threshold", 0.0, 1.0)
        require_labels(
            await self.store.config(interaction.guild_id)
        )  # refused now rather than silently tagging nothing
        me = interaction.guild.me
        if not channel.permissions_for(me).read_messages:
            raise InvalidInput(f"I can't read {channel.mention}: give me the View Channel permission there first.")
        if log_channel is not None and not (
            log_channel.permissions_for(me).send_messages and log_channel.permissions_for(me).embed_links
        ):
            raise InvalidInput(
                f"I can't post in {log_channel.mention}: give me Send Messages and Embed Links there first."
            )
        await self.store.watch(interaction.guild_id, channel.id, threshold, log_channel.id if log_channel else None)
        await self.show_watches(interaction)

    @autotag.command(name="disable", description="Stop tagging a channel automatically")
    @moderator_only
    async def autotag_disable(self, interaction: discord.Interaction, channel: discord.TextChannel) -> None:
        if not await self.store.unwatch(interaction.guild_id, channel.id):
            raise InvalidInput(f"{channel.mention} is not auto-tagged.")
        await self.show_watches(interaction)

    @autotag.command(name="list", description="Channels that are auto-tagged")
    @moderator_only
    async def autotag_list(self, interaction: discord.Interaction) -> None:
        await self.show_watches(interaction)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if (
            not self.bot.settings.autotag
            or message.guild is None
            or message.author.bot
            or message.webhook_id is not None
            or message.type not in (discord.MessageType.default, discord.MessageType.reply)
            or not message.content.strip()
        ):
            return  # bots, webhooks, joins and pins, image-only messages: nothing to tag
        # A thread is watched when its channel is: the parent's settings apply.
        watch = await self.store.watch_of(message.guild.id, watched_channel_id(message.channel))
        if watch is None:
            return
        config = await self.store.config(message.guild.id)
        if not config.labels:
            return
        try:
            # The low-priority lane, one queue per guild: people's commands are always served first.
            result = await label_message(
                self.bot,
                message_text(message.content),
                message.guild.id,
                config,
                user=f"guild:{message.guild.id}",
                background=True,
            )
        except Busy:
            return  # the backlog is full: this message is skipped (counted as "background full" in /status)
        except EngineError as error:
            log.warning("Auto-tagging message %s failed: %s", message.id, error)
            return
        threshold = config.threshold if watch.threshold is None else watch.threshold
        log_channel = message.guild.get_channel(watch.log_channel_id) if watch.log_channel_id else None
        # A raid's summary whose minute is over goes out before anything new (if its timer has not run yet).
        await post_summaries(self.bot, message.guild, [watch.channel_id])
        self.bot.dispatch("autotag_scored", message, result, watch, log_channel)  # calibrated policies
        text = message.content if config.store_text else None
        tags = [
            Tag(
                message.guild.id,
                message.channel.id,
                message.id,
                message.author.id,
                label,
                score,
                method,
                self.bot.user.id,
                True,
                time.time(),
                text,
            )
            for label, score, method in auto_labels(result, threshold)
        ]
        if not tags:
            self.bot.dispatch("autotag_unsure", message, result, config, log_channel)
            return
        try:  # committed before it is announced anywhere
            await self.store.add_tags(tags)
        except StoreBusy:  # locked past the busy timeout: skipped like a full backlog, nothing announced
            log.warning("Message %s was not auto-tagged: the database was busy", message.id)
            return
        except Exception:
            log.exception("Could not store the auto-tags of message %s", message.id)
            return
        target = Target(message.channel.id, message.id, message.author.id)
        if admit(self.bot, message.guild, watch.channel_id, "auto-tags"):
            await post(log_channel, render_autotag_log(tags, message.content), log_view(target))

    @commands.Cog.listener()
    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        await self.store.unwatch(channel.guild.id, channel.id)


async def setup(bot: HFBot) -> None:
    await bot.add_cog(AutoTag(bot))
