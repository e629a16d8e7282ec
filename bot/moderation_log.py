"""The auto-tag log channel's entries: posting one, and the actions under every entry, Delete message and
Timeout author (with the reason in the audit log). Auto-tags (cogs/autotag.py) and reviews (cogs/reviews.py)
are posted through here; cogs/autotag.py registers the two actions. Not under cogs/: this is no extension."""

from __future__ import annotations

import logging
import re
from collections.abc import Collection

import discord

from .client import HFBot
from .embeds import to_embed
from .engine.errors import InvalidInput
from .moderation import TIMEOUTS, audit_reason, duration_name, timeout_duration
from .moderation_ui import ModerationItem, Target, template
from .policies import render_summary
from .reply import Reply

log = logging.getLogger(__name__)


async def post(channel: discord.abc.GuildChannel | None, entry: Reply, view: discord.ui.View) -> None:
    """Post an entry to the log channel, if there is one; the entry is already stored, so a failure is logged."""
    if isinstance(channel, discord.TextChannel):
        try:
            await channel.send(embed=to_embed(entry), view=view)
        except discord.HTTPException as error:
            log.warning("Could not post to the auto-tag log channel %s: %s", channel.id, error)


def admit(bot: HFBot, guild: discord.Guild, channel_id: int, what: str) -> bool:
    """Whether a log entry about watched channel `channel_id` may be posted now (bot.log_limiter); when it is
    held back in a raid, the `log_entries_held` event starts the summary's timer (cogs/autotag.py)."""
    if bot.log_limiter.admit(channel_id, what):
        return True
    bot.dispatch("log_entries_held", guild, channel_id)
    return False


async def post_summaries(bot: HFBot, guild: discord.Guild, channels: Collection[int]) -> None:
    """The summaries of the entries held back in these watched channels of `guild` whose raid window is over
    (bot.log_limiter), each to its channel's log, once."""
    for channel_id, held in bot.log_limiter.due(channels):
        watch = await bot.store.moderation.watch_of(guild.id, channel_id)
        await post(
            guild.get_channel(watch.log_channel_id) if watch and watch.log_channel_id else None,
            render_summary(channel_id, held),
            discord.ui.View(),
        )


def watched_channel_id(channel: discord.abc.Messageable) -> int:
    """The watched channel a message's channel belongs to: a thread's parent, else the channel."""
    return channel.parent_id if isinstance(channel, discord.Thread) else channel.id


def log_view(target: Target, *above: discord.ui.Item) -> discord.ui.View:
    """Under a log entry: the `above` items (a review's answers, rows 0 and 1), then Delete message and Timeout
    author."""
    view = discord.ui.View(timeout=None)
    for item in above:
        view.add_item(item)
    row = 2 if above else 0
    view.add_item(DeleteButton(target, row=row))
    view.add_item(TimeoutMenu(target, row=row + 1))
    return view


class DeleteButton(ModerationItem, discord.ui.DynamicItem[discord.ui.Button], template=template("delete")):
    answers_privately = True

    def __init__(self, target: Target, *, row: int | None = None) -> None:
        button = discord.ui.Button(
            label="Delete message", style=discord.ButtonStyle.danger, custom_id=target.custom_id("delete")
        )
        super().__init__(button, row=row)
        self.target = target

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str]
    ) -> DeleteButton:
        return cls(Target.of(match))

    async def act(self, interaction: discord.Interaction) -> None:
        target = self.target
        channel = interaction.guild.get_channel_or_thread(target.channel_id)
        if channel is None:
            raise InvalidInput("That channel no longer exists, and its messages with it.")
        if not channel.permissions_for(interaction.guild.me).manage_messages:
            raise InvalidInput(f"I need the Manage Messages permission in <#{channel.id}> to delete messages there.")
        reason = audit_reason(f"{interaction.user} ({interaction.user.id})", "Deleted", f"message {target.message_id}")
        try:
            await interaction.client.http.delete_message(channel.id, target.message_id, reason=reason)
        except discord.NotFound:
            raise InvalidInput("That message was already deleted.") from None
        except discord.Forbidden:
            raise InvalidInput(f"Discord refused: I may not delete that message in <#{channel.id}>.") from None
        reply = Reply("Message deleted", [f"Deleted message {target.message_id}; the reason is in the audit log."])
        await interaction.edit_original_response(embed=to_embed(reply))


class TimeoutMenu(ModerationItem, discord.ui.DynamicItem[discord.ui.Select], template=template("timeout")):
    permission = "moderate_members"
    answers_privately = True

    def __init__(self, target: Target, *, row: int | None = None) -> None:
        durations = [discord.SelectOption(label=name, value=str(seconds)) for name, seconds in TIMEOUTS.items()]
        menu = discord.ui.Select(
            placeholder="Timeout author…", options=durations, custom_id=target.custom_id("timeout")
        )
        super().__init__(menu, row=row)
        self.target = target

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Select, match: re.Match[str]
    ) -> TimeoutMenu:
        return cls(Target.of(match))

    async def act(self, interaction: discord.Interaction) -> None:
        target = self.target
        duration = timeout_duration(self.item.values[0] if self.item.values else "")
        guild = interaction.guild
        if not guild.me.guild_permissions.moderate_members:
            raise InvalidInput("I need the Moderate Members permission to time members out.")
        try:
            member = await guild.fetch_member(target.author_id)
        except discord.NotFound:
            raise InvalidInput(f"<@{target.author_id}> is no longer a member of this server.") from None
        moderator = interaction.user
        if member.id == guild.owner_id or (moderator.id != guild.owner_id and member.top_role >= moderator.top_role):
            raise InvalidInput(f"You can't time out <@{member.id}>: their highest role is not below yours.")
        reason = audit_reason(
            f"{moderator} ({moderator.id})", f"Timed out for {duration_name(duration)}", f"message {target.message_id}"
        )
        try:
            await member.timeout(duration, reason=reason)
        except discord.Forbidden:
            raise InvalidInput(
                f"Discord refused to time out <@{member.id}>: their role is above mine, or they are an admin."
            ) from None
        reply = Reply(
            "Member timed out",
            [f"<@{member.id}> is timed out for {duration_name(duration)}; the reason is in the audit log."],
        )
        await interaction.edit_original_response(embed=to_embed(reply))
