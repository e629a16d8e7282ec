"""Entry point.

python -m bot                 run the bot (or, without DISCORD_TOKEN, the console demo)
python -m bot console [--json] [--profile offline|online]
python -m bot sync [--guild ID]   publish the slash commands, then exit
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

import aiohttp
import discord
from discord.ext import commands
from dotenv import load_dotenv

from .engine import Engine, WorkerCrashed
from .engine.prometheus import MetricsUnavailable
from .settings import Settings, SettingsError
from .storage import StoreUnreachable

log = logging.getLogger("bot")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="Hugging Face models in Discord.")
    parser.add_argument("mode", nargs="?", choices=("run", "console", "sync"), default="run")
    parser.add_argument("--profile", choices=("online", "offline"), help="override MODEL_PROFILE")
    parser.add_argument("--json", action="store_true", help="console: one JSON object per input line")
    parser.add_argument("--guild", type=int, help="sync: to this guild only (instant) instead of globally")
    args = parser.parse_args(argv)
    load_dotenv()
    try:
        settings = Settings.from_env(profile=args.profile)
    except SettingsError as error:
        print(f"Configuration error: {error} (see .env.example)", file=sys.stderr)
        return 2
    # In --json mode stdout carries only JSON, so logs go to stderr (setup_logging's default).
    discord.utils.setup_logging(level=getattr(logging, settings.log_level))
    mode = args.mode
    if mode in ("run", "sync") and not settings.discord_token:
        if mode == "sync":
            print("DISCORD_TOKEN is not set: there is no bot to sync. See the README.", file=sys.stderr)
            return 2
        print(
            "DISCORD_TOKEN is not set, so the Discord bot can't start. Starting the local console demo "
            "on the offline profile instead (see the README to connect Discord).",
            file=sys.stderr,
        )
        settings = Settings.from_env(profile=args.profile or "offline")
        mode = "console"
    if mode == "console":
        from .console import run_console

        try:
            asyncio.run(run_console(settings, json_mode=args.json))
        except (MetricsUnavailable, WorkerCrashed) as error:  # raised only while starting
            print(f"Can't start the console: {error}", file=sys.stderr)
            return 1
        return 0
    try:
        return asyncio.run(_sync(settings, args.guild) if mode == "sync" else _run(settings))
    except KeyboardInterrupt:
        return 0


def startup_error(error: BaseException, settings: Settings) -> str | None:
    """One line naming what to fix, for the ways a first start fails; None for anything else."""
    if isinstance(error, MetricsUnavailable):
        return str(error)
    if isinstance(error, discord.LoginFailure):
        return (
            "Discord rejected DISCORD_TOKEN. Copy the bot's token again (developer portal -> your app -> Bot -> "
            "Reset Token) into .env."
        )
    if isinstance(error, discord.PrivilegedIntentsRequired):
        asking = settings.message_content_settings
        on, off = (" and ".join(f"{name}={value}" for name in asking) for value in ("true", "false"))
        return (
            f"Discord refused the privileged Message Content intent that {on} {'asks' if len(asking) == 1 else 'ask'} "
            f"for. Switch it on (developer portal -> your app -> Bot -> Message Content Intent), or set {off}."
        )
    if isinstance(error, WorkerCrashed):  # the model worker did not come up (it says why: DEVICE, ...)
        return str(error)
    if isinstance(error, discord.DiscordServerError):
        return f"Discord answered with a server error ({error.status}). Try again in a few minutes."
    if isinstance(error, StoreUnreachable):  # PostgreSQL (DATABASE_URL) down or misnamed; setup_hook opens it
        return str(error)
    # Not any OSError: setup_hook runs inside login, and a database folder we can't write is no network problem.
    if isinstance(error, (discord.GatewayNotFound, aiohttp.ClientConnectionError, ConnectionError)):
        return (
            f"Can't reach Discord ({type(error).__name__}: {error}). Check the network, DNS or proxy of this machine."
        )
    return None


async def _login(bot: commands.Bot, settings: Settings, connect: bool) -> int:
    """Log in (and connect); a failure anyone can fix is one line on stderr and exit code 1."""
    shards = (
        f" (SHARD_IDS={','.join(map(str, settings.shard_ids))} of SHARD_COUNT={settings.shard_count})"
        if settings.shard_ids
        else ""
    )
    try:
        if connect:
            await bot.start(settings.discord_token)
        else:
            await bot.login(settings.discord_token)
    except Exception as error:
        if (message := startup_error(error, settings)) is None:
            raise
        print(f"Can't start the bot{shards}: {message}", file=sys.stderr)
        return 1
    return 0


async def _run(settings: Settings) -> int:
    from .client import HFBot, cog_extensions

    # The caller owns what it injects (discord.py's advanced_startup): the engine outlives the bot.
    # It starts in the bot's setup_hook, after the login: a bad token is reported before any model loads.
    engine = Engine(settings.engine)
    try:
        async with HFBot(settings, engine, cog_extensions()) as bot:
            return await _login(bot, settings, connect=True)
    finally:
        await engine.close()


async def _sync(settings: Settings, guild_id: int | None) -> int:
    from .client import HFBot, cog_extensions

    async with HFBot(settings, None, cog_extensions()) as bot:  # no engine, no database: publishing needs neither
        if code := await _login(bot, settings, connect=False):  # login runs setup_hook, which loads the commands
            return code
        guild = discord.Object(id=guild_id) if guild_id else None
        if guild:
            bot.tree.copy_global_to(guild=guild)
        synced = await bot.tree.sync(guild=guild)
        print(f"Synced {len(synced)} commands {'to guild ' + str(guild_id) if guild else 'globally'}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
