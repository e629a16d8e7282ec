"""Starting the bot: scaling settings, the sharded gateway, `python -m bot sync` without
the worker or the database, one clear line for what a new user gets wrong, no voice warnings."""

from __future__ import annotations

import dataclasses
import logging
import socket
import sys

import discord
import pytest

from bot.__main__ import _run, _sync, startup_error
from bot.client import HFBot
from bot.engine import Engine, EngineConfig, WorkerCrashed
from bot.engine.prometheus import MetricsUnavailable
from bot.engine.supervisor import WorkerProcess
from bot.settings import Settings, SettingsError

from .conftest import REPO_ROOT, child_env
from .discord_harness import FakeDiscord, Recorder, next_snowflake

TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GhIjKl.not-a-real-token"


def settings(tmp_path, **env: str) -> Settings:
    return Settings.from_env(
        {"DISCORD_TOKEN": TOKEN, "DATABASE_PATH": str(tmp_path / "bot.sqlite3"), "MODEL_PROFILE": "offline", **env}
    )


def test_scaling_settings(tmp_path):
    s = settings(
        tmp_path,
        ENGINE_BACKEND="ray",
        RAY_ADDRESS="auto",
        RAY_REPLICAS="4",
        RAY_GPUS_PER_REPLICA="1",
        GENERATION_BACKEND="openai",
        OPENAI_BASE_URL="http://127.0.0.1:8000/v1/",
        OPENAI_API_KEY="sk-secret",
        OPENAI_MODEL="smollm",
        SHARD_COUNT="4",
        SHARD_IDS="1,3",
    )
    engine = s.engine
    assert (engine.backend, engine.ray_address, engine.ray_replicas, engine.ray_gpus_per_replica) == (
        "ray",
        "auto",
        4,
        1.0,
    )
    assert (engine.generation_backend, engine.openai_base_url, engine.openai_model) == (
        "openai",
        "http://127.0.0.1:8000/v1",
        "smollm",
    )
    assert "sk-secret" not in repr(engine)
    assert (s.shard_count, s.shard_ids) == (4, (1, 3))
    defaults = settings(tmp_path)
    assert (defaults.engine.backend, defaults.engine.generation_backend, defaults.shard_count, defaults.shard_ids) == (
        "local",
        "local",
        None,
        None,
    )


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"ENGINE_BACKEND": "spark"}, "ENGINE_BACKEND"),
        ({"RAY_REPLICAS": "0"}, "RAY_REPLICAS"),
        ({"GENERATION_BACKEND": "openai"}, "OPENAI_BASE_URL"),
        ({"SHARD_IDS": "0,1"}, "SHARD_COUNT"),
        ({"SHARD_COUNT": "2", "SHARD_IDS": "1,2"}, "SHARD_IDS"),
        ({"SHARD_COUNT": "2", "SHARD_IDS": "one"}, "SHARD_IDS"),
        ({"SHARD_COUNT": "4", "SHARD_IDS": "1,1"}, "SHARD_IDS"),
    ],
)
def test_bad_scaling_settings_name_the_variable(tmp_path, env, names):
    with pytest.raises(SettingsError, match=names):
        settings(tmp_path, **env)


async def test_the_bot_is_sharded_as_configured_and_says_nothing_about_voice(tmp_path, caplog):
    discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = (
        True  # as in a fresh process without voice libraries
    )
    with caplog.at_level(logging.WARNING, logger="discord"):
        bot = HFBot(settings(tmp_path, SHARD_COUNT="4", SHARD_IDS="1,3"), None)
    assert isinstance(bot, discord.AutoShardedClient)
    assert (bot.shard_count, bot.shard_ids) == (4, [1, 3])
    assert not [record for record in caplog.records if "voice" in record.getMessage()]
    unsharded = HFBot(settings(tmp_path), None)
    assert (unsharded.shard_count, unsharded.shard_ids) == (None, None)  # discord.py asks Discord how many


async def test_publishing_commands_needs_no_engine_and_no_database(tmp_path):
    async with HFBot(settings(tmp_path), None) as bot:
        await bot.setup_hook()  # what login runs
        names = {command.name for command in bot.tree.get_commands()}
    assert {"sentiment", "generate", "label", "fill", "tokens", "status", "sync"} <= names
    assert not (tmp_path / "bot.sqlite3").exists()


@pytest.mark.parametrize("guild", [None, 123456789012345678])
async def test_sync_publishes_globally_or_to_one_guild(tmp_path, monkeypatch, capsys, guild):
    """`python -m bot sync [--guild ID]`: logs in (no gateway), publishes every command there, and exits."""
    discord_server = Recorder()
    discord_server.application_id = next_snowflake()
    discord_server.bot_user = FakeDiscord._user_payload(discord_server.application_id, "HarnessBot", bot=True)

    async def request(http: discord.http.HTTPClient, route: discord.http.Route, **kwargs: object) -> object:
        return await discord_server.handle_http(route, **kwargs)

    monkeypatch.setattr(discord.http.HTTPClient, "request", request)
    assert await _sync(settings(tmp_path), guild) == 0
    assert list(discord_server.synced_commands) == [guild]  # there, and nowhere else
    published = {command["name"] for command in discord_server.synced_commands[guild]}
    assert {"chat", "generate", "sentiment", "status", "sync", "labelset", "Tag message"} <= published
    where = f"to guild {guild}" if guild else "globally"
    assert capsys.readouterr().out.strip() == f"Synced {len(published)} commands {where}."
    assert not (tmp_path / "bot.sqlite3").exists()  # publishing needs no database (nor a worker)


