"""The Discord bot: loads the cogs it is given, holds the engine and the store it is given, queues
members' requests, and answers every command's errors privately in one place."""

from __future__ import annotations

import importlib
import logging
import pkgutil
import secrets
from collections.abc import Sequence
from datetime import datetime

import discord
from discord import app_commands
from discord.ext import commands

from .answering import Answering
from .answers import AnswerButton
from .commands import render_apology, render_error
from .embeds import to_embed
from .engine import Engine, EngineError, Job, Request
from .permissions import names
from .policies import AlertLimiter
from .reply import Reply, clip
from .settings import Settings
from .storage import Storage, StoreBusy

log = logging.getLogger(__name__)

INTERACTION_LIFETIME = 15 * 60  # seconds an interaction token can still be answered
# Discord's codes for a token it no longer knows (answered too late, or expired): nobody can be told any more.
DEAD_TOKEN = {10062, 10015}  # Unknown interaction, Unknown Webhook


def cog_extensions(package: str = "cogs") -> list[str]:
    """Every cog module of a package (one per feature; names starting with _ are helpers)."""
    found = importlib.import_module(package)
    return [f"{package}.{m.name}" for m in pkgutil.iter_modules(found.__path__) if not m.name.startswith("_")]


class HFBot(commands.AutoShardedBot):
    """One gateway connection below ~1,000 servers (discord.py's advice); SHARD_COUNT and SHARD_IDS
    split the shards between several processes. `engine=None` only publishes commands (`python -m bot sync`)."""

    def __init__(self, settings: Settings, engine: Engine | None, extensions: Sequence[str] | None = None) -> None:
        # Slash commands need no voice: don't greet every start with "PyNaCl is not installed".
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        intents = discord.Intents.default()  # slash commands need no privileged intent;
        # Auto-tagging and chat threads read messages that don't mention the bot: privileged, opt-in.
        intents.message_content = bool(settings.message_content_settings)
        intents.auto_moderation_execution = True  # in the defaults; named because cogs/automod.py listens to it
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
        self.extensions_to_load = list(cog_extensions() if extensions is None else extensions)
        self.store = Storage(settings.database)  # opened in setup_hook
        self.stream_interval = 1.0  # at most one streamed edit a second (Discord rate limits)
        self.queue_interval = 2.0  # how often the queue position is refreshed
        self.writing: dict[int, Answering] = {}  # answer message id -> what is being written there (for Stop)
        self.pressed: set[int] = set()  # answer message ids whose Regenerate or Continue is being handled
        self.permission_warnings: set[tuple[int, int]] = set()  # (channel id, permissions) already logged
        self.log_limiter = AlertLimiter()  # auto-tag log entries per watched channel: a raid is summarized
        self.tree.on_error = self.on_app_command_error
        self.tree.interaction_check = self.answerable

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
        # Answer buttons route by custom_id, after a restart too, whichever streaming command made them.
        self.add_dynamic_items(AnswerButton)
        for extension in self.extensions_to_load:
            await self.load_extension(extension)

    async def close(self) -> None:
        await super().close()  # unloads the cogs, which stop their background work
        await self.store.close()

    async def on_message(self, message: discord.Message) -> None:
        """No text commands: messages only reach the cogs' listeners (a chat message that mentions the bot
        is not a command to look up)."""

    async def on_ready(self) -> None:
        log.info("Logged in as %s (%s)", self.user, getattr(self.user, "id", "?"))

    def warn_missing(self, channel: discord.abc.Messageable, lacking: discord.Permissions, what: str) -> None:
        """Log that the bot lacks permissions in a channel: once per channel and set of permissions, not per message."""
        channel_id = getattr(channel, "id", 0)
        if (channel_id, lacking.value) in self.permission_warnings:
            return
        self.permission_warnings.add((channel_id, lacking.value))
        log.warning(
            "Missing %s in channel %s (%s) of server %s: %s",
            ", ".join(names(lacking)) or "a permission",
            getattr(channel, "name", "?"),
            channel_id,
            getattr(getattr(channel, "guild", None), "id", "?"),
            what,
        )

    # --- queueing ----------------------------------------------------------------------------
    def submit(self, request: Request, user_id: int, asked_at: datetime) -> Job:
        """Queue a request on behalf of a member; refuses at once (Busy) when the queue is full."""
        age = (discord.utils.utcnow() - asked_at).total_seconds()
        # Past the token's lifetime nobody can see the answer: drop it rather than run it.
        timeout = min(self.settings.request_timeout, INTERACTION_LIFETIME - 30 - age)
        return self.engine.submit_job(request, user=str(user_id), timeout=timeout)

    def queue(self, requests: Sequence[Request], user_id: int, asked_at: datetime) -> Answering:
        """Queue requests (two for /compare) on behalf of a member: all of them, or none."""
        return Answering.submit(lambda request: self.submit(request, user_id, asked_at), requests)

    async def answerable(self, interaction: discord.Interaction) -> bool:
        """A command that reaches the bot after its token expired (a backlog after an outage) is dropped:
        nobody could see its answer."""
        age = (discord.utils.utcnow() - interaction.created_at).total_seconds()
        if age < INTERACTION_LIFETIME:
            return True
        log.warning("Dropped /%s from %.0f s ago: its token has expired", _name(interaction), age)
        return False

    # --- one error handler for every command ---------------------------------------------
    async def on_app_command_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        cause = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        if isinstance(cause, discord.NotFound) and cause.code in DEAD_TOKEN:
            log.warning("Discord no longer knows the interaction of /%s (answered too late?)", _name(interaction))
            return
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
            log.error("Error %s in /%s for user %s", error_id, _name(interaction), interaction.user.id, exc_info=cause)
            reply = render_apology(error_id)
        embed = to_embed(reply)
        try:
            if not interaction.response.is_done():
                await interaction.response.send_message(embed=embed, ephemeral=True)
                return
            try:
                if interaction.extras.get("public"):
                    # Refusals are for the asker only: drop the public "thinking…" and answer privately.
                    await interaction.delete_original_response()
                    await interaction.followup.send(embed=embed, ephemeral=True)
                else:
                    await interaction.edit_original_response(content=None, embed=embed)
            except discord.HTTPException as failed:
                if failed.code in DEAD_TOKEN:
                    raise
                # Discord failed that call (its 5xx): a new private message may still get through.
                await interaction.followup.send(embed=embed, ephemeral=True)
        except discord.HTTPException:
            log.warning("Could not deliver an error message for /%s", _name(interaction))


def _name(interaction: discord.Interaction) -> str:
    return interaction.command.qualified_name if interaction.command else "?"
