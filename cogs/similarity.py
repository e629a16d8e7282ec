"""/similar, as its spec (bot/specs/similarity.py) declares it, and for moderators the "Similar tagged
messages" menu: the server's tagged messages whose stored embeddings are closest to a message's."""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands

from bot.embeds import to_embed
from bot.engine.errors import InvalidInput
from bot.moderation import message_text, render_nearest
from bot.moderation_ui import answer, moderator_only
from bot.slash import TaskCog, slash_command
from bot.specs.similarity import NearestRequest, NearestResult

NO_VECTORS = (
    "No tagged message of this server has a stored embedding yet: a moderator's tag (Tag message, or an answer "
    "in the review queue) keeps one."
)


class Similarity(TaskCog):
    similar = slash_command("similar")

    def __init__(self, bot: Any) -> None:
        super().__init__(bot)
        self.context_menus.append(
            app_commands.ContextMenu(name="Similar tagged messages", callback=self.similar_tagged)
        )

    @app_commands.default_permissions(manage_messages=True)
    @app_commands.guild_only()
    @moderator_only
    async def similar_tagged(self, interaction: discord.Interaction, message: discord.Message) -> None:
        store = self.bot.store.moderation
        text = message_text(message.content)
        labels: dict[int, list[str]] = {}  # message id -> its labels; a message tagged twice is one neighbour
        first = {}
        for tag, embedding in await store.tagged_vectors(interaction.guild_id):
            if tag.message_id != message.id:
                labels.setdefault(tag.message_id, []).append(tag.label)
                first.setdefault(tag.message_id, (tag, embedding))
        if not first:
            raise InvalidInput(NO_VECTORS)
        tagged = [(tag, labels[message_id]) for message_id, (tag, _) in first.items()]
        vectors = tuple((embedding.vector, embedding.model) for _, embedding in first.values())
        store_text = (await store.config(interaction.guild_id)).store_text

        async def show(result: NearestResult) -> dict[str, Any]:
            return {"embed": to_embed(render_nearest(tagged, result.nearest, result.compared, store_text))}

        await answer(interaction, NearestRequest(text, vectors), show)


setup = Similarity.setup
