"""The Discord bot: loads the cogs, owns the engine, and turns command-layer
replies into deferred, queued, streamed Discord answers."""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from .commands import (
    DESCRIPTION_LIMIT,
    Reply,
    build_request,
    clip,
    model_role,
    model_suggestions,
    render_apology,
    render_error,
    render_partial,
    render_result,
    render_waiting,
)
from .engine import Engine, EngineError, GenerationRequest, Job
from .settings import Settings
from .storage import Storage, StoreBusy

log = logging.getLogger(__name__)

EXTENSIONS = (
    "cogs.sentiment",
    "cogs.generation",
    "cogs.labeling",
    "cogs.fill_mask",
    "cogs.tokens",
    "cogs.status",
    "cogs.labelsets",
    "cogs.tagging",
    "cogs.autotag",
    "cogs.reviews",
    "cogs.learning",
    "cogs.tags",
    "cogs.chat",
    "cogs.compare",
)
COLOURS = {
    "ok": discord.Colour.blurple(),
    "info": discord.Colour.light_grey(),
    "busy": discord.Colour.orange(),
    "error": discord.Colour.red(),
}
INTERACTION_LIFETIME = 15 * 60  # seconds an interaction token can still be answered
Edit = Callable[
    ..., Awaitable[Any]
]  # edits the answer being written: interaction.edit_original_response or Message.edit


def to_embed(reply: Reply) -> discord.Embed:
    """A Reply within Discord's embed limits (title 256, description 4096, fields 25 x 1024)."""
    embed = discord.Embed(
        title=clip(reply.title, 256),
        description=clip(reply.text, DESCRIPTION_LIMIT) or None,
        colour=COLOURS.get(reply.tone, COLOURS["ok"]),
    )
    for name, value in reply.fields[:25]:
        embed.add_field(name=clip(name, 256), value=clip(value, 1024) or "–", inline=reply.side_by_side)
    if reply.footer:
        embed.set_footer(text=clip(reply.footer, 2048))
    return embed


