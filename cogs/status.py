from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import HFBot
from bot.commands import render_status
from bot.embeds import to_embed
from bot.permissions import channel_report


async def is_owner(interaction: discord.Interaction) -> bool:
    return await interaction.client.is_owner(interaction.user)


class Status(commands.Cog):
    def __init__(self, bot: HFBot) -> None:
        self.bot = bot

    @app_commands.command(description="Device, loaded models, queue and latency of the bot's model worker.")
    @app_commands.describe(private="Only you see the answer")
    async def status(self, interaction: discord.Interaction, private: bool = False) -> None:
        reply = render_status(self.bot.engine.status(), self.bot.settings)
        if interaction.guild is not None and interaction.permissions.manage_messages:  # moderators: what to fix here
            reply.fields.append(("My permissions in this channel", channel_report(interaction.app_permissions)))
        await interaction.response.send_message(embed=to_embed(reply), ephemeral=private)

    @app_commands.command(description="Owner only: publish the slash commands to Discord.")
    @app_commands.check(is_owner)
    async def sync(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        synced = await self.bot.tree.sync()
        await interaction.followup.send(
            f"Synced {len(synced)} commands globally (Discord may take up to an hour to show them).", ephemeral=True
        )


async def setup(bot: HFBot) -> None:
    await bot.add_cog(Status(bot))
