"""Reading the tags (/tags recent, stats as a bar chart, export as CSV, JSON Lines or Parquet, undo) and a server's data
as a whole: /moderation purge for its admins, and everything deleted when the bot leaves the server."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import time

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import HFBot
from bot.embeds import to_embed
from bot.engine.errors import InvalidInput
from bot.engine.request import check_number
from bot.moderation import (
    EXPORT_FORMATS,
    PURGE_PROMPT,
    dataset_rows,
    known_label,
    parse_message_ref,
    render_purged,
    render_stats,
    render_tags,
    render_undo,
    stats_chart,
    tags_csv,
    tags_jsonl,
    tags_parquet,
)
from bot.moderation_ui import ADMIN, ModerationCog, admin_only, label_names, moderator_group, moderator_only, send
from bot.reply import Reply

log = logging.getLogger(__name__)


class Tags(ModerationCog):
    tags = moderator_group("tags", "Moderators: read, chart, export and undo tags")
    moderation = app_commands.Group(
        name="moderation",
        description="Admins: this server's moderation data",
        default_permissions=ADMIN,
        guild_only=True,
    )

    @tags.command(name="recent", description="The latest tags")
    @app_commands.describe(channel="Only tags of this channel", label="Only this label", limit="How many")
    @app_commands.autocomplete(label=label_names)
    @moderator_only
    async def tags_recent(
        self,
        interaction: discord.Interaction,
        channel: discord.TextChannel | None = None,
        label: str | None = None,
        limit: app_commands.Range[int, 1, 25] = 10,
    ) -> None:
        check_number(limit, "limit", 1, 25, integer=True)
        found = await self.store.recent(
            interaction.guild_id, channel_id=channel.id if channel else None, label=label, limit=limit
        )
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
        await interaction.edit_original_response(
            embed=embed, attachments=[discord.File(io.BytesIO(png), "tag-stats.png")]
        )

    @tags.command(name="export", description="Download this server's tags as CSV, JSON Lines or Parquet")
    @app_commands.describe(days="Only the last days (default: everything)", format="The file's format (default: CSV)")
    @app_commands.choices(format=[app_commands.Choice(name=name, value=key) for key, name in EXPORT_FORMATS.items()])
    @moderator_only
    async def tags_export(
        self,
        interaction: discord.Interaction,
        days: app_commands.Range[int, 1, 3650] | None = None,
        format: str = "csv",
    ) -> None:
        if days is not None:
            check_number(days, "days", 1, 3650, integer=True)
        if format not in EXPORT_FORMATS:
            raise InvalidInput(f"Pick a format from the list: {', '.join(EXPORT_FORMATS)}.")
        found = await self.store.tags_with_models(
            interaction.guild_id, since=None if days is None else time.time() - days * 86400
        )
        if not (await self.store.config(interaction.guild_id)).store_text:
            # Texts kept while store_text was on leave the server only while it is on.
            found = [(dataclasses.replace(tag, text=None), model) for tag, model in found]
        if format == "csv":
            data = tags_csv([tag for tag, _ in found])
        elif format == "jsonl":
            data = tags_jsonl(dataset_rows(found))
        else:  # pyarrow's writer is CPU work: off the event loop
            data = await asyncio.to_thread(tags_parquet, dataset_rows(found))
        if len(data) > interaction.filesize_limit:
            raise InvalidInput(
                f"The export is {len(data) / 1e6:.1f} MB, over Discord's {interaction.filesize_limit / 1e6:.0f} MB "
                "limit. Export a shorter period with days:."
            )
        reply = Reply(
            "Tags export",
            [f"{len(found)} tags" + ("" if days is None else f" from the last {days} days") + "."],
            tone="info",
        )
        await send(interaction, reply, file=discord.File(io.BytesIO(data), f"tags-{interaction.guild_id}.{format}"))

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
            label, channel = config.label(tag.label), interaction.guild.get_channel_or_thread(tag.channel_id)
            if label and label.emoji and not tag.auto and isinstance(channel, (discord.TextChannel, discord.Thread)):
                try:
                    await channel.get_partial_message(message_id).remove_reaction(label.emoji, interaction.guild.me)
                except discord.HTTPException:
                    pass

    # --- a guild's data as a whole -------------------------------------------------------------
    @moderation.command(name="purge", description="Delete every tag, label and setting of this server")
    @admin_only
    async def moderation_purge(self, interaction: discord.Interaction) -> None:
        await send(interaction, PURGE_PROMPT, view=PurgeView(self.bot, interaction.user.id))

    @commands.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        deleted = await self.bot.store.purge(guild.id)  # the bot was removed: keep nothing of that server
        log.info("Left guild %s; deleted its moderation data %s", guild.id, deleted)


class PurgeView(discord.ui.View):
    def __init__(self, bot: HFBot, admin_id: int) -> None:
        super().__init__(timeout=120)
        self.bot, self.admin_id = bot, admin_id

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return interaction.user.id == self.admin_id

    async def on_error(self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item) -> None:
        await self.bot.on_app_command_error(interaction, error)  # type: ignore[arg-type]

    @discord.ui.button(label="Delete everything", style=discord.ButtonStyle.danger, custom_id="purge:confirm")
    async def purge(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.defer()
        deleted = await self.bot.store.purge(interaction.guild_id)
        self.stop()
        await interaction.edit_original_response(embed=to_embed(render_purged(deleted)), view=None)

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary, custom_id="purge:cancel")
    async def cancel(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.stop()
        await interaction.response.edit_message(
            embed=to_embed(Reply("Nothing deleted", ["The purge was cancelled."], tone="info")), view=None
        )


async def setup(bot: HFBot) -> None:
    await bot.add_cog(Tags(bot))
