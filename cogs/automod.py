"""Discord's AutoMod: what AutoMod blocks or flags in a server with auto-tagged channels enters the review queue
as a candidate example (labelled by the server's labels, answered like any review), and /automod propose
suggests keyword rules from the moderators' confirmed tags (bot/automod.py), created only when a moderator
with Manage Server presses Create. AutoMod's execution events come with discord.py's default intents
(auto_moderation_execution is not privileged); their message text needs the Message Content intent."""

from __future__ import annotations

import logging
import time

import discord
from discord.ext import commands

from bot.automod import (
    MAX_KEYWORD_RULES,
    Proposal,
    propose,
    render_automod_review,
    render_created,
    render_proposals,
)
from bot.client import HFBot
from bot.embeds import to_embed
from bot.engine import Busy, EngineError
from bot.engine.errors import InvalidInput
from bot.moderation import message_text
from bot.moderation_log import admit, log_view, post, watched_channel_id
from bot.moderation_ui import ModerationCog, Target, label_message, moderator_group, moderator_only, send
from bot.storage import Embedding, Review
from cogs.reviews import review_items

log = logging.getLogger(__name__)
SAME_EXECUTION_SECONDS = 10.0  # AutoMod sends one event per action of a rule (block, alert...): one review


class AutoMod(ModerationCog):
    automod = moderator_group("automod", "Moderators: Discord's AutoMod and the bot's labels together")

    def __init__(self, bot: HFBot) -> None:
        super().__init__(bot)
        self.recent: dict[tuple[int, int, int, str], float] = {}  # (guild, rule, author, text) -> when
        self.rule_names: dict[int, str] = {}

    async def log_channel(self, guild: discord.Guild, channel_id: int | None) -> discord.TextChannel | None:
        """The log channel of the watched channel (a thread's parent) AutoMod acted in, else the server's first."""
        watches = [w for w in await self.store.watches(guild.id) if w.log_channel_id]
        channel = guild.get_channel_or_thread(channel_id) if channel_id else None
        parent = channel.parent_id if isinstance(channel, discord.Thread) else channel_id
        watch = next((w for w in watches if w.channel_id == parent), watches[0] if watches else None)
        found = guild.get_channel(watch.log_channel_id) if watch else None
        return found if isinstance(found, discord.TextChannel) else None

    async def rule_name(self, guild: discord.Guild, rule_id: int) -> str:
        if rule_id not in self.rule_names:
            try:
                self.rule_names[rule_id] = (await guild.fetch_automod_rule(rule_id)).name
            except discord.HTTPException:  # no Manage Server: the rule is named by its id
                return f"#{rule_id}"
        return self.rule_names[rule_id]

    def seen(self, key: tuple[int, int, int, str]) -> bool:
        now = time.monotonic()
        self.recent = {k: at for k, at in self.recent.items() if now - at < SAME_EXECUTION_SECONDS}
        if key in self.recent:
            return True
        self.recent[key] = now
        return False

    @commands.Cog.listener()
    async def on_automod_action(self, execution: discord.AutoModAction) -> None:
        guild = execution.guild
        if not execution.content.strip():
            return  # without the Message Content intent AutoMod's events carry no text: nothing to learn from
        if self.seen((guild.id, execution.rule_id, execution.user_id, execution.content)):
            return
        log_channel = await self.log_channel(guild, execution.channel_id)
        config = await self.store.config(guild.id)
        if log_channel is None or not config.labels:
            return  # not a watched server (no auto-tag log), or no labels to ask about
        try:
            result = await label_message(
                self.bot, message_text(execution.content), guild.id, config, user=f"guild:{guild.id}", background=True
            )
        except (Busy, EngineError) as error:
            log.warning("Could not label AutoMod's message in guild %s: %s", guild.id, error)
            return
        channel = guild.get_channel_or_thread(execution.channel_id or 0)
        if not admit(self.bot, guild, watched_channel_id(channel) if channel else 0, "AutoMod reviews"):
            return  # a raid: counted in the log's summary, not queued
        # A blocked message was never posted: it has no id, so the review gets one of its time.
        message_id = execution.message_id or discord.utils.time_snowflake(discord.utils.utcnow())
        review = Review(
            guild.id,
            execution.channel_id or 0,
            message_id,
            execution.user_id,
            result.labels[0],
            result.scores[0],
            result.methods[0],
            time.time(),
            execution.content if config.store_text else None,
            Embedding(result.vector, result.model),
        )
        try:
            if not await self.store.add_review(review):
                return  # already in the review queue
        except Exception:
            log.exception("Could not store AutoMod's message in guild %s for review", guild.id)
            return
        target = Target(review.channel_id, message_id, execution.user_id)
        entry = render_automod_review(
            review,
            execution.action.type.value,
            await self.rule_name(guild, execution.rule_id),
            execution.matched_keyword,
            execution.content,
        )
        await post(log_channel, entry, log_view(target, *review_items(target, review, config)))

    @automod.command(name="propose", description="Propose AutoMod keyword rules from your confirmed tags")
    @moderator_only
    async def automod_propose(self, interaction: discord.Interaction) -> None:
        guild = interaction.guild
        if not guild.me.guild_permissions.manage_guild:
            raise InvalidInput("I need the Manage Server permission to read and create AutoMod rules.")
        log_channel = await self.log_channel(guild, None)
        if log_channel is None:
            raise InvalidInput(
                "The rules send their alerts to the auto-tag log: give a channel one first "
                "(/autotag enable with log_channel)."
            )
        config = await self.store.config(guild.id)
        rules = await guild.fetch_automod_rules()
        in_use = sum(rule.trigger.type == discord.AutoModRuleTriggerType.keyword for rule in rules)
        proposals = propose(await self.store.tags(guild.id), [label.name for label in config.labels], in_use)
        reply = render_proposals(proposals, in_use, not config.store_text)
        view = ProposalView(proposals, log_channel.id) if proposals else discord.utils.MISSING
        await send(interaction, reply, view=view)


