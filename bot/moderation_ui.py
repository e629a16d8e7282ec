"""What the moderation cogs (cogs/labelsets.py, tagging.py, autotag.py, reviews.py, learning.py, tags.py)
share on the Discord side: permission checks, private answers, the one "submit → defer → result → edit"
sequence, labelling a message with the server's labels, and the base of every moderation button and menu.

Buttons and menus are `DynamicItem`s (discord.py's examples/views/dynamic_counter.py): what they act on
(channel, message, author, label) is in their custom_id, `mod:ACTION:channel:message:author[:key]`, and the
rest is read back from SQLite, so they keep working after a restart. Not under cogs/: this is no extension.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import discord
from discord import app_commands
from discord.ext import commands

from .answers import EditScreen, deferred
from .client import HFBot
from .embeds import to_embed
from .engine.request import Request
from .moderation import known_label, label_request
from .reply import Reply
from .specs.learned_labels import LabelMessageRequest, LabelMessageResult
from .specs.zero_shot import EMBEDDING
from .storage import GuildConfig, ModerationStore

MODERATOR = discord.Permissions(manage_messages=True)
ADMIN = discord.Permissions(administrator=True)
# default_permissions only hides commands from members (and admins can override it per server);
# these checks are what actually refuses a member without the permission.
moderator_only = app_commands.checks.has_permissions(manage_messages=True)
admin_only = app_commands.checks.has_permissions(administrator=True)


def moderator_group(name: str, description: str) -> app_commands.Group:
    """A command group for moderators, in servers only."""
    return app_commands.Group(name=name, description=description, default_permissions=MODERATOR, guild_only=True)


class ModerationCog(commands.Cog):
    def __init__(self, bot: HFBot) -> None:
        self.bot = bot

    @property
    def store(self) -> ModerationStore:
        return self.bot.store.moderation


async def send(interaction: discord.Interaction, reply: Reply, **kwargs: Any) -> None:
    """Every moderation answer is private to the moderator."""
    await interaction.response.send_message(embed=to_embed(reply), ephemeral=True, **kwargs)


async def answer(
    interaction: discord.Interaction, request: Request, show: Callable[[Any], Awaitable[dict[str, Any]]]
) -> None:
    """Answer a moderator privately with the result of `request`: `show(result)` gives the keyword arguments of
    the final edit. Refused (bad input, busy) before deferring, so the refusal is a private message."""
    bot = interaction.client
    answering = await deferred(bot, interaction, [request], private=True)
    result = await answering.result(EditScreen(interaction.edit_original_response, None, 0), bot.queue_interval)
    await interaction.edit_original_response(**await show(result))


def embedding_model(bot: HFBot) -> str:
    return bot.settings.engine.models[EMBEDDING.name]


async def label_message(
    bot: HFBot, text: str, guild_id: int, config: GuildConfig, *, user: str, background: bool = False
) -> LabelMessageResult:
    """The server's labels for a text: its learned labels where its model fits, zero-shot for the rest."""
    request = await server_label_request(bot, text, guild_id, config)
    return await bot.engine.submit(request, user=user, background=background)


async def server_label_request(bot: HFBot, text: str, guild_id: int, config: GuildConfig) -> LabelMessageRequest:
    """The request that labels a text with what the server learned: its head, and its fine-tuned encoder."""
    store = bot.store.moderation
    model, encoder = await store.label_model(guild_id), await store.encoder(guild_id)
    return label_request(text, config, model, embedding_model(bot), encoder)


def examples_changed(bot: HFBot, guild_id: int) -> None:
    """A moderator answered, or the label set changed: cogs/learning.py retrains in the background when due.
    An event, so the cogs that take answers don't depend on the one that learns from them."""
    bot.dispatch("examples_changed", guild_id)


@moderator_only  # autocomplete skips the command's checks: label names are for moderators
async def label_names(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    config = await interaction.client.store.moderation.config(interaction.guild_id)
    return [
        app_commands.Choice(name=label.name, value=label.name)
        for label in config.labels
        if current.casefold() in label.name.casefold()
    ][:25]


@dataclass(frozen=True)
class Target:
    """The message a button or menu acts on, as its custom_id carries it."""

    channel_id: int
    message_id: int
    author_id: int

    def custom_id(self, action: str, key: str | None = None) -> str:
        return f"mod:{action}:{self.channel_id}:{self.message_id}:{self.author_id}" + (f":{key}" if key else "")

    @classmethod
    def of(cls, match: re.Match[str]) -> Target:
        return cls(int(match["channel"]), int(match["message"]), int(match["author"]))


def template(*actions: str) -> re.Pattern[str]:
    """The custom_ids of `actions`, as `Target.custom_id` writes them."""
    return re.compile(
        rf"mod:(?P<action>{'|'.join(actions)}):(?P<channel>\d+):(?P<message>\d+):(?P<author>\d+)"
        r"(?::(?P<key>[0-9a-f]{8}))?"
    )


async def picked(interaction: discord.Interaction, menu: discord.ui.Select) -> tuple[GuildConfig, str]:
    """The server's labels, and the one picked in a menu (it may have been removed since the menu was posted)."""
    config = await interaction.client.store.moderation.config(interaction.guild_id)
    return config, known_label(config, menu.values[0] if menu.values else "").name


class ModerationItem:
    """Mixed into each moderation DynamicItem: the member's permission is checked before `act`, and refusals
    and errors get the same private messages as commands (a DynamicItem's own would only be logged)."""

    permission: ClassVar[str] = "manage_messages"
    # On a public log entry the answer (and any refusal) goes to the moderator privately, as a new message.
    answers_privately: ClassVar[bool] = False
    target: Target

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if getattr(interaction.permissions, self.permission):  # the clicking member's, in that channel
            return True
        await interaction.client.on_app_command_error(interaction, app_commands.MissingPermissions([self.permission]))
        return False

    async def callback(self, interaction: discord.Interaction) -> None:
        try:
            if self.answers_privately:
                await interaction.response.defer(ephemeral=True, thinking=True)
            await self.act(interaction)
        except Exception as error:
            await interaction.client.on_app_command_error(interaction, error)

    async def act(self, interaction: discord.Interaction) -> None:
        raise NotImplementedError


async def react(guild: discord.Guild, target: Target, emoji: str) -> str | None:
    """React with a label's emoji; a note for the moderator when it can't be done."""
    channel = guild.get_channel_or_thread(target.channel_id)
    if channel is None:
        return "The channel has been deleted, so I could not react to the message."
    try:
        await channel.get_partial_message(target.message_id).add_reaction(emoji)
    except discord.NotFound:
        return "The message has been deleted, so I could not react to it."
    except discord.Forbidden:
        return "I may not add reactions in that channel (Add Reactions, Read Message History)."
    except discord.HTTPException:
        return f"I could not react with {emoji}: is it an emoji I can use? Change it with /labelset add."
    return None
