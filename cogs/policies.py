"""/policy: calibrated policies. Per label, for every watched channel or one, an action (log only, alert in the
review queue, delete, timeout) taken when a message's auto-tag score reaches the threshold derived from the
precision a moderator asks for, on the server's cross-validated examples (bot/policies.py). A dry run replays
the last days of auto-tagged messages. Each automatic action carries its audit reason; a timeout can be undone
from its log entry (a deleted message can't be restored). During a raid, log entries are capped per channel
and summarized."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import HFBot
from bot.embeds import to_embed
from bot.engine.errors import InvalidInput
from bot.engine.request import check_number
from bot.moderation import (
    TIMEOUTS,
    audit_reason,
    known_label,
    require_labels,
    score_of,
    timeout_duration,
)
from bot.moderation_log import admit, log_view, post
from bot.moderation_ui import (
    ModerationCog,
    ModerationItem,
    Target,
    answer,
    label_names,
    moderator_group,
    moderator_only,
    send,
    template,
)
from bot.permissions import missing, names
from bot.policies import (
    ACTIONS,
    ALERTED_NOTE,
    DELETED_NOTE,
    action_name,
    asks_moderators,
    calibrate,
    decide,
    evaluation,
    held_out_points,
    render_acted,
    render_dry_run,
    render_policies,
    render_policy_set,
    replay,
    timeout_of,
)
from bot.policies import audit_reason as policy_reason
from bot.reply import Reply
from bot.specs.learned_labels import LabelEvaluation, LabelMessageResult
from bot.storage import EVERY_CHANNEL, Embedding, Policy, PolicyStore, Review, Scored, StoreBusy, Watch
from cogs.reviews import review_items

log = logging.getLogger(__name__)
ACTION_CHOICES = [app_commands.Choice(name=name, value=action) for action, name in ACTIONS.items()]
TIMEOUT_CHOICES = [app_commands.Choice(name=name, value=seconds) for name, seconds in TIMEOUTS.items()]
DEFAULT_TIMEOUT = TIMEOUTS["10 minutes"]
# What the bot itself needs for an action, of the POLICIES feature's permissions.
NEEDS = {"delete": discord.Permissions(manage_messages=True), "timeout": discord.Permissions(moderate_members=True)}


class Policies(ModerationCog):
    policy = moderator_group("policy", "Moderators: act automatically on auto-tags, as sure as you choose")

    @property
    def policies(self) -> PolicyStore:
        return self.bot.store.policies

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(UndoTimeoutButton)  # under timeout entries, also after a restart

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(UndoTimeoutButton)

    @policy.command(name="set", description="Act on a label automatically, where past flags were right often enough")
    @app_commands.describe(
        label="The label the policy acts on",
        precision="Act only where at least this % of past flags were right (cross-validated on your examples)",
        action="What to do with a message that reaches the threshold",
        channel="Only in this watched channel (default: every watched channel)",
        timeout="How long the timeout action lasts (default 10 minutes)",
    )
    @app_commands.choices(action=ACTION_CHOICES, timeout=TIMEOUT_CHOICES)
    @app_commands.autocomplete(label=label_names)
    @moderator_only
    async def policy_set(
        self,
        interaction: discord.Interaction,
        label: str,
        precision: app_commands.Range[int, 50, 100],
        action: str,
        channel: discord.TextChannel | None = None,
        timeout: int | None = None,
    ) -> None:
        check_number(precision, "precision", 50, 100, integer=True)
        if action not in ACTIONS:
            raise InvalidInput(f"Pick an action from the menu: {', '.join(ACTIONS.values())}.")
        if timeout is not None and action != "timeout":
            raise InvalidInput("A timeout duration only goes with the timeout action.")
        seconds = int(timeout_duration(str(timeout)).total_seconds()) if timeout is not None else DEFAULT_TIMEOUT
        config = await self.store.config(interaction.guild_id)
        name = known_label(config, label).name
        if len(require_labels(config)) < 2:
            raise InvalidInput("A precision needs labels to tell apart: add at least two with /labelset add.")
        if channel is not None and await self.store.watch_of(interaction.guild_id, channel.id) is None:
            raise InvalidInput(f"{channel.mention} is not auto-tagged, so no policy can act there: /autotag enable.")
        lacking = missing(NEEDS.get(action, discord.Permissions.none()), interaction.guild.me.guild_permissions)
        if lacking.value:
            raise InvalidInput(f"To {ACTIONS[action]} I need the {', '.join(names(lacking))} permission first.")
        examples = await self.store.examples(interaction.guild_id)
        pairs, request = evaluation(examples, config, self.bot.settings.min_examples)

        async def show(evaluation: LabelEvaluation) -> dict[str, Any]:
            points = held_out_points(pairs, evaluation.held_out, evaluation.labels, name)
            calibration = calibrate(points, precision / 100)
            if isinstance(calibration, str):
                raise InvalidInput(f"No policy for **{name}** yet: {calibration}.")
            policy = Policy(
                interaction.guild_id,
                name,
                channel.id if channel else EVERY_CHANNEL,
                action,
                seconds if action == "timeout" else None,
                precision / 100,
                calibration.threshold,
                calibration.precision,
                calibration.recall,
                interaction.user.id,
                time.time(),
            )
            await self.policies.set_policy(policy)  # saved before the moderator is told
            return {"embed": to_embed(render_policy_set(policy, calibration))}

        await answer(interaction, request, show)

    @policy.command(name="list", description="This server's policies, with the precision and recall they imply")
    @moderator_only
    async def policy_list(self, interaction: discord.Interaction) -> None:
        await send(interaction, render_policies(await self.policies.policies(interaction.guild_id)))

    @policy.command(name="remove", description="Stop a label's policy")
    @app_commands.describe(channel="The channel of a channel's own policy (default: the server's)")
    @app_commands.autocomplete(label=label_names)
    @moderator_only
    async def policy_remove(
        self, interaction: discord.Interaction, label: str, channel: discord.TextChannel | None = None
    ) -> None:
        channel_id = channel.id if channel else EVERY_CHANNEL
        if not await self.policies.remove_policy(interaction.guild_id, label, channel_id):
            where = channel.mention if channel else "every watched channel"
            raise InvalidInput(f"There is no policy for “{label}” in {where}. See /policy list.")
        await send(interaction, render_policies(await self.policies.policies(interaction.guild_id), "Policy removed"))

    @policy.command(name="dryrun", description="What the policies would have done on the last days of messages")
    @app_commands.describe(days="How many days back (scores are kept 30 days)")
    @moderator_only
    async def policy_dryrun(self, interaction: discord.Interaction, days: app_commands.Range[int, 1, 30] = 7) -> None:
        check_number(days, "days", 1, 30, integer=True)
        scored = await self.policies.scored_since(interaction.guild_id, time.time() - days * 86400)
        policies = await self.policies.policies(interaction.guild_id)
        await send(interaction, render_dry_run(replay(policies, scored), len(scored), days))

    # --- acting ------------------------------------------------------------------------------

    @commands.Cog.listener()
    async def on_autotag_scored(
        self,
        message: discord.Message,
        result: LabelMessageResult,
        watch: Watch,
        log_channel: discord.abc.GuildChannel | None,
    ) -> None:
        """Every auto-tagged message's scores (cogs/autotag.py): kept for dry runs, then the policies act."""
        scored = Scored(
            message.guild.id,
            watch.channel_id,
            message.channel.id,
            message.id,
            message.author.id,
            dict(zip(result.labels, result.scores)),
            time.time(),
        )
        try:
            await self.policies.add_scored(scored)
            policies = await self.policies.policies(message.guild.id)
        except StoreBusy:  # another process holds the database: this message goes unacted, the next is seen
            log.warning("Policies skipped message %s: the database was busy", message.id)
            return
        decided = decide(policies, scored.scores, watch.channel_id)
        if decided is None:
            return
        policy, score = decided
        posting = admit(self.bot, message.guild, watch.channel_id, f"{policy.label} → {policy.action}")
        if policy.action == "alert" and not posting:
            return  # a raid: the alert is counted in the log's summary, not queued
        done, buttons = await self.act(policy, score, message)
        if not posting:
            return  # a raid: done, and counted in the log's summary
        target = Target(message.channel.id, message.id, message.author.id)
        # Alerts, deletes and timeouts ask the moderators whether the label was right: each answer is an example.
        answers = await self.queue_review(policy, score, message, result) if asks_moderators(policy) else []
        await post(log_channel, render_acted(policy, score, scored, done), log_view(target, *answers, *buttons))

    async def queue_review(
        self, policy: Policy, score: float, message: discord.Message, result: LabelMessageResult
    ) -> list[discord.ui.Item]:
        """The message as a pending review of the policy's label; its answer buttons (none if already queued)."""
        config = await self.store.config(message.guild.id)
        review = Review(
            message.guild.id,
            message.channel.id,
            message.id,
            message.author.id,
            policy.label,
            score,
            score_of(result, policy.label)[1],
            time.time(),
            message.content if config.store_text else None,
            Embedding(result.vector, result.model),
        )
        if not await self.store.add_review(review):
            return []
        return review_items(Target(message.channel.id, message.id, message.author.id), review, config)

    async def act(self, policy: Policy, score: float, message: discord.Message) -> tuple[str, list[discord.ui.Item]]:
        """Do what the policy says: what was done, for the log entry, and the entry's own buttons."""
        if policy.action == "log":
            return "Logged only.", []
        if policy.action == "alert":
            return ALERTED_NOTE, []
        if not isinstance(message.author, discord.Member):
            return "Not done: the author is no longer a member of this server.", []
        lacking = missing(NEEDS[policy.action], message.channel.permissions_for(message.guild.me))
        if lacking.value:
            return f"Not done: I lack {', '.join(names(lacking))} in <#{message.channel.id}>.", []
        reason = policy_reason(policy, score, message.id)
        try:
            if policy.action == "delete":
                # Message.delete takes no reason; the HTTP call does, and Discord puts it in the audit log.
                await self.bot.http.delete_message(message.channel.id, message.id, reason=reason)
                return DELETED_NOTE, []
            await message.author.timeout(timeout_of(policy), reason=reason)
        except discord.NotFound:
            return "Not done: the message or its author is already gone.", []
        except discord.Forbidden:
            return "Not done: Discord refused (the author's role is above mine, or they are an admin).", []
        target = Target(message.channel.id, message.id, message.author.id)
        return f"Done: {action_name(policy)}; the reason is in the audit log.", [UndoTimeoutButton(target)]


