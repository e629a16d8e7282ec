"""/labelset: a server's labels and their settings, and what the bot learned of them (train now, and a report
of learned labels against zero-shot). A discord.py command group belongs to one cog, so train and report are
here; the background retraining is cogs/learning.py."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Awaitable
from typing import Any

import discord
from discord import app_commands

from bot.client import HFBot
from bot.embeds import to_embed
from bot.engine import EngineError, Request
from bot.engine.errors import InvalidInput
from bot.engine.request import check_choice, check_number
from bot.learning import (
    FineTuning,
    finetune,
    keep,
    learning_curve,
    plan_finetune,
    prepare,
    render_curve,
    report_request,
)
from bot.moderation import (
    identical_labels,
    known_label,
    render_fine_tuning,
    render_labelset,
    render_report,
    render_trained,
    report_chart,
    require_labels,
    validate_description,
    validate_emoji,
    validate_label,
)
from bot.moderation_ui import (
    ModerationCog,
    answer,
    embedding_model,
    examples_changed,
    label_names,
    moderator_group,
    moderator_only,
    send,
)
from bot.reply import clip
from bot.specs.learned_labels import LabelEvaluation, TrainedLabels
from bot.specs.zero_shot import MAX_LABEL_CHARS, METHODS
from bot.storage import StoreBusy

log = logging.getLogger(__name__)


class LabelSets(ModerationCog):
    labelset = moderator_group("labelset", "Moderators: the labels this server tags messages with")

    def __init__(self, bot: HFBot) -> None:
        super().__init__(bot)
        self.fine_tunings: dict[int, asyncio.Task] = {}  # guild -> its fine-tuning, at most one each

    async def cog_unload(self) -> None:
        for job in self.fine_tunings.values():
            job.cancel()

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
        examples_changed(self.bot, interaction.guild_id)  # a new label set: the learned model is rebuilt for it

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
        examples_changed(self.bot, interaction.guild_id)

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

    # --- learned labels ----------------------------------------------------------------------
    @labelset.command(name="train", description="Learn this server's labels from its moderators' tags now")
    @moderator_only
    async def labelset_train(self, interaction: discord.Interaction) -> None:
        min_examples = self.bot.settings.min_examples
        training = await prepare(self.store, interaction.guild_id, min_examples)
        require_labels(training.config)

        async def show(trained: TrainedLabels) -> dict[str, Any]:
            await keep(self.store, training, trained)  # saved before the moderator is told
            return {"embed": to_embed(render_trained(trained, training.identical, min_examples))}

        await answer(interaction, training.request, show)

    @labelset.command(
        name="finetune", description="Fine-tune the sentence encoder on this server's tagged messages (background)"
    )
    @moderator_only
    async def labelset_finetune(self, interaction: discord.Interaction) -> None:
        guild_id = interaction.guild_id
        running = self.fine_tunings.get(guild_id)
        if running is not None and not running.done():
            raise InvalidInput("Fine-tuning is already running for this server; /labelset report shows it when done.")
        plan = await plan_finetune(self.store, guild_id, self.bot.settings.min_examples)  # what is missing, in words
        self.fine_tunings[guild_id] = asyncio.create_task(self._finetune(guild_id, plan))
        await interaction.response.send_message(
            "Fine-tuning started in the background (a few minutes); /labelset report shows how it compares.",
            ephemeral=True,
        )

    async def _finetune(self, guild_id: int, plan: FineTuning) -> None:
        try:
            await finetune(self.bot.engine, self.store, guild_id, plan)
        except (EngineError, StoreBusy) as error:  # nothing kept: the moderator can start it again
            log.warning("Fine-tuning for guild %s did not finish: %s", guild_id, error)
        except Exception:
            log.exception("Fine-tuning for guild %s failed", guild_id)

    @labelset.command(name="report", description="How well learned labels do on your own examples, against zero-shot")
    @moderator_only
    async def labelset_report(self, interaction: discord.Interaction) -> None:
        guild_id = interaction.guild_id
        config, pairs = await self.store.config(guild_id), await self.store.examples(guild_id)
        min_examples = self.bot.settings.min_examples
        request = report_request(config, pairs, min_examples)  # what is missing, in words

        encoder = await self.store.encoder(guild_id)
        fits = encoder is not None and encoder.fits(config, embedding_model(self.bot))
        fine_tuning = render_fine_tuning(encoder, config.store_text, fits)

        async def show(evaluation: LabelEvaluation) -> dict[str, Any]:
            def submit(request: Request) -> Awaitable[Any]:  # the moderator's, as the report's request
                return self.bot.submit(request, interaction.user.id, interaction.created_at).result()

            asked = await self.store.asked_messages(guild_id)
            curve = await learning_curve(submit, config, pairs, asked)
            png = await asyncio.to_thread(report_chart, evaluation)  # matplotlib is CPU work: off the event loop
            embed = to_embed(
                render_report(
                    evaluation, identical_labels(pairs, config), min_examples, fine_tuning, render_curve(curve)
                )
            )
            return {
                "embed": embed.set_image(url="attachment://labels-report.png"),
                "attachments": [discord.File(io.BytesIO(png), "labels-report.png")],
            }

        await answer(interaction, request, show)


async def setup(bot: HFBot) -> None:
    await bot.add_cog(LabelSets(bot))
