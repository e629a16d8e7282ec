"""Tagging by hand: the "Tag message" context menu suggests the server's labels for a message, and its
buttons and menu take the moderator's answer (a tag, another label, or none of these). Nothing is stored
until the moderator answers; every answer is a training example for learned labels."""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import discord
from discord import app_commands

from bot.client import HFBot
from bot.embeds import to_embed
from bot.engine.errors import InvalidInput
from bot.moderation import (
    label_by_key,
    label_key,
    message_text,
    render_suggestion,
    render_tagged,
    score_of,
)
from bot.moderation_ui import (
    ModerationCog,
    ModerationItem,
    Target,
    answer,
    examples_changed,
    label_message,
    moderator_only,
    picked,
    react,
    server_label_request,
    template,
)
from bot.reply import Reply, clip
from bot.specs.learned_labels import NONE_OF_THESE, LabelMessageResult
from bot.storage import Embedding, GuildConfig, Rejection, Tag

SUGGESTIONS_KEPT = 1024  # suggestions remembered for their buttons; older ones (and all after a restart) are recomputed


@dataclass(frozen=True)
class Suggestion:
    result: LabelMessageResult
    text: str


class Tagging(ModerationCog):
    def __init__(self, bot: HFBot) -> None:
        super().__init__(bot)
        self.menu = app_commands.ContextMenu(name="Tag message", callback=self.tag_message)
        self.suggestions: OrderedDict[tuple[int, int], Suggestion] = OrderedDict()  # (guild, message) -> shown

    @staticmethod
    def of(client: discord.Client) -> Tagging:
        cog = client.get_cog("Tagging")
        if cog is None:
            raise InvalidInput("Tagging is not loaded on this bot right now. Try again in a moment.")
        return cog

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)
        self.bot.add_dynamic_items(AnswerButton, PickMenu)  # clicks route by custom_id, also after a restart

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)
        self.bot.remove_dynamic_items(AnswerButton, PickMenu)

    @app_commands.default_permissions(manage_messages=True)
    @app_commands.guild_only()
    @moderator_only
    async def tag_message(self, interaction: discord.Interaction, message: discord.Message) -> None:
        config = await self.store.config(interaction.guild_id)
        request = await server_label_request(self.bot, message_text(message.content), interaction.guild_id, config)

        async def show(result: LabelMessageResult) -> dict[str, Any]:
            self.remember(interaction.guild_id, message.id, Suggestion(result, message.content))
            target = Target(message.channel.id, message.id, message.author.id)
            return {"embed": to_embed(render_suggestion(result)), "view": suggestion_view(target, result)}

        await answer(interaction, request, show)

    def remember(self, guild_id: int, message_id: int, suggestion: Suggestion) -> None:
        self.suggestions[(guild_id, message_id)] = suggestion
        self.suggestions.move_to_end((guild_id, message_id))
        while len(self.suggestions) > SUGGESTIONS_KEPT:
            self.suggestions.popitem(last=False)

    async def suggestion(
        self, interaction: discord.Interaction, target: Target, config: GuildConfig
    ) -> Suggestion | None:
        """The suggestion a button belongs to: remembered, or (after a restart) labelled again; None when the
        message is gone."""
        known = self.suggestions.get((interaction.guild_id, target.message_id))
        if known is not None:
            return known
        channel = interaction.guild.get_channel_or_thread(target.channel_id)
        try:
            message = await channel.fetch_message(target.message_id) if channel is not None else None
        except discord.NotFound:
            message = None
        except discord.Forbidden:
            raise InvalidInput(
                f"I can't read <#{target.channel_id}> any more (View Channel, Read Message History)."
            ) from None
        if message is None:
            return None
        result = await label_message(
            self.bot, message_text(message.content), interaction.guild_id, config, user=str(interaction.user.id)
        )
        suggestion = Suggestion(result, message.content)
        self.remember(interaction.guild_id, target.message_id, suggestion)
        return suggestion

    async def answer(
        self, interaction: discord.Interaction, target: Target, config: GuildConfig, label: str | None
    ) -> None:
        """A moderator's answer to "Tag message": the label (a tag), or None ("None of these"). Either is a
        training example."""
        # Acknowledge the click now: labelling again or the database may take a moment.
        await interaction.response.defer()
        suggestion = await self.suggestion(interaction, target, config)
        embedding = Embedding(suggestion.result.vector, suggestion.result.model) if suggestion else None
        text = suggestion.text if suggestion and config.store_text else None
        now = time.time()
        if label is None:
            if suggestion is None:
                raise InvalidInput(
                    "That message has been deleted, so there is nothing to learn from it. Nothing was stored."
                )
            rejection = Rejection(
                interaction.guild_id,
                target.channel_id,
                target.message_id,
                NONE_OF_THESE,
                interaction.user.id,
                now,
                text,
            )
            await self.store.reject(rejection, embedding)
            reply = Reply(
                "Not tagged",
                ["No tag was stored; the bot will learn that this message has none of the labels."],
                tone="info",
            )
        else:
            score, method = score_of(suggestion.result, label) if suggestion else (None, config.method)
            tag = Tag(
                interaction.guild_id,
                target.channel_id,
                target.message_id,
                target.author_id,
                label,
                score,
                method,
                interaction.user.id,
                False,
                now,
                text,
            )
            await self.store.add_tags([tag], embedding)  # committed before the moderator is told it is saved
            if suggestion is None:
                note = "The message has been deleted, so it can't teach the bot (its text is gone)."
            else:
                emoji = getattr(config.label(label), "emoji", None)
                note = await react(interaction.guild, target, emoji) if emoji else None
            reply = render_tagged(tag, note)
        await interaction.edit_original_response(embed=to_embed(reply), view=None)
        examples_changed(self.bot, interaction.guild_id)