@pytest.fixture
def discord_unreachable(monkeypatch):
    """Discord's API on a loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(discord.http.Route, "BASE", f"http://127.0.0.1:{port}/api/v10")


@pytest.mark.parametrize("command", [_run, _sync])
async def test_unreachable_discord_is_one_line_and_exit_code_1(tmp_path, discord_unreachable, capsys, command):
    args = (None,) if command is _sync else ()
    code = await command(settings(tmp_path, SHARD_COUNT="2", SHARD_IDS="1"), *args)
    err = capsys.readouterr().err.strip()
    assert code == 1 and "\n" not in err
    assert (
        err.startswith("Can't start the bot (SHARD_IDS=1 of SHARD_COUNT=2): Can't reach Discord") and "network" in err
    )
    assert not (tmp_path / "bot.sqlite3").exists()  # failed before the database (and the worker) started


class FakeResponse:
    """What discord.HTTPException reads from an aiohttp response."""

    def __init__(self, status: int) -> None:
        self.status, self.reason = status, "Service Unavailable"


def test_each_start_up_failure_names_what_to_fix(tmp_path):
    s = settings(tmp_path)
    assert "DISCORD_TOKEN" in startup_error(discord.LoginFailure("Improper token has been passed."), s)
    assert "server error (503)" in startup_error(discord.DiscordServerError(FakeResponse(503), "unavailable"), s)
    assert startup_error(ValueError("a bug"), s) is None
    # Not "can't reach Discord": anything else keeps its traceback.
    assert startup_error(PermissionError("data/bot.sqlite3"), s) is None


@pytest.mark.parametrize(
    ("env", "asked", "not_asked"),
    [
        ({"AUTOTAG": "true"}, "AUTOTAG=true asks for", "CHAT_THREADS"),
        ({"CHAT_THREADS": "true"}, "CHAT_THREADS=true asks for", "AUTOTAG"),
        ({"AUTOTAG": "true", "CHAT_THREADS": "true"}, "AUTOTAG=true and CHAT_THREADS=true ask for", None),
    ],
)
def test_the_intent_error_names_the_settings_that_asked_for_it(tmp_path, env, asked, not_asked):
    s = settings(tmp_path, **env)
    message = startup_error(discord.PrivilegedIntentsRequired(0), s)
    assert "Message Content" in message and asked in message
    assert all(f"{name}=false" in message for name in env)  # each is a way out
    assert not_asked is None or not_asked not in message


async def test_a_metrics_port_in_use_stops_the_bot_with_one_line_before_the_worker_starts(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        engine = Engine(EngineConfig(metrics_port=port))
        with pytest.raises(MetricsUnavailable) as refused:
            await engine.start()  # what the bot's setup_hook runs after logging in
    assert engine.executor.info.pid is None  # no worker was spawned
    message = startup_error(refused.value, settings(tmp_path))
    assert message.startswith(f"Can't serve metrics on 127.0.0.1:{port}") and "METRICS_PORT" in message


# Modules only the worker process (or a Ray replica) imports: they hold the models.
WORKER_SIDE = (
    "bot.engine.tasks",
    "bot.engine.registry",
    "bot.engine.embeddings",
    "bot.engine.finetune",
    "bot.engine.passes",
    "bot.engine.turns",
)


def run_fresh(code: str) -> list[str]:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT, env=child_env()
    )
    return done.stdout.split()


def test_the_bot_process_imports_neither_torch_nor_transformers():
    """Every module the bot process loads — each cog, the client, console, settings, storage, the
    supervisor, every backend's bot side, every task spec — in a fresh interpreter."""
    code = f"""
import importlib, pathlib, sys
files = [*pathlib.Path("bot").rglob("*.py"), *pathlib.Path("cogs").rglob("*.py")]  # (walk_packages would import)
names = [".".join(f.with_suffix("").parts).removesuffix(".__init__") for f in files]
loaded = [name for name in names if not name.startswith({WORKER_SIDE!r})]
for name in loaded:
    importlib.import_module(name)
print(len(loaded), 'torch' in sys.modules, 'transformers' in sys.modules)
"""
    count, torch, transformers = run_fresh(code)
    assert int(count) > 40 and (torch, transformers) == ("False", "False")


def test_the_bot_process_imports_ray_only_for_the_ray_backend():
    code = "import sys, bot.__main__, bot.client, bot.console; print('ray' in sys.modules)"
    assert run_fresh(code) == ["False"]


async def test_a_model_worker_that_cannot_start_is_one_line_naming_the_setting(tmp_path):
    configured = settings(tmp_path)
    worker = WorkerProcess(dataclasses.replace(configured.engine, device="cuda:99"))
    with pytest.raises(WorkerCrashed) as failed:
        await worker.start()
    line = startup_error(failed.value, configured)
    assert line.startswith("The model worker could not start: DEVICE=cuda:99") and "\n" not in line
