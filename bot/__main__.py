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

import discord
from dotenv import load_dotenv

from .engine import Engine
from .settings import Settings, SettingsError

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
        print("DISCORD_TOKEN is not set, so the Discord bot can't start. Starting the local console demo "
              "on the offline profile instead (see the README to connect Discord).", file=sys.stderr)
        settings = Settings.from_env(profile=args.profile or "offline")
        mode = "console"
    if mode == "console":
        from .console import run_console

        asyncio.run(run_console(settings, json_mode=args.json))
        return 0
    if mode == "sync":
        return asyncio.run(_sync(settings, args.guild))
    try:
        asyncio.run(_run(settings))
    except KeyboardInterrupt:
        pass
    return 0


async def _run(settings: Settings) -> None:
    from .client import HFBot

    # The caller owns what it injects (discord.py's advanced_startup): the engine outlives the bot.
    async with Engine(settings.engine) as engine, HFBot(settings, engine) as bot:
        await bot.start(settings.discord_token)


async def _sync(settings: Settings, guild_id: int | None) -> int:
    from .client import HFBot

    async with Engine(settings.engine) as engine, HFBot(settings, engine) as bot:
        await bot.login(settings.discord_token)
        await bot.setup_hook()
        guild = discord.Object(id=guild_id) if guild_id else None
        if guild:
            bot.tree.copy_global_to(guild=guild)
        synced = await bot.tree.sync(guild=guild)
        print(f"Synced {len(synced)} commands {'to guild ' + str(guild_id) if guild else 'globally'}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