class AnswerButton(ModerationItem, discord.ui.DynamicItem[discord.ui.Button], template=template("tag", "none")):
    """ "Tag as <top label>" (its key in the custom_id) or "None of these"."""

    def __init__(self, target: Target, label: str, style: discord.ButtonStyle, key: str | None = None) -> None:
        """key: the label a "Tag as" button confirms (`label_key`); None for "None of these"."""
        custom_id = target.custom_id("tag" if key else "none", key)
        super().__init__(discord.ui.Button(label=label, style=style, custom_id=custom_id), row=0)
        self.target, self.key = target, key

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str]
    ) -> AnswerButton:
        key = match["key"] if match["action"] == "tag" else None
        return cls(Target.of(match), item.label or "", item.style, key)

    async def act(self, interaction: discord.Interaction) -> None:
        config = await interaction.client.store.moderation.config(interaction.guild_id)
        label = None if self.key is None else label_by_key(config, self.key).name
        await Tagging.of(interaction.client).answer(interaction, self.target, config, label)


class PickMenu(ModerationItem, discord.ui.DynamicItem[discord.ui.Select], template=template("pick")):
    """ "Or pick another label": any label of the suggestion."""

    def __init__(self, target: Target, options: list[discord.SelectOption]) -> None:
        menu = discord.ui.Select(
            placeholder="Or pick another label", options=options, custom_id=target.custom_id("pick")
        )
        super().__init__(menu, row=1)
        self.target = target

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Select, match: re.Match[str]
    ) -> PickMenu:
        return cls(Target.of(match), item.options)

    async def act(self, interaction: discord.Interaction) -> None:
        config, label = await picked(interaction, self.item)
        await Tagging.of(interaction.client).answer(interaction, self.target, config, label)


def suggestion_view(target: Target, result: LabelMessageResult) -> discord.ui.View:
    """Under a suggestion: tag the top label, pick another, or none of these. Until answered nothing is stored."""
    view = discord.ui.View(timeout=None)
    top = result.labels[0]
    view.add_item(AnswerButton(target, clip(f"Tag as {top}", 80), discord.ButtonStyle.success, label_key(top)))
    view.add_item(AnswerButton(target, "None of these", discord.ButtonStyle.secondary))
    options = [
        discord.SelectOption(label=label, value=label, description=f"score {score:.2f}")
        for label, score in zip(result.labels, result.scores)
    ]
    view.add_item(PickMenu(target, options))
    return view


async def setup(bot: HFBot) -> None:
    await bot.add_cog(Tagging(bot))
