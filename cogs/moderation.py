"""Moderators: guild label sets, the "Tag message" context menu, channel auto-tagging, and
reading, charting and exporting the tags. Storage is `bot.store` (bot/storage.py); wording,
validation and rendering are bot/moderation.py; this cog only speaks Discord."""
from __future__ import annotations

import asyncio
import io
import logging
import time

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import HFBot, to_embed
from bot.commands import Reply, clip
from bot.engine import Busy, EngineError, ZeroShotResult
from bot.engine.errors import InvalidInput
from bot.engine.requests.base import check_choice, check_number
from bot.engine.requests.zero_shot import MAX_LABEL_CHARS, METHODS
from bot.moderation import (AUTOTAG_OFF, PURGE_PROMPT, auto_labels, known_label, label_request, message_text,
                            named, parse_message_ref, render_autotag_log, require_labels, render_labelset, render_purged, render_stats,
                            render_suggestion, render_tagged, render_tags, render_undo, render_watches, stats_chart,
                            tags_csv, validate_description, validate_emoji, validate_label)
from bot.storage import GuildConfig, Tag, TagStore

log = logging.getLogger(__name__)

MODERATOR = discord.Permissions(manage_messages=True)
ADMIN = discord.Permissions(administrator=True)
# default_permissions only hides commands from members (and admins can override it per server);
# these checks are what actually refuses a member without the permission.
moderator_only = app_commands.checks.has_permissions(manage_messages=True)
admin_only = app_commands.checks.has_permissions(administrator=True)
VIEW_TIMEOUT = 14 * 60  # the ephemeral suggestion is edited through a token that lives 15 minutes


async def send(interaction: discord.Interaction, reply: Reply, **kwargs: object) -> None:
    """Every moderation answer is private to the moderator."""
    await interaction.response.send_message(embed=to_embed(reply), ephemeral=True, **kwargs)