class ProposalView(discord.ui.View):
    """Create or Cancel under a proposal; nothing reaches Discord before Create."""

    def __init__(self, proposals: list[Proposal], log_channel_id: int) -> None:
        super().__init__(timeout=600)
        self.proposals, self.log_channel_id = proposals, log_channel_id

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        permissions = interaction.permissions
        if permissions.manage_guild or permissions.administrator:  # what AutoMod's rules take in Discord's settings
            return True
        await interaction.client.on_app_command_error(
            interaction, discord.app_commands.MissingPermissions(["manage_guild"])
        )
        return False

    async def on_error(self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item) -> None:
        await interaction.client.on_app_command_error(interaction, error)  # type: ignore[arg-type]

    @discord.ui.button(label="Create", style=discord.ButtonStyle.success, custom_id="automod:create")
    async def create(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.defer()
        self.stop()
        guild, created, failed = interaction.guild, [], []
        rules = await guild.fetch_automod_rules()  # checked again: rules may have been added since the proposal
        room = MAX_KEYWORD_RULES - sum(rule.trigger.type == discord.AutoModRuleTriggerType.keyword for rule in rules)
        for proposal in self.proposals:
            if len(created) >= room:
                failed.append(f"{proposal.rule_name}: the server has Discord's maximum of keyword rules.")
                continue
            try:
                await guild.create_automod_rule(
                    name=proposal.rule_name,
                    event_type=discord.AutoModRuleEventType.message_send,
                    trigger=discord.AutoModTrigger(
                        type=discord.AutoModRuleTriggerType.keyword, keyword_filter=list(proposal.keywords)
                    ),
                    actions=[discord.AutoModRuleAction(channel_id=self.log_channel_id)],  # flag, never block
                    enabled=True,
                    reason=f"Proposed from confirmed tags of “{proposal.label}”, confirmed by {interaction.user}",
                )
                created.append(proposal.rule_name)
            except discord.HTTPException as error:
                failed.append(f"{proposal.rule_name}: Discord refused ({error.text or error.status}).")
        await interaction.edit_original_response(embed=to_embed(render_created(created, failed)), view=None)

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary, custom_id="automod:cancel")
    async def cancel(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.stop()
        await interaction.response.edit_message(embed=to_embed(render_created([], ["Cancelled."])), view=None)


async def setup(bot: HFBot) -> None:
    await bot.add_cog(AutoMod(bot))