class UndoTimeoutButton(ModerationItem, discord.ui.DynamicItem[discord.ui.Button], template=template("untimeout")):
    """Under an automatic timeout's log entry: end the timeout now."""

    permission = "moderate_members"
    answers_privately = True

    def __init__(self, target: Target) -> None:
        button = discord.ui.Button(
            label="Undo timeout", style=discord.ButtonStyle.secondary, custom_id=target.custom_id("untimeout")
        )
        super().__init__(button, row=0)
        self.target = target

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str]
    ) -> UndoTimeoutButton:
        return cls(Target.of(match))

    async def act(self, interaction: discord.Interaction) -> None:
        guild, target, moderator = interaction.guild, self.target, interaction.user
        if not guild.me.guild_permissions.moderate_members:
            raise InvalidInput("I need the Moderate Members permission to end a timeout.")
        try:
            member = await guild.fetch_member(target.author_id)
        except discord.NotFound:
            raise InvalidInput(f"<@{target.author_id}> is no longer a member of this server.") from None
        reason = audit_reason(f"{moderator} ({moderator.id})", "Timeout removed", f"message {target.message_id}")
        try:
            await member.timeout(None, reason=reason)
        except discord.Forbidden:
            raise InvalidInput(f"Discord refused to end the timeout of <@{member.id}>.") from None
        reply = Reply("Timeout removed", [f"<@{member.id}> can talk again; the reason is in the audit log."])
        await interaction.edit_original_response(embed=to_embed(reply))


async def setup(bot: HFBot) -> None:
    await bot.add_cog(Policies(bot))