class Moderation(commands.Cog):
    labelset = app_commands.Group(name="labelset", description="Moderators: the labels this server tags messages with",
                                  default_permissions=MODERATOR, guild_only=True)
    autotag = app_commands.Group(name="autotag", description="Moderators: tag new messages in chosen channels automatically",
                                 default_permissions=MODERATOR, guild_only=True)
    tags = app_commands.Group(name="tags", description="Moderators: read, chart, export and undo tags",
                              default_permissions=MODERATOR, guild_only=True)
    moderation = app_commands.Group(name="moderation", description="Admins: this server's moderation data",
                                    default_permissions=ADMIN, guild_only=True)

    def __init__(self, bot: HFBot) -> None:
        self.bot = bot
        self.menu = app_commands.ContextMenu(name="Tag message", callback=self.tag_message)

    @property
    def store(self) -> TagStore:
        return self.bot.store

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    @moderator_only  # autocomplete skips the command's checks: label names are for moderators
    async def label_names(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        config = await self.store.config(interaction.guild_id)
        return [app_commands.Choice(name=label.name, value=label.name) for label in config.labels
                if current.casefold() in label.name.casefold()][:25]

    # --- the context menu --------------------------------------------------------------------
    @app_commands.default_permissions(manage_messages=True)
    @app_commands.guild_only()
    @moderator_only
    async def tag_message(self, interaction: discord.Interaction, message: discord.Message) -> None:
        config = await self.store.config(interaction.guild_id)
        request = label_request(message_text(message.content), config)
        # Refused (bad input, busy) before deferring, so the refusal is a private message.
        job = self.bot.engine.submit_job(request, user=str(interaction.user.id), timeout=self.bot.settings.request_timeout)
        try:
            await interaction.response.defer(ephemeral=True, thinking=True)
            result = named(await job.result(), config)
        finally:
            job.cancel()  # no-op once finished; frees the queue slot if we failed early
        view = TagView(self, interaction, message, result, config)
        await interaction.edit_original_response(embed=to_embed(render_suggestion(result)), view=view)

    async def confirm(self, interaction: discord.Interaction, message: discord.Message, result: ZeroShotResult,
                      config: GuildConfig, label: str) -> None:
        await interaction.response.defer()  # acknowledge the click now: the database may wait on a lock
        tag = Tag(interaction.guild_id, message.channel.id, message.id, message.author.id, label,
                  dict(zip(result.labels, result.scores))[label], result.method, interaction.user.id, False, time.time(),
                  message.content if config.store_text else None)
        await self.store.add_tags([tag])  # committed before the moderator is told it is saved
        emoji = getattr(config.label(label), "emoji", None)
        note = await self.react(message, emoji) if emoji else None
        await interaction.edit_original_response(embed=to_embed(render_tagged(tag, note)), view=None)

    @staticmethod
    async def react(message: discord.PartialMessage | discord.Message, emoji: str) -> str | None:
        """React with a label's emoji; a note for the moderator when it can't be done."""
        try:
            await message.add_reaction(emoji)
        except discord.NotFound:
            return "The message has been deleted, so I could not react to it."
        except discord.Forbidden:
            return "I may not add reactions in that channel (Add Reactions, Read Message History)."
        except discord.HTTPException:
            return f"I could not react with {emoji}: is it an emoji I can use? Change it with /labelset add."
        return None

    # --- /labelset ---------------------------------------------------------------------------
    @labelset.command(name="add", description="Add a label, or change a label's emoji or description")
    @app_commands.describe(label=f"Up to {MAX_LABEL_CHARS} characters", emoji="Reacted on a message when this label is confirmed",
                           description="A typical message with this label, or what it means (helps the embedding method)")
    @moderator_only
    async def labelset_add(self, interaction: discord.Interaction, label: app_commands.Range[str, 1, MAX_LABEL_CHARS],
                           emoji: str | None = None, description: app_commands.Range[str, 1, MAX_LABEL_CHARS] | None = None) -> None:
        name = validate_label(label)
        emoji, description = validate_emoji(emoji), validate_description(name, description)
        created = await self.store.add_label(interaction.guild_id, name, emoji, description)
        changed = emoji is not None or description is not None
        title = f"Added “{name}”" if created else f"Updated “{name}”" if changed else f"“{name}” is already in the set"
        await send(interaction, render_labelset(await self.store.config(interaction.guild_id), clip(title, 200)))

    @labelset.command(name="remove", description="Remove a label (tags already given keep it)")
    @app_commands.autocomplete(label=label_names)
    @moderator_only
    async def labelset_remove(self, interaction: discord.Interaction, label: str) -> None:
        name = known_label(await self.store.config(interaction.guild_id), label).name
        await self.store.remove_label(interaction.guild_id, name)
        await send(interaction, render_labelset(await self.store.config(interaction.guild_id), clip(f"Removed “{name}”", 200)))

    @labelset.command(name="list", description="Show this server's labels and settings")
    @moderator_only
    async def labelset_list(self, interaction: discord.Interaction) -> None:
        await send(interaction, render_labelset(await self.store.config(interaction.guild_id)))

    @labelset.command(name="method", description="How messages are labeled")
    @app_commands.describe(method="embedding: fast, one pass per message (default); nli: more accurate, one pass per label")
    @app_commands.choices(method=[app_commands.Choice(name=m, value=m) for m in METHODS])
    @moderator_only
    async def labelset_method(self, interaction: discord.Interaction, method: str) -> None:
        check_choice(method, "method", METHODS)
        config = await self.store.update_settings(interaction.guild_id, method=method)
        await send(interaction, render_labelset(config, f"Method: {method}"))

    @labelset.command(name="threshold", description="The score an auto-tag needs (a channel can set its own)")
    @app_commands.describe(value="From 0 to 1; scores of one message add up to 1")
    @moderator_only
    async def labelset_threshold(self, interaction: discord.Interaction, value: app_commands.Range[float, 0.0, 1.0]) -> None:
        check_number(value, "threshold", 0.0, 1.0)
        config = await self.store.update_settings(interaction.guild_id, threshold=value)
        await send(interaction, render_labelset(config, f"Threshold: {value:.2f}"))

    @labelset.command(name="store_text", description="Keep the text of tagged messages with their tags (off by default)")
    @moderator_only
    async def labelset_store_text(self, interaction: discord.Interaction, enabled: bool) -> None:
        config = await self.store.update_settings(interaction.guild_id, store_text=enabled)
        await send(interaction, render_labelset(config, "Message text will be stored" if enabled else "Message text will not be stored"))

    # --- /autotag ----------------------------------------------------------------------------
    @autotag.command(name="enable", description="Tag new messages in a channel automatically")
    @app_commands.describe(channel="The channel to watch", threshold="Score a tag needs (default: the server's threshold)",
                           log_channel="Post each auto-tag here")
    @moderator_only
    async def autotag_enable(self, interaction: discord.Interaction, channel: discord.TextChannel,
                             threshold: app_commands.Range[float, 0.0, 1.0] | None = None,
                             log_channel: discord.TextChannel | None = None) -> None:
        if not self.bot.settings.autotag:
            raise InvalidInput(AUTOTAG_OFF)
        if threshold is not None:
            check_number(threshold, "threshold", 0.0, 1.0)
        config = await self.store.config(interaction.guild_id)
        require_labels(config)  # refused now rather than silently tagging nothing
        me = interaction.guild.me
        if not channel.permissions_for(me).read_messages:
            raise InvalidInput(f"I can't read {channel.mention}: give me the View Channel permission there first.")
        if log_channel is not None and not (log_channel.permissions_for(me).send_messages and log_channel.permissions_for(me).embed_links):
            raise InvalidInput(f"I can't post in {log_channel.mention}: give me Send Messages and Embed Links there first.")
        await self.store.watch(interaction.guild_id, channel.id, threshold, log_channel.id if log_channel else None)
        await send(interaction, render_watches(await self.store.watches(interaction.guild_id), config, enabled=True))

    @autotag.command(name="disable", description="Stop tagging a channel automatically")
    @moderator_only
    async def autotag_disable(self, interaction: discord.Interaction, channel: discord.TextChannel) -> None:
        if not await self.store.unwatch(interaction.guild_id, channel.id):
            raise InvalidInput(f"{channel.mention} is not auto-tagged.")
        config = await self.store.config(interaction.guild_id)
        await send(interaction, render_watches(await self.store.watches(interaction.guild_id), config, self.bot.settings.autotag))

    @autotag.command(name="list", description="Channels that are auto-tagged")
    @moderator_only
    async def autotag_list(self, interaction: discord.Interaction) -> None:
        config = await self.store.config(interaction.guild_id)
        await send(interaction, render_watches(await self.store.watches(interaction.guild_id), config, self.bot.settings.autotag))

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if (not self.bot.settings.autotag or message.guild is None or message.author.bot or message.webhook_id is not None
                or message.type not in (discord.MessageType.default, discord.MessageType.reply) or not message.content.strip()):
            return  # bots, webhooks, joins and pins, image-only messages: nothing to tag
        watch = await self.store.watch_of(message.guild.id, message.channel.id)
        if watch is None:
            return
        config = await self.store.config(message.guild.id)
        if not config.labels:
            return
        try:
            # The low-priority lane, one queue per guild: people's commands are always served first.
            result = named(await self.bot.engine.submit(label_request(message_text(message.content), config),
                                                        user=f"guild:{message.guild.id}", background=True), config)
        except Busy:
            return  # the backlog is full: this message is skipped (counted as "background full" in /status)
        except EngineError as error:
            log.warning("Auto-tagging message %s failed: %s", message.id, error)
            return
        threshold = config.threshold if watch.threshold is None else watch.threshold
        tags = [Tag(message.guild.id, message.channel.id, message.id, message.author.id, label, score, result.method,
                    self.bot.user.id, True, time.time(), message.content if config.store_text else None)
                for label, score in auto_labels(result, threshold)]
        if not tags:
            return
        try:
            await self.store.add_tags(tags)  # committed before it is announced anywhere
        except Exception:
            log.exception("Could not store the auto-tags of message %s", message.id)
            return
        log_channel = message.guild.get_channel(watch.log_channel_id) if watch.log_channel_id else None
        if isinstance(log_channel, discord.TextChannel):
            try:
                await log_channel.send(embed=to_embed(render_autotag_log(tags)))
            except discord.HTTPException as error:
                log.warning("Could not post to the auto-tag log channel %s: %s", log_channel.id, error)

    # --- /tags -------------------------------------------------------------------------------
    @tags.command(name="recent", description="The latest tags")
    @app_commands.describe(channel="Only tags of this channel", label="Only this label", limit="How many")
    @app_commands.autocomplete(label=label_names)
    @moderator_only
    async def tags_recent(self, interaction: discord.Interaction, channel: discord.TextChannel | None = None,
                          label: str | None = None, limit: app_commands.Range[int, 1, 25] = 10) -> None:
        check_number(limit, "limit", 1, 25, integer=True)
        found = await self.store.recent(interaction.guild_id, channel_id=channel.id if channel else None, label=label, limit=limit)
        if label and not found:
            known_label(await self.store.config(interaction.guild_id), label)  # a typo gets "no such label"
        await send(interaction, render_tags(found))

    @tags.command(name="stats", description="Tags per label over a period, as a bar chart")
    @app_commands.describe(days="How many days back")
    @moderator_only
    async def tags_stats(self, interaction: discord.Interaction, days: app_commands.Range[int, 1, 3650] = 30) -> None:
        check_number(days, "days", 1, 3650, integer=True)
        counts = await self.store.label_counts(interaction.guild_id, since=time.time() - days * 86400)
        if not counts:
            await send(interaction, render_stats(counts, days))
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        png = await asyncio.to_thread(stats_chart, counts, days)  # matplotlib is CPU work: off the event loop
        embed = to_embed(render_stats(counts, days)).set_image(url="attachment://tag-stats.png")
        await interaction.edit_original_response(embed=embed, attachments=[discord.File(io.BytesIO(png), "tag-stats.png")])

    @tags.command(name="export", description="Download this server's tags as a CSV file")
    @app_commands.describe(days="Only the last days (default: everything)")
    @moderator_only
    async def tags_export(self, interaction: discord.Interaction, days: app_commands.Range[int, 1, 3650] | None = None) -> None:
        if days is not None:
            check_number(days, "days", 1, 3650, integer=True)
        found = await self.store.tags(interaction.guild_id, since=None if days is None else time.time() - days * 86400)
        data = tags_csv(found)
        if len(data) > interaction.filesize_limit:
            raise InvalidInput(f"The export is {len(data) / 1e6:.1f} MB, over Discord's {interaction.filesize_limit / 1e6:.0f} MB "
                               "limit. Export a shorter period with days:.")
        reply = Reply("Tags export", [f"{len(found)} tags" + ("" if days is None else f" from the last {days} days") + "."], tone="info")
        await send(interaction, reply, file=discord.File(io.BytesIO(data), f"tags-{interaction.guild_id}.csv"))

    @tags.command(name="undo", description="Remove the tags of a message")
    @app_commands.describe(message="The message id or link")
    @moderator_only
    async def tags_undo(self, interaction: discord.Interaction, message: str) -> None:
        message_id = parse_message_ref(message, interaction.guild_id)
        removed = await self.store.remove_tags(interaction.guild_id, message_id)
        await send(interaction, render_undo(removed, message_id))
        # Take back the reactions confirmed tags added; best effort (the message may be gone).
        config = await self.store.config(interaction.guild_id)
        for tag in removed:
            label, channel = config.label(tag.label), interaction.guild.get_channel(tag.channel_id)
            if label and label.emoji and not tag.auto and isinstance(channel, discord.TextChannel):
                try:
                    await channel.get_partial_message(message_id).remove_reaction(label.emoji, interaction.guild.me)
                except discord.HTTPException:
                    pass

    # --- a guild's data as a whole -------------------------------------------------------------
    @moderation.command(name="purge", description="Delete every tag, label and setting of this server")
    @admin_only
    async def moderation_purge(self, interaction: discord.Interaction) -> None:
        await send(interaction, PURGE_PROMPT, view=PurgeView(self, interaction.user.id))

    @commands.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        deleted = await self.store.purge(guild.id)  # the bot was removed: keep nothing of that server
        log.info("Left guild %s; deleted its moderation data %s", guild.id, deleted)

    @commands.Cog.listener()
    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        await self.store.unwatch(channel.guild.id, channel.id)


class ModerationView(discord.ui.View):
    """Errors in a button or select get the same friendly messages as commands."""

    def __init__(self, cog: Moderation, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.cog = cog

    async def on_error(self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item) -> None:
        await self.cog.bot.on_app_command_error(interaction, error)  # type: ignore[arg-type]


class TagView(ModerationView):
    """Under a suggestion: confirm the top label, pick another, or none. Until confirmed nothing is stored."""

    def __init__(self, cog: Moderation, source: discord.Interaction, message: discord.Message, result: ZeroShotResult,
                 config: GuildConfig) -> None:
        super().__init__(cog, VIEW_TIMEOUT)
        self.source, self.message, self.result, self.config = source, message, result, config
        self.confirm_top.label = clip(f"Tag as {result.labels[0]}", 80)
        self.pick.options = [discord.SelectOption(label=label, value=label, description=f"score {score:.2f}")
                             for label, score in zip(result.labels, result.scores)]

    @discord.ui.button(label="Tag", style=discord.ButtonStyle.success, custom_id="tag:top", row=0)
    async def confirm_top(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await self.confirm(interaction, self.result.labels[0])

    @discord.ui.button(label="None of these", style=discord.ButtonStyle.secondary, custom_id="tag:none", row=0)
    async def none(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.stop()
        await interaction.response.edit_message(embed=to_embed(Reply("Not tagged", ["Nothing was stored."], tone="info")), view=None)

    @discord.ui.select(placeholder="Or pick another label", custom_id="tag:pick", row=1)
    async def pick(self, interaction: discord.Interaction, select: discord.ui.Select) -> None:
        await self.confirm(interaction, select.values[0])

    async def confirm(self, interaction: discord.Interaction, label: str) -> None:
        await self.cog.confirm(interaction, self.message, self.result, self.config, label)
        self.stop()  # only once saved: if the database was busy, the moderator can pick again

    async def on_timeout(self) -> None:
        try:
            await self.source.edit_original_response(view=None)
        except discord.HTTPException:
            pass


class PurgeView(ModerationView):
    def __init__(self, cog: Moderation, admin_id: int) -> None:
        super().__init__(cog, 120)
        self.admin_id = admin_id

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return interaction.user.id == self.admin_id

    @discord.ui.button(label="Delete everything", style=discord.ButtonStyle.danger, custom_id="purge:confirm")
    async def purge(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.defer()
        deleted = await self.cog.store.purge(interaction.guild_id)
        self.stop()
        await interaction.edit_original_response(embed=to_embed(render_purged(deleted)), view=None)

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary, custom_id="purge:cancel")
    async def cancel(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.stop()
        await interaction.response.edit_message(embed=to_embed(Reply("Nothing deleted", ["The purge was cancelled."], tone="info")),
                                                view=None)


async def setup(bot: HFBot) -> None:
    await bot.add_cog(Moderation(bot))
