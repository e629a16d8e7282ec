"""The review queue: an auto-tag below the channel's threshold but at or above the server's review
threshold is stored as a review and posted to the log channel, where a moderator confirms it, picks
another label, or says "Not this"; so is each "Help me learn" question (cogs/asking.py). Each answer is a
training example for learned labels."""

from __future__ import annotations

import logging
import re
import time

import discord
from discord.ext import commands

from bot.client import HFBot
from bot.embeds import to_embed
from bot.engine.errors import InvalidInput
from bot.moderation import in_review_queue, render_review, render_review_answer
from bot.moderation_log import admit, log_view, post, watched_channel_id
from bot.moderation_ui import ModerationCog, ModerationItem, Target, examples_changed, picked, react, template
from bot.policies import asks_moderators, decide
from bot.reply import Reply, clip
from bot.specs.learned_labels import LabelMessageResult
from bot.storage import Embedding, GuildConfig, Review

log = logging.getLogger(__name__)


class Reviews(ModerationCog):
    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(ReviewButton, RelabelMenu)  # clicks route by custom_id, also after a restart

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(ReviewButton, RelabelMenu)

    @commands.Cog.listener()
    async def on_autotag_unsure(
        self,
        message: discord.Message,
        result: LabelMessageResult,
        config: GuildConfig,
        log_channel: discord.abc.GuildChannel | None,
    ) -> None:
        """An auto-tagged message that no label reached the threshold for (cogs/autotag.py)."""
        if in_review_queue(result, config):
            await self.queue(message, result, config, log_channel, None)

    @commands.Cog.listener()
    async def on_review_wanted(
        self,
        message: discord.Message,
        result: LabelMessageResult,
        config: GuildConfig,
        log_channel: discord.TextChannel,
        unsure: str,
    ) -> None:
        """A "Help me learn" question (cogs/asking.py): `unsure` says why the bot asks."""
        await self.queue(message, result, config, log_channel, unsure)

    async def queue(
        self,
        message: discord.Message,
        result: LabelMessageResult,
        config: GuildConfig,
        log_channel: discord.abc.GuildChannel | None,
        unsure: str | None,
    ) -> None:
        """Store a review of the message's top label and post it, with its answers, to the log channel."""
        if not isinstance(log_channel, discord.TextChannel):
            return
        watched_id = watched_channel_id(message.channel)
        policies = await self.bot.store.policies.policies(message.guild.id)
        decided = decide(policies, dict(zip(result.labels, result.scores)), watched_id)
        if decided is not None and asks_moderators(decided[0]):
            return  # a policy acts on it, and its log entry asks the moderators instead (cogs/policies.py)
        if not admit(self.bot, message.guild, watched_id, "reviews"):
            return  # a raid: counted in the log's summary, not queued
        review = Review(
            message.guild.id,
            message.channel.id,
            message.id,
            message.author.id,
            result.labels[0],
            result.scores[0],
            result.methods[0],
            time.time(),
            message.content if config.store_text else None,
            Embedding(result.vector, result.model),
        )
        try:  # committed before it is announced
            if not await self.store.add_review(review):
                return  # already queued (by an alert policy): posted once
        except Exception:
            log.exception("Could not store the review of message %s", message.id)
            return
        target = Target(message.channel.id, message.id, message.author.id)
        await post(
            log_channel,
            render_review(review, message.content, unsure),
            log_view(target, *review_items(target, review, config)),
        )


def review_items(target: Target, review: Review, config: GuildConfig) -> list[discord.ui.Item]:
    """A review's answers, above the log entry's actions: Confirm, Not this, or another label."""
    return [
        ReviewButton(target, "confirm", clip(f"Confirm {review.label}", 80), discord.ButtonStyle.success),
        ReviewButton(target, "reject", "Not this", discord.ButtonStyle.secondary),
        RelabelMenu(target, [discord.SelectOption(label=label.name, value=label.name) for label in config.labels]),
    ]


async def answer_review(interaction: discord.Interaction, target: Target, label: str | None, confirm: bool) -> None:
    """Confirm the reviewed label, tag the message as `label` instead, or (neither) reject it ("Not this")."""
    store = interaction.client.store.moderation
    config = await store.config(interaction.guild_id)
    review = await store.review(interaction.guild_id, target.message_id)
    if review is not None and confirm:
        label = review.label
    # answer_review checks again in its transaction: of two moderators answering at once, one wins.
    if (
        review is None
        or await store.answer_review(interaction.guild_id, target.message_id, interaction.user.id, label) is None
    ):
        raise InvalidInput(
            "This review was already answered, or the message's tags were undone (/tags undo). Nothing changed."
        )
    emoji = getattr(config.label(label), "emoji", None) if label else None
    note = await react(interaction.guild, target, emoji) if emoji else None
    said = render_review_answer(review, interaction.user.id, label)
    embed = interaction.message.embeds[0] if interaction.message and interaction.message.embeds else discord.Embed()
    embed.description = clip(f"{embed.description or ''}\n\n{said}" + (f"\n{note}" if note else ""), 4096)
    embed.colour = discord.Colour.blurple()
    if interaction.message is not None:
        await interaction.message.edit(embed=embed, view=log_view(target))  # the review's answers go; the actions stay
    reply = Reply("Answer saved", [said + ". The bot learns from it at its next training."])
    await interaction.edit_original_response(embed=to_embed(reply))
    examples_changed(interaction.client, interaction.guild_id)


class ReviewButton(ModerationItem, discord.ui.DynamicItem[discord.ui.Button], template=template("confirm", "reject")):
    """Confirm the reviewed label, or "Not this"."""

    answers_privately = True

    def __init__(self, target: Target, action: str, label: str, style: discord.ButtonStyle) -> None:
        super().__init__(discord.ui.Button(label=label, style=style, custom_id=target.custom_id(action)), row=0)
        self.target, self.action = target, action

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str]
    ) -> ReviewButton:
        return cls(Target.of(match), match["action"], item.label or "", item.style)

    async def act(self, interaction: discord.Interaction) -> None:
        await answer_review(interaction, self.target, None, confirm=self.action == "confirm")


class RelabelMenu(ModerationItem, discord.ui.DynamicItem[discord.ui.Select], template=template("relabel")):
    """Tag the reviewed message as another label of the set."""

    answers_privately = True

    def __init__(self, target: Target, options: list[discord.SelectOption]) -> None:
        menu = discord.ui.Select(placeholder="Another label", options=options, custom_id=target.custom_id("relabel"))
        super().__init__(menu, row=1)
        self.target = target

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Select, match: re.Match[str]
    ) -> RelabelMenu:
        return cls(Target.of(match), item.options)

    async def act(self, interaction: discord.Interaction) -> None:
        _, label = await picked(interaction, self.item)
        await answer_review(interaction, self.target, label, confirm=False)


async def setup(bot: HFBot) -> None:
    await bot.add_cog(Reviews(bot))
