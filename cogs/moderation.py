"""Moderators: guild label sets, the "Tag message" context menu, channel auto-tagging with a review
queue, learned labels, and reading, charting and exporting the tags. Storage is `bot.store`
(bot/storage.py); wording, validation and rendering are bot/moderation.py; this cog only speaks Discord.

Buttons and menus are `DynamicItem`s: what they act on (channel, message, author, label) is in their
custom_id, and the rest is read back from SQLite, so they keep working after a restart.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import time
from collections import OrderedDict
from dataclasses import dataclass

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import HFBot, to_embed
from bot.commands import Reply, clip
from bot.engine import Busy, EngineError
from bot.engine.errors import InvalidInput
from bot.engine.requests.base import check_choice, check_number
from bot.engine.requests.learned_labels import (
    NONE_OF_THESE,
    EvaluateLabelsRequest,
    LabelEvaluation,
    LabelMessageResult,
    TrainedLabels,
    TrainLabelsRequest,
)
from bot.engine.requests.zero_shot import MAX_LABEL_CHARS, METHODS
from bot.moderation import (
    AUTOTAG_OFF,
    PURGE_PROMPT,
    TIMEOUTS,
    audit_reason,
    auto_labels,
    duration_name,
    identical_labels,
    known_label,
    label_by_key,
    label_key,
    label_prompt,
    label_request,
    message_text,
    parse_message_ref,
    render_autotag_log,
    render_labelset,
    render_purged,
    render_report,
    render_review,
    render_review_answer,
    render_stats,
    render_suggestion,
    render_tagged,
    render_tags,
    render_trained,
    render_undo,
    render_watches,
    report_chart,
    require_labels,
    score_of,
    stats_chart,
    tags_csv,
    timeout_duration,
    training_examples,
    validate_description,
    validate_emoji,
    validate_label,
)
from bot.storage import Embedding, GuildConfig, LabelModel, ModerationStore, Rejection, Review, StoreBusy, Tag

log = logging.getLogger(__name__)

MODERATOR = discord.Permissions(manage_messages=True)
ADMIN = discord.Permissions(administrator=True)
# default_permissions only hides commands from members (and admins can override it per server);
# these checks are what actually refuses a member without the permission.
moderator_only = app_commands.checks.has_permissions(manage_messages=True)
admin_only = app_commands.checks.has_permissions(administrator=True)
SUGGESTIONS_KEPT = 1024  # suggestions remembered for their buttons; older ones (and all after a restart) are recomputed
# Component actions -> the member permission each needs. Suggestion: tag, pick, none; review: confirm, relabel,
# reject; any log entry: delete, timeout.
ACTIONS = {
    "tag": "manage_messages",
    "pick": "manage_messages",
    "none": "manage_messages",
    "confirm": "manage_messages",
    "relabel": "manage_messages",
    "reject": "manage_messages",
    "delete": "manage_messages",
    "timeout": "moderate_members",
}
BUTTONS, MENUS = ("tag", "none", "confirm", "reject", "delete"), ("pick", "relabel", "timeout")


def custom_id_template(actions: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(
        rf"mod:(?P<action>{'|'.join(actions)}):(?P<channel>\d+):(?P<message>\d+):(?P<author>\d+)(?::(?P<key>[0-9a-f]{{8}}))?"
    )


async def send(interaction: discord.Interaction, reply: Reply, **kwargs: object) -> None:
    """Every moderation answer is private to the moderator."""
    await interaction.response.send_message(embed=to_embed(reply), ephemeral=True, **kwargs)


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


@dataclass(frozen=True)
class Suggestion:
    result: LabelMessageResult
    text: str


class Moderation(commands.Cog):
    labelset = app_commands.Group(
        name="labelset",
        description="Moderators: the labels this server tags messages with",
        default_permissions=MODERATOR,
        guild_only=True,
    )
    autotag = app_commands.Group(
        name="autotag",
        description="Moderators: tag new messages in chosen channels automatically",
        default_permissions=MODERATOR,
        guild_only=True,
    )
    tags = app_commands.Group(
        name="tags",
        description="Moderators: read, chart, export and undo tags",
        default_permissions=MODERATOR,
        guild_only=True,
    )
    moderation = app_commands.Group(
        name="moderation",
        description="Admins: this server's moderation data",
        default_permissions=ADMIN,
        guild_only=True,
    )

    def __init__(self, bot: HFBot) -> None:
        self.bot = bot
        self.menu = app_commands.ContextMenu(name="Tag message", callback=self.tag_message)
        self.suggestions: OrderedDict[tuple[int, int], Suggestion] = OrderedDict()
        self.trainings: dict[int, asyncio.Task] = {}  # guild -> its background retraining, at most one each

    @property
    def store(self) -> ModerationStore:
        return self.bot.store.moderation

    @property
    def embedding_model(self) -> str:
        return self.bot.settings.engine.models["embedding"]

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)
        self.bot.add_dynamic_items(
            ModerationButton, ModerationSelect
        )  # clicks route by custom_id, also after a restart

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)
        self.bot.remove_dynamic_items(ModerationButton, ModerationSelect)
        for task in self.trainings.values():
            task.cancel()

    @moderator_only  # autocomplete skips the command's checks: label names are for moderators
    async def label_names(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        config = await self.store.config(interaction.guild_id)
        return [
            app_commands.Choice(name=label.name, value=label.name)
            for label in config.labels
            if current.casefold() in label.name.casefold()
        ][:25]

    async def label(
        self, text: str, guild_id: int, config: GuildConfig, *, user: str, background: bool = False
    ) -> LabelMessageResult:
        """The server's labels for a text: its learned labels where its model fits, zero-shot for the rest."""
        request = label_request(text, config, await self.store.label_model(guild_id), self.embedding_model)
        return await self.bot.engine.submit(request, user=user, background=background)

    # --- the context menu --------------------------------------------------------------------
    @app_commands.default_permissions(manage_messages=True)
    @app_commands.guild_only()
    @moderator_only
    async def tag_message(self, interaction: discord.Interaction, message: discord.Message) -> None:
        config = await self.store.config(interaction.guild_id)
        request = label_request(
            message_text(message.content),
            config,
            await self.store.label_model(interaction.guild_id),
            self.embedding_model,
        )
        # Refused (bad input, busy) before deferring, so the refusal is a private message.
        job = self.bot.engine.submit_job(
            request, user=str(interaction.user.id), timeout=self.bot.settings.request_timeout
        )
        try:
            await interaction.response.defer(ephemeral=True, thinking=True)
            result = await job.result()
        finally:
            job.cancel()  # no-op once finished; frees the queue slot if we failed early
        self.remember(interaction.guild_id, message.id, Suggestion(result, message.content))
        target = Target(message.channel.id, message.id, message.author.id)
        await interaction.edit_original_response(
            embed=to_embed(render_suggestion(result)), view=suggestion_view(target, result)
        )

    def remember(self, guild_id: int, message_id: int, suggestion: Suggestion) -> None:
        self.suggestions[(guild_id, message_id)] = suggestion
        self.suggestions.move_to_end((guild_id, message_id))
        while len(self.suggestions) > SUGGESTIONS_KEPT:
            self.suggestions.popitem(last=False)

    async def suggestion(
        self, interaction: discord.Interaction, target: Target, config: GuildConfig
    ) -> Suggestion | None:
        """The suggestion a button belongs to: remembered, or (after a restart) labelled again; None when the message is gone."""
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
        result = await self.label(
            message_text(message.content), interaction.guild_id, config, user=str(interaction.user.id)
        )
        suggestion = Suggestion(result, message.content)
        self.remember(interaction.guild_id, target.message_id, suggestion)
        return suggestion

    # --- buttons and menus -------------------------------------------------------------------
    async def on_component(
        self, interaction: discord.Interaction, action: str, target: Target, key: str | None, values: list[str]
    ) -> None:
        needed = ACTIONS[action]
        if not getattr(interaction.permissions, needed):  # the clicking member's, in that channel
            raise app_commands.MissingPermissions([needed])
        config = await self.store.config(interaction.guild_id)
        if action not in ("tag", "pick", "none"):
            # Log entries are public: the answer (and any refusal) goes to the moderator privately, as a new message.
            await interaction.response.defer(ephemeral=True, thinking=True)
        value = values[0] if values else ""  # a menu's choice
        if action == "tag":
            await self.answer_suggestion(interaction, target, config, label_by_key(config, key or "").name)
        elif action == "pick":
            await self.answer_suggestion(interaction, target, config, known_label(config, value).name)
        elif action == "none":
            await self.answer_suggestion(interaction, target, config, None)
        elif action == "relabel":
            await self.answer_review(interaction, target, config, "relabel", known_label(config, value).name)
        elif action in ("confirm", "reject"):
            await self.answer_review(interaction, target, config, action)
        elif action == "delete":
            await self.delete_message(interaction, target)
        else:
            await self.timeout_author(interaction, target, value)

    async def answer_suggestion(
        self, interaction: discord.Interaction, target: Target, config: GuildConfig, label: str | None
    ) -> None:
        """A moderator's answer to "Tag message": the label (a tag), or None ("None of these"). Either is a training example."""
        await (
            interaction.response.defer()
        )  # acknowledge the click now: labelling again or the database may take a moment
        suggestion = await self.suggestion(interaction, target, config)
        embedding = Embedding(suggestion.result.vector, suggestion.result.model) if suggestion else None
        text = suggestion.text if suggestion and config.store_text else None
        now = time.time()
        if label is None:
            if suggestion is None:
                raise InvalidInput(
                    "That message has been deleted, so there is nothing to learn from it. Nothing was stored."
                )
            await self.store.reject(
                Rejection(
                    interaction.guild_id,
                    target.channel_id,
                    target.message_id,
                    NONE_OF_THESE,
                    interaction.user.id,
                    now,
                    text,
                ),
                embedding,
            )
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
                note = await self.react(interaction.guild, target, emoji) if emoji else None
            reply = render_tagged(tag, note)
        await interaction.edit_original_response(embed=to_embed(reply), view=None)
        self.schedule_training(interaction.guild_id)

    async def answer_review(
        self,
        interaction: discord.Interaction,
        target: Target,
        config: GuildConfig,
        answer: str,
        other: str | None = None,
    ) -> None:
        """answer: "confirm" the reviewed label, "relabel" as `other`, or "reject" it ("Not this")."""
        review = await self.store.review(interaction.guild_id, target.message_id)
        label = None if answer == "reject" or review is None else review.label if answer == "confirm" else other
        # answer_review checks again in its transaction: of two moderators answering at once, one wins.
        if (
            review is None
            or await self.store.answer_review(interaction.guild_id, target.message_id, interaction.user.id, label)
            is None
        ):
            raise InvalidInput(
                "This review was already answered, or the message's tags were undone (/tags undo). Nothing changed."
            )
        emoji = getattr(config.label(label), "emoji", None) if label else None
        note = await self.react(interaction.guild, target, emoji) if emoji else None
        embed = interaction.message.embeds[0] if interaction.message and interaction.message.embeds else discord.Embed()
        embed.description = clip(
            f"{embed.description or ''}\n\n{render_review_answer(review, interaction.user.id, label)}"
            + (f"\n{note}" if note else ""),
            4096,
        )
        embed.colour = discord.Colour.blurple()
        if interaction.message is not None:
            await interaction.message.edit(
                embed=embed, view=log_view(target)
            )  # the review buttons go; Delete and Timeout stay
        await interaction.edit_original_response(
            embed=to_embed(
                Reply(
                    "Answer saved",
                    [
                        render_review_answer(review, interaction.user.id, label)
                        + ". The bot learns from it at its next training."
                    ],
                )
            )
        )
        self.schedule_training(interaction.guild_id)

    async def delete_message(self, interaction: discord.Interaction, target: Target) -> None:
        channel = interaction.guild.get_channel_or_thread(target.channel_id)
        if channel is None:
            raise InvalidInput("That channel no longer exists, and its messages with it.")
        if not channel.permissions_for(interaction.guild.me).manage_messages:
            raise InvalidInput(f"I need the Manage Messages permission in <#{channel.id}> to delete messages there.")
        reason = audit_reason(f"{interaction.user} ({interaction.user.id})", "Deleted", f"message {target.message_id}")
        try:
            await self.bot.http.delete_message(channel.id, target.message_id, reason=reason)
        except discord.NotFound:
            raise InvalidInput("That message was already deleted.") from None
        except discord.Forbidden:
            raise InvalidInput(f"Discord refused: I may not delete that message in <#{channel.id}>.") from None
        await interaction.edit_original_response(
            embed=to_embed(
                Reply("Message deleted", [f"Deleted message {target.message_id}; the reason is in the audit log."])
            )
        )

    async def timeout_author(self, interaction: discord.Interaction, target: Target, value: str) -> None:
        duration = timeout_duration(value)
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
        await interaction.edit_original_response(
            embed=to_embed(
                Reply(
                    "Member timed out",
                    [f"<@{member.id}> is timed out for {duration_name(duration)}; the reason is in the audit log."],
                )
            )
        )

    @staticmethod
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

    # --- learned labels ----------------------------------------------------------------------
    async def train(self, guild_id: int, *, user: str, background: bool) -> tuple[TrainedLabels, list[tuple[str, str]]]:
        """Fit the server's head on its examples and store it with the label set and embedding model it was trained on."""
        config = await self.store.config(guild_id)
        until = time.time()
        pairs = await self.store.examples(guild_id)
        request = TrainLabelsRequest(
            tuple(label.name for label in config.labels),
            training_examples(pairs, config),
            self.bot.settings.min_examples,
        )
        trained: TrainedLabels = await self.bot.engine.submit(request, user=user, background=background)
        if trained.head is not None:
            await self.store.save_model(
                guild_id, LabelModel(trained.head, config.label_set, trained.used, until, time.time())
            )
        return trained, identical_labels(pairs, config)

    async def training_due(self, guild_id: int) -> bool:
        """Due when the label set or the embedding model changed since the last training, when a label has just
        reached enough examples to be learned, or after RETRAIN_EVERY new answers."""
        config, model = await self.store.config(guild_id), await self.store.label_model(guild_id)
        counts = await self.store.example_counts(guild_id)
        learnable = {
            label.name.casefold()
            for label in config.labels
            if counts.get(label.name.casefold(), 0) >= self.bot.settings.min_examples
        }
        if model is None or not model.fits(config, self.embedding_model):
            return bool(learnable)
        if not learnable <= {label.casefold() for label in model.head.labels}:
            return True
        return await self.store.new_examples(guild_id, model.examples_until) >= self.bot.settings.retrain_every

    def schedule_training(self, guild_id: int) -> None:
        """Retrain in the background lane when due; at most one training per server at a time."""
        running = self.trainings.get(guild_id)
        if running is None or running.done():
            self.trainings[guild_id] = asyncio.create_task(self._train_if_due(guild_id))

    async def _train_if_due(self, guild_id: int) -> None:
        try:
            if await self.training_due(guild_id):
                await self.train(guild_id, user=f"guild:{guild_id}", background=True)
        except (EngineError, StoreBusy) as error:  # the examples are safe in the database: the next answer retries
            log.warning("Background retraining for guild %s did not finish: %s", guild_id, error)
        except Exception:
            log.exception("Background retraining for guild %s failed", guild_id)

    # --- /labelset ---------------------------------------------------------------------------
    @labelset.command(name="add", description="Add a label, or change a label's emoji or description")
    @app_commands.describe(
        label=f"Up to {MAX_LABEL_CHARS} characters",
        emoji="Reacted on a message when this label is confirmed",
        description="A typical message with this label, or what it means (helps the embedding method)",
    )
    @moderator_only
    async def labelset_add(
        self,
        interaction: discord.Interaction,
        label: app_commands.Range[str, 1, MAX_LABEL_CHARS],
        emoji: str | None = None,
        description: app_commands.Range[str, 1, MAX_LABEL_CHARS] | None = None,
    ) -> None:
        name = validate_label(label)
        emoji, description = validate_emoji(emoji), validate_description(name, description)
        created = await self.store.add_label(interaction.guild_id, name, emoji, description)
        changed = emoji is not None or description is not None
        title = f"Added “{name}”" if created else f"Updated “{name}”" if changed else f"“{name}” is already in the set"
        await send(interaction, render_labelset(await self.store.config(interaction.guild_id), clip(title, 200)))
        self.schedule_training(interaction.guild_id)  # a new label set: the learned model is rebuilt for it

    @labelset.command(name="remove", description="Remove a label (tags already given keep it)")
    @app_commands.autocomplete(label=label_names)
    @moderator_only
    async def labelset_remove(self, interaction: discord.Interaction, label: str) -> None:
        name = known_label(await self.store.config(interaction.guild_id), label).name
        await self.store.remove_label(interaction.guild_id, name)
        reply = render_labelset(await self.store.config(interaction.guild_id), clip(f"Removed “{name}”", 200))
        reply.lines.append(
            f"Its tags and examples are kept (add “{clip(name, 100)}” again to use them); learned labels are "
            "retrained without it, and zero-shot labels every message until then."
        )
        await send(interaction, reply)
        self.schedule_training(interaction.guild_id)

    @labelset.command(name="list", description="Show this server's labels and settings")
    @moderator_only
    async def labelset_list(self, interaction: discord.Interaction) -> None:
        await send(interaction, render_labelset(await self.store.config(interaction.guild_id)))

    @labelset.command(name="method", description="How messages are labeled")
    @app_commands.describe(
        method="embedding: fast, one pass per message (default); nli: more accurate, one pass per label"
    )
    @app_commands.choices(method=[app_commands.Choice(name=m, value=m) for m in METHODS])
    @moderator_only
    async def labelset_method(self, interaction: discord.Interaction, method: str) -> None:
        check_choice(method, "method", METHODS)
        config = await self.store.update_settings(interaction.guild_id, method=method)
        await send(interaction, render_labelset(config, f"Method: {method}"))

    @labelset.command(name="threshold", description="The score an auto-tag needs (a channel can set its own)")
    @app_commands.describe(
        value="From 0 to 1; scores of one message add up to at most 1",
        review="Auto-tags scoring from here up to the threshold go to the log channel for review",
    )
    @moderator_only
    async def labelset_threshold(
        self,
        interaction: discord.Interaction,
        value: app_commands.Range[float, 0.0, 1.0],
        review: app_commands.Range[float, 0.0, 1.0] | None = None,
    ) -> None:
        check_number(value, "threshold", 0.0, 1.0)
        if review is not None:
            check_number(review, "review", 0.0, value)
        config = await self.store.update_settings(interaction.guild_id, threshold=value, review_threshold=review)
        await send(interaction, render_labelset(config, f"Threshold: {value:.2f}"))

    @labelset.command(name="train", description="Learn this server's labels from its moderators' tags now")
    @moderator_only
    async def labelset_train(self, interaction: discord.Interaction) -> None:
        require_labels(await self.store.config(interaction.guild_id))
        await interaction.response.defer(ephemeral=True, thinking=True)
        trained, identical = await self.train(interaction.guild_id, user=str(interaction.user.id), background=False)
        await interaction.edit_original_response(
            embed=to_embed(render_trained(trained, identical, self.bot.settings.min_examples))
        )

    @labelset.command(name="report", description="How well learned labels do on your own examples, against zero-shot")
    @moderator_only
    async def labelset_report(self, interaction: discord.Interaction) -> None:
        config = await self.store.config(interaction.guild_id)
        if len(require_labels(config)) < 2:
            raise InvalidInput(
                "The report compares labels with each other: add at least two labels with /labelset add."
            )
        pairs = await self.store.examples(interaction.guild_id)
        examples = training_examples(pairs, config)
        if not any(e.positive and e.label != NONE_OF_THESE for e in examples):
            raise InvalidInput(
                "There are no examples yet. Tag messages with “Tag message” (or answer reviews), then ask again."
            )
        request = EvaluateLabelsRequest(
            tuple(label.name for label in config.labels),
            tuple(label_prompt(label) for label in config.labels),
            examples,
            self.bot.settings.min_examples,
        )
        await interaction.response.defer(ephemeral=True, thinking=True)
        evaluation: LabelEvaluation = await self.bot.engine.submit(request, user=str(interaction.user.id))
        png = await asyncio.to_thread(report_chart, evaluation)  # matplotlib is CPU work: off the event loop
        embed = to_embed(render_report(evaluation, identical_labels(pairs, config), self.bot.settings.min_examples))
        await interaction.edit_original_response(
            embed=embed.set_image(url="attachment://labels-report.png"),
            attachments=[discord.File(io.BytesIO(png), "labels-report.png")],
        )

    @labelset.command(
        name="store_text", description="Keep the text of tagged messages with their tags (off by default)"
    )
    @moderator_only
    async def labelset_store_text(self, interaction: discord.Interaction, enabled: bool) -> None:
        config = await self.store.update_settings(interaction.guild_id, store_text=enabled)
        await send(
            interaction,
            render_labelset(config, "Message text will be stored" if enabled else "Message text will not be stored"),
        )

    # --- /autotag ----------------------------------------------------------------------------
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
        config = await self.store.config(interaction.guild_id)
        require_labels(config)  # refused now rather than silently tagging nothing
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
        await send(interaction, render_watches(await self.store.watches(interaction.guild_id), config, enabled=True))

    @autotag.command(name="disable", description="Stop tagging a channel automatically")
    @moderator_only
    async def autotag_disable(self, interaction: discord.Interaction, channel: discord.TextChannel) -> None:
        if not await self.store.unwatch(interaction.guild_id, channel.id):
            raise InvalidInput(f"{channel.mention} is not auto-tagged.")
        config = await self.store.config(interaction.guild_id)
        await send(
            interaction,
            render_watches(await self.store.watches(interaction.guild_id), config, self.bot.settings.autotag),
        )

    @autotag.command(name="list", description="Channels that are auto-tagged")
    @moderator_only
    async def autotag_list(self, interaction: discord.Interaction) -> None:
        config = await self.store.config(interaction.guild_id)
        await send(
            interaction,
            render_watches(await self.store.watches(interaction.guild_id), config, self.bot.settings.autotag),
        )

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
        channel_id = message.channel.parent_id if isinstance(message.channel, discord.Thread) else message.channel.id
        watch = await self.store.watch_of(message.guild.id, channel_id)
        if watch is None:
            return
        config = await self.store.config(message.guild.id)
        if not config.labels:
            return
        try:
            # The low-priority lane, one queue per guild: people's commands are always served first.
            result = await self.label(
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
        log_channel = message.guild.get_channel(watch.log_channel_id) if watch.log_channel_id else None
        target = Target(message.channel.id, message.id, message.author.id)
        try:  # committed before it is announced anywhere
            if tags:
                await self.store.add_tags(tags)
                entry, view = render_autotag_log(tags, message.content), log_view(target)
            elif result.scores[0] >= config.review_threshold and isinstance(log_channel, discord.TextChannel):
                review = Review(
                    message.guild.id,
                    message.channel.id,
                    message.id,
                    message.author.id,
                    result.labels[0],
                    result.scores[0],
                    result.methods[0],
                    time.time(),
                    text,
                    Embedding(result.vector, result.model),
                )
                await self.store.add_review(review)
                entry, view = render_review(review, message.content), log_view(target, review, config)
            else:
                return
        except Exception:
            log.exception("Could not store the auto-tags of message %s", message.id)
            return
        if isinstance(log_channel, discord.TextChannel):
            try:
                await log_channel.send(embed=to_embed(entry), view=view)
            except discord.HTTPException as error:
                log.warning("Could not post to the auto-tag log channel %s: %s", log_channel.id, error)

    # --- /tags -------------------------------------------------------------------------------
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

    @tags.command(name="export", description="Download this server's tags as a CSV file")
    @app_commands.describe(days="Only the last days (default: everything)")
    @moderator_only
    async def tags_export(
        self, interaction: discord.Interaction, days: app_commands.Range[int, 1, 3650] | None = None
    ) -> None:
        if days is not None:
            check_number(days, "days", 1, 3650, integer=True)
        found = await self.store.tags(interaction.guild_id, since=None if days is None else time.time() - days * 86400)
        data = tags_csv(found)
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
        await send(interaction, PURGE_PROMPT, view=PurgeView(self, interaction.user.id))

    @commands.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        deleted = await self.bot.store.purge(guild.id)  # the bot was removed: keep nothing of that server
        log.info("Left guild %s; deleted its moderation data %s", guild.id, deleted)

    @commands.Cog.listener()
    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        await self.store.unwatch(channel.guild.id, channel.id)


def suggestion_view(target: Target, result: LabelMessageResult) -> discord.ui.View:
    """Under a suggestion: tag the top label, pick another, or none of these. Until answered nothing is stored."""
    view = discord.ui.View(timeout=None)
    top = result.labels[0]
    view.add_item(
        ModerationButton(
            target, "tag", clip(f"Tag as {top}", 80), discord.ButtonStyle.success, row=0, key=label_key(top)
        )
    )
    view.add_item(ModerationButton(target, "none", "None of these", discord.ButtonStyle.secondary, row=0))
    options = [
        discord.SelectOption(label=label, value=label, description=f"score {score:.2f}")
        for label, score in zip(result.labels, result.scores)
    ]
    view.add_item(ModerationSelect(target, "pick", "Or pick another label", options, row=1))
    return view


def log_view(target: Target, review: Review | None = None, config: GuildConfig | None = None) -> discord.ui.View:
    """Under a log entry: Delete message and Timeout author, and for a review Confirm, another label, or Not this."""
    view = discord.ui.View(timeout=None)
    row = 0
    if review is not None and config is not None:
        view.add_item(
            ModerationButton(target, "confirm", clip(f"Confirm {review.label}", 80), discord.ButtonStyle.success, row=0)
        )
        view.add_item(ModerationButton(target, "reject", "Not this", discord.ButtonStyle.secondary, row=0))
        options = [discord.SelectOption(label=label.name, value=label.name) for label in config.labels]
        view.add_item(ModerationSelect(target, "relabel", "Another label", options, row=1))
        row = 2
    view.add_item(ModerationButton(target, "delete", "Delete message", discord.ButtonStyle.danger, row=row))
    durations = [discord.SelectOption(label=name, value=str(seconds)) for name, seconds in TIMEOUTS.items()]
    view.add_item(ModerationSelect(target, "timeout", "Timeout author…", durations, row=row + 1))
    return view


async def dispatch(
    interaction: discord.Interaction, action: str, target: Target, key: str | None, values: list[str]
) -> None:
    """A click, routed to the cog; errors get the same private messages as commands (a DynamicItem's would only be logged)."""
    cog = interaction.client.get_cog("Moderation")
    try:
        if cog is None:
            raise InvalidInput("Moderation is not loaded on this bot right now. Try again in a moment.")
        await cog.on_component(interaction, action, target, key, values)
    except Exception as error:
        await interaction.client.on_app_command_error(interaction, error)


class ModerationButton(discord.ui.DynamicItem[discord.ui.Button], template=custom_id_template(BUTTONS)):
    def __init__(
        self,
        target: Target,
        action: str,
        label: str,
        style: discord.ButtonStyle,
        *,
        row: int | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(discord.ui.Button(label=label, style=style, custom_id=target.custom_id(action, key)), row=row)
        self.target, self.action, self.key = target, action, key

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str]
    ) -> ModerationButton:
        return cls(Target.of(match), match["action"], item.label or "", item.style, key=match["key"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await dispatch(interaction, self.action, self.target, self.key, [])


class ModerationSelect(discord.ui.DynamicItem[discord.ui.Select], template=custom_id_template(MENUS)):
    def __init__(
        self,
        target: Target,
        action: str,
        placeholder: str,
        options: list[discord.SelectOption],
        *,
        row: int | None = None,
    ) -> None:
        super().__init__(
            discord.ui.Select(placeholder=placeholder, options=options, custom_id=target.custom_id(action)), row=row
        )
        self.target, self.action = target, action

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Select, match: re.Match[str]
    ) -> ModerationSelect:
        return cls(Target.of(match), match["action"], item.placeholder or "", item.options)

    async def callback(self, interaction: discord.Interaction) -> None:
        await dispatch(interaction, self.action, self.target, None, list(self.item.values))


class PurgeView(discord.ui.View):
    def __init__(self, cog: Moderation, admin_id: int) -> None:
        super().__init__(timeout=120)
        self.cog, self.admin_id = cog, admin_id

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return interaction.user.id == self.admin_id

    async def on_error(self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item) -> None:
        await self.cog.bot.on_app_command_error(interaction, error)  # type: ignore[arg-type]

    @discord.ui.button(label="Delete everything", style=discord.ButtonStyle.danger, custom_id="purge:confirm")
    async def purge(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.defer()
        deleted = await self.cog.bot.store.purge(interaction.guild_id)
        self.stop()
        await interaction.edit_original_response(embed=to_embed(render_purged(deleted)), view=None)

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary, custom_id="purge:cancel")
    async def cancel(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.stop()
        await interaction.response.edit_message(
            embed=to_embed(Reply("Nothing deleted", ["The purge was cancelled."], tone="info")), view=None
        )


async def setup(bot: HFBot) -> None:
    await bot.add_cog(Moderation(bot))