async def suggest_models(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    """Autocomplete of every `model:` option: the allowed models of the command's role
    (for /compare, of the task picked so far). Free text still reaches the engine, which checks it."""
    options = {name: value for name, value in interaction.namespace}  # (dict() would call its missing .keys)
    name = interaction.command.name if interaction.command else ""
    command = options.get("task") if name == "compare" else name
    if not command:
        return []
    role = model_role(command, options, interaction.client.settings)
    return [
        app_commands.Choice(name=model, value=model)
        for model in model_suggestions(interaction.client.settings, role, current)
    ]


@dataclass
class Writing:
    """A request being answered: its job, and the text streamed so far (what Stop keeps)."""

    job: Job
    request: Any
    text: str = ""
    stopped: bool = False  # the member pressed Stop: the answer keeps `text`


class HFBot(commands.AutoShardedBot):
    """One gateway connection below ~1,000 servers (discord.py's advice); SHARD_COUNT and SHARD_IDS
    split the shards between several processes. `engine=None` only publishes commands (`python -m bot sync`)."""

    def __init__(self, settings: Settings, engine: Engine | None) -> None:
        # Slash commands need no voice: don't greet every start with "PyNaCl is not installed".
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        intents = discord.Intents.default()  # slash commands need no privileged intent;
        # Auto-tagging and chat threads read messages that don't mention the bot: privileged, opt-in.
        intents.message_content = settings.autotag or settings.chat_threads
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            # Model output and echoed input must never ping @everyone, roles or users.
            allowed_mentions=discord.AllowedMentions.none(),
            shard_count=settings.shard_count,
            shard_ids=list(settings.shard_ids) if settings.shard_ids else None,
        )
        self.settings = settings
        self.engine = engine  # the caller's: whoever creates the engine closes it (after the bot)
        self.store = Storage(settings.database_path)  # opened in setup_hook
        self.stream_interval = 1.0  # at most one streamed edit a second (Discord rate limits)
        self.queue_interval = 2.0  # how often the queue position is refreshed
        self.writing: dict[int, Writing] = {}  # answer message id -> what is being written there (for Stop)
        self.pressed: set[int] = set()  # answer message ids whose Regenerate or Continue is being handled
        self.tree.on_error = self.on_app_command_error

    async def setup_hook(self) -> None:
        if self.engine is None:  # publishing commands: no database, no models
            await self.load_commands()
            return
        await self.store.open()
        await self.engine.start()
        await self.load_commands()
        if self.settings.dev_guild_id:  # development: guild commands update instantly
            guild = discord.Object(id=self.settings.dev_guild_id)
            self.tree.copy_global_to(guild=guild)
            await self.tree.sync(guild=guild)
            log.info("Synced commands to the development guild %s", self.settings.dev_guild_id)

    async def load_commands(self) -> None:
        for extension in EXTENSIONS:
            await self.load_extension(extension)

    async def close(self) -> None:
        await super().close()  # unloads the cogs, which stop their background work
        await self.store.close()

    async def on_message(self, message: discord.Message) -> None:
        """No text commands: messages only reach the cogs' listeners (a chat message that mentions the bot
        is not a command to look up)."""

    async def on_ready(self) -> None:
        log.info("Logged in as %s (%s)", self.user, getattr(self.user, "id", "?"))

    # --- answering -------------------------------------------------------------------------
    async def answer(
        self,
        interaction: discord.Interaction,
        command: str,
        private: bool,
        render: Callable[[Any], Reply] = render_result,
        **options: Any,
    ) -> Any:
        """Defer, queue the request, show the queue position, stream if generating, then answer
        with `render(result)`. Returns the result."""
        # Bad input and a full queue are refused before deferring, so the refusal is private.
        request = build_request(command, options, self.settings)
        job = self.submit(request, interaction.user.id, interaction.created_at)
        try:
            await interaction.response.defer(thinking=True, ephemeral=private)
            interaction.extras["public"] = not private
            result = await self.follow(Writing(job, request), interaction.edit_original_response)
        finally:
            job.cancel()  # no-op once finished; frees the queue slot if deferring failed
        await interaction.edit_original_response(content=None, embed=to_embed(render(result)))
        return result

    def submit(self, request: Any, user_id: int, asked_at: Any) -> Job:
        """Queue a request on behalf of a member; refuses at once (Busy) when the queue is full."""
        age = (discord.utils.utcnow() - asked_at).total_seconds()
        # Past the token's lifetime nobody can see the answer: drop it rather than run it.
        timeout = min(self.settings.request_timeout, INTERACTION_LIFETIME - 30 - age)
        return self.engine.submit_job(request, user=str(user_id), timeout=timeout)

    async def follow(self, writing: Writing, edit: Edit) -> Any:
        """Show a queued job's position and its streamed text through `edit` until it ends; returns its result."""
        job = writing.job
        waiting = asyncio.create_task(self._show_queue(edit, job))
        try:
            if isinstance(writing.request, GenerationRequest):
                await self._stream(edit, writing)
            return await job.result()
        finally:
            # No-op once finished. Otherwise (an edit failed: the answer can no longer be shown)
            # it frees the queue slot, or stops a running generation at its next step.
            job.cancel()
            waiting.cancel()

    async def _show_queue(self, edit: Edit, job: Job) -> None:
        shown = None
        while True:
            await asyncio.sleep(self.queue_interval)
            position = job.position()
            if position is None:
                return
            text = render_waiting(position, job.eta() or 0.0)
            if text != shown:
                try:
                    await edit(content=text)
                except (
                    discord.NotFound
                ):  # the answer is gone (deleted, expired, its thread deleted): nobody will see it
                    job.cancel()
                    return
                shown = text

    async def _stream(self, edit: Edit, writing: Writing) -> None:
        last_edit = -math.inf  # the first chunk is always shown
        loop = asyncio.get_running_loop()
        async for sequence, delta in writing.job.chunks():
            if sequence != 0:
                continue
            writing.text += delta
            if loop.time() - last_edit >= self.stream_interval:
                await edit(content=None, embed=to_embed(render_partial(writing.request, writing.text)))
                last_edit = loop.time()

    # --- one error handler for every command ---------------------------------------------
    async def on_app_command_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        cause = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        if isinstance(cause, EngineError):
            reply = render_error(cause)
        elif isinstance(cause, app_commands.CommandOnCooldown):
            reply = Reply("Slow down", [f"You can use this again in {cause.retry_after:.0f} s."], tone="busy")
        elif isinstance(cause, app_commands.MissingPermissions):
            reply = Reply(
                "Not allowed",
                [
                    "You need the "
                    + ", ".join(p.replace("_", " ") for p in cause.missing_permissions)
                    + " permission for this."
                ],
                tone="error",
            )
        elif isinstance(cause, app_commands.TransformerError):
            reply = Reply(
                "That didn't work",
                [f"I couldn't read the value {cause.value!r}: {clip(str(cause), 200)}"],
                tone="error",
            )
        elif isinstance(cause, StoreBusy):
            reply = Reply("Busy", [str(cause)], tone="busy")
        elif isinstance(cause, app_commands.CheckFailure):
            reply = Reply("Not allowed", ["You can't use this command here."], tone="error")
        else:
            error_id = secrets.token_hex(4)
            command = interaction.command.qualified_name if interaction.command else "?"
            log.error("Error %s in /%s for user %s", error_id, command, interaction.user.id, exc_info=cause)
            reply = render_apology(error_id)
        try:
            if not interaction.response.is_done():
                await interaction.response.send_message(embed=to_embed(reply), ephemeral=True)
            elif interaction.extras.get("public"):
                # Refusals are for the asker only: drop the public "thinking…" and answer privately.
                await interaction.delete_original_response()
                await interaction.followup.send(embed=to_embed(reply), ephemeral=True)
            else:
                await interaction.edit_original_response(content=None, embed=to_embed(reply))
        except discord.HTTPException:
            log.warning("Could not deliver an error message for /%s", interaction.command and interaction.command.name)
