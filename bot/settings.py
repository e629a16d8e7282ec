"""One validated settings object, read from the environment (and `.env` via python-dotenv)."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .engine import EngineConfig
from .engine.config import runs_on_cuda
from .engine.openai_backend import OpenAIGenerationExecutor
from .engine.request import MAX_TEXT_CHARS
from .specs import roles
from .specs.generation import DEFAULT_CHAT_MAX_NEW_TOKENS, MAX_NEW_TOKENS
from .specs.zero_shot import METHODS
from .storage import DATABASE_URL_SCHEMES

PROFILES = ("online", "offline")
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "float16", "bfloat16")
GENERATION_BATCHING = ("auto", "continuous", "static")
ENGINE_BACKENDS = ("local", "ray")
GENERATION_BACKENDS = ("local", "openai")
DEFAULT_MIN_EXAMPLES = 5  # a label is learned from this many confirmed tags; with fewer it uses zero-shot
DEFAULT_RETRAIN_EVERY = 10  # new moderator answers between background retrainings
SHOWN_CHARS = 60  # of a bad value, in its message
DEFAULT_ASK_PER_DAY = 5  # "Help me learn": questions a server's moderators get per day, at most
MAX_ASK_PER_DAY = 100
MAX_CHOICE_CHARS = 100  # Discord's limit for an autocomplete choice's value: a listed model id must fit
BOOLEANS = {"true": True, "yes": True, "1": True, "on": True, "false": False, "no": False, "0": False, "off": False}


def boolean(raw: str) -> bool:
    if raw.lower() not in BOOLEANS:
        raise ValueError(raw)
    return BOOLEANS[raw.lower()]


def model_list(raw: str) -> tuple[str, ...]:
    models = tuple(part.strip() for part in raw.split(",") if part.strip())
    if len(set(models)) != len(models):
        raise ValueError(raw)
    return models


def host(raw: str) -> str:
    """An IP address or a host name to bind to (whether it is this machine's is known only when binding)."""
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        if not re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*", raw):
            raise
        return raw


def shard_list(raw: str) -> tuple[int, ...] | None:
    if not raw:
        return None
    ids = tuple(int(part) for part in raw.split(","))
    if min(ids) < 0:
        raise ValueError(raw)
    return ids


ROLES_BEGIN, ROLES_END = "# >>> model roles", "# <<< model roles"


def role_settings() -> str:
    """.env.example's lines for every model role the task specs declare (tests keep the file equal to it)."""
    lines = [f"{ROLES_BEGIN} (one block per role, as the task specs in bot/specs/ declare them)"]
    for role in roles().values():
        gpu = f" (on a CUDA GPU: {role.online_gpu})" if role.online_gpu else ""
        online, offline = role.online + gpu, role.offline or "none"
        if role.online_choices:
            online += f" (and {', '.join(role.online_choices)})"
        if role.offline_choices:
            offline += f" (and {', '.join(role.offline_choices)})"
        lines += [
            f"# {role.name}: {role.description}",
            f"#   online: {online} · offline: {offline}",
            f"{role.setting}=",
            f"{role.list_setting}=",
        ]
    return "\n".join([*lines, ROLES_END])


class SettingsError(ValueError):
    """A bad setting; the message names the variable so start-up can say what to fix."""


@dataclass(frozen=True)
class Settings:
    discord_token: str | None
    dev_guild_id: int | None
    profile: str
    engine: EngineConfig
    label_method: str  # default method of /label
    request_timeout: float  # seconds a request may wait; interaction tokens live 15 minutes
    log_level: str
    database_path: Path = Path("data/bot.sqlite3")  # moderators' label sets and tags (SQLite)
    database_url: str | None = None  # PostgreSQL for several machines (or sqlite:///path); wins over database_path
    autotag: bool = False  # channel auto-tagging; needs the privileged Message Content intent
    min_examples: int = DEFAULT_MIN_EXAMPLES
    retrain_every: int = DEFAULT_RETRAIN_EVERY
    ask_per_day: int = DEFAULT_ASK_PER_DAY  # 0: the bot never asks
    shard_count: int | None = None  # None: discord.py asks Discord for the recommended count
    shard_ids: tuple[int, ...] | None = None  # the shards this process runs; None: all of them
    system_prompt: str | None = None  # /chat's system prompt where a server has set none (and the console's)
    chat_threads: bool = False  # read every message in chat threads; needs the privileged Message Content intent
    chat_max_new_tokens: int = DEFAULT_CHAT_MAX_NEW_TOKENS  # the length limit of a /chat answer

    @property
    def database(self) -> Path | str:
        """What the store opens: DATABASE_URL, else the SQLite file at DATABASE_PATH."""
        return self.database_url or self.database_path

    @property
    def message_content_settings(self) -> tuple[str, ...]:
        """The settings that ask for the privileged Message Content intent: each reads messages that don't mention
        the bot. Empty: the bot runs without it."""
        return tuple(name for name, on in (("AUTOTAG", self.autotag), ("CHAT_THREADS", self.chat_threads)) if on)

    def __repr__(self) -> str:  # never print the token
        token = "set" if self.discord_token else "unset"
        return f"Settings(profile={self.profile!r}, token={token}, dev_guild_id={self.dev_guild_id})"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, profile: str | None = None) -> Settings:
        env = os.environ if env is None else env

        def get(name: str, default: str = "") -> str:
            # An empty value (as in .env.example) means "use the default".
            return env.get(name, "").strip() or default

        def parse(
            name: str,
            default: str,
            convert: Callable[[str], Any],
            what: str,
            check: Callable[[Any], bool] = lambda v: True,
        ) -> Any:
            raw = get(name, default)
            # A long value (a system prompt) is named by its start, so the message stays one line.
            shown = repr(raw) if len(raw) <= SHOWN_CHARS else f"{raw[:SHOWN_CHARS]!r}… ({len(raw)} characters)"
            try:
                value = convert(raw)
            except ValueError:
                raise SettingsError(f"{name}={shown} is not valid: expected {what}.") from None
            if not check(value):
                raise SettingsError(f"{name}={shown} is not valid: expected {what}.")
            return value

        def choice(name: str, default: str, choices: tuple[str, ...]) -> str:
            return parse(name, default, str.lower, "one of " + ", ".join(choices), lambda v: v in choices)

        chosen = profile or choice("MODEL_PROFILE", "online", PROFILES)
        if chosen not in PROFILES:
            raise SettingsError(f"--profile {chosen!r} is not valid: expected one of {', '.join(PROFILES)}.")
        offline = chosen == "offline"
        device = get("DEVICE", "auto").lower()
        if device not in DEVICES and not re.fullmatch(r"cuda:\d+", device):
            raise SettingsError(f"DEVICE={device!r} is not valid: expected auto, cpu, cuda, cuda:N or mps.")
        positive = lambda v: v > 0  # noqa: E731
        seconds = lambda v: 0 < v < float("inf")  # noqa: E731
        # ROLE_MODELS lists the models a user may pick; ROLE_MODEL, else the list's first, is the default.
        # Neither set: the profile's default, and its second choices.
        declared = roles()
        listed = {
            name: parse(role.list_setting, "", model_list, "model ids separated by commas, each once")
            for name, role in declared.items()
        }
        gpu = runs_on_cuda(device)
        defaults = {name: role.defaults(offline, gpu) for name, role in declared.items()}
        models = {name: get(role.setting) or (listed[name] or defaults[name])[0] for name, role in declared.items()}
        choices = {
            name: listed[name] or (() if get(role.setting) else defaults[name][1:]) for name, role in declared.items()
        }
        for role, listed in choices.items():
            too_long = next(
                (model for model in (models[role], *listed) if listed and len(model) > MAX_CHOICE_CHARS), None
            )
            if too_long:
                raise SettingsError(
                    f"{declared[role].list_setting}: '{too_long[:40]}…' is longer than {MAX_CHOICE_CHARS} characters, "
                    "Discord's limit for an option's value; use a shorter folder path (e.g. a symlink)."
                )
        if get("GENERATION_BACKEND").lower() == "openai":
            # The server's model: the default of its role's list.
            models[OpenAIGenerationExecutor.role] = get("OPENAI_MODEL")
        log_level = choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error")).upper()
        engine = EngineConfig(
            models=models,
            alternatives={role: listed for role, listed in choices.items() if listed},
            decoder_roles=frozenset(name for name, role in declared.items() if role.decoder),
            memory_budget_mb=parse(
                "MODEL_MEMORY_BUDGET_MB",
                "0",
                float,
                "megabytes, 0 or more (0: no limit)",
                lambda v: 0 <= v < float("inf"),
            ),
            device=device,
            dtype=choice("DTYPE", "auto", DTYPES),
            offline=offline,
            cache_dir=Path(get("MODEL_CACHE_DIR", ".cache/models")),
            max_queue=parse("MAX_QUEUE", "64", int, "a positive whole number", positive),
            max_per_user=parse("MAX_PER_USER", "3", int, "a positive whole number", positive),
            max_background=parse("MAX_BACKGROUND", "256", int, "a positive whole number", positive),
            max_batch_tokens=parse("MAX_BATCH_TOKENS", "8192", int, "a positive whole number", positive),
            max_batch_size=parse("MAX_BATCH_SIZE", "32", int, "a positive whole number", positive),
            generation_batching=choice("GENERATION_BATCHING", "auto", GENERATION_BATCHING),
            stall_timeout=parse("STALL_TIMEOUT", "120", float, "seconds, more than 0", seconds),
            torch_threads=parse("TORCH_THREADS", "0", int, "a whole number (0 = one per core)", lambda v: v >= 0),
            metrics_port=parse(
                "METRICS_PORT",
                "0",
                int,
                "a port number from 1 to 65535 (0 or empty: no metrics)",
                lambda v: 0 <= v < 2**16,
            ),
            metrics_host=parse("METRICS_HOST", "127.0.0.1", host, "an IP address or a host name, e.g. 127.0.0.1"),
            log_level=log_level,
            backend=choice("ENGINE_BACKEND", "local", ENGINE_BACKENDS),
            ray_address=get("RAY_ADDRESS"),
            ray_replicas=parse("RAY_REPLICAS", "2", int, "a positive whole number", positive),
            ray_gpus_per_replica=parse(
                "RAY_GPUS_PER_REPLICA", "0", float, "a number of GPUs, 0 or more", lambda v: v >= 0
            ),
            generation_backend=choice("GENERATION_BACKEND", "local", GENERATION_BACKENDS),
            openai_base_url=get("OPENAI_BASE_URL").rstrip("/"),
            openai_api_key=get("OPENAI_API_KEY"),
            openai_model=get("OPENAI_MODEL"),
            openai_timeout=parse("OPENAI_TIMEOUT", "60", float, "seconds, more than 0", seconds),
        )
        if engine.generation_backend == "openai" and not (engine.openai_base_url and engine.openai_model):
            raise SettingsError(
                "GENERATION_BACKEND=openai needs OPENAI_BASE_URL (e.g. http://127.0.0.1:8000/v1) and OPENAI_MODEL."
            )
        shard_count = (
            parse(
                "SHARD_COUNT",
                "0",
                int,
                "a positive whole number (or empty: Discord's recommendation)",
                lambda v: v >= 0,
            )
            or None
        )
        shard_ids = parse(
            "SHARD_IDS",
            "",
            shard_list,
            "shard numbers separated by commas, e.g. 0,1",
            lambda v: v is None or len(set(v)) == len(v),
        )
        database_url = get("DATABASE_URL") or None
        if database_url and not database_url.startswith(DATABASE_URL_SCHEMES):
            # Not echoed: a URL may carry a password.
            raise SettingsError(
                "DATABASE_URL is not valid: expected postgresql://user:password@host:port/database "
                "or sqlite:///path/to/file (or leave it empty for DATABASE_PATH)."
            )
        if shard_ids is not None and (shard_count is None or max(shard_ids) >= shard_count):
            raise SettingsError(
                f"SHARD_IDS={get('SHARD_IDS')!r} needs SHARD_COUNT set, and every id below it (ids start at 0)."
            )
        return cls(
            discord_token=get("DISCORD_TOKEN") or None,
            dev_guild_id=parse("DEV_GUILD_ID", "0", int, "a Discord server id (a number)", lambda v: v >= 0) or None,
            profile=chosen,
            engine=engine,
            label_method=choice("LABEL_METHOD", "embedding" if chosen == "offline" else "nli", METHODS),
            request_timeout=parse("REQUEST_TIMEOUT", "840", float, "seconds, below 900", lambda v: 0 < v < 900),
            log_level=log_level,
            database_path=Path(parse("DATABASE_PATH", "data/bot.sqlite3", str, "a file path", bool)),
            database_url=database_url,
            autotag=parse("AUTOTAG", "false", boolean, "true or false"),
            min_examples=parse(
                "MIN_EXAMPLES",
                str(DEFAULT_MIN_EXAMPLES),
                int,
                "a whole number from 2 to 1000",
                lambda v: 2 <= v <= 1000,
            ),
            retrain_every=parse("RETRAIN_EVERY", str(DEFAULT_RETRAIN_EVERY), int, "a positive whole number", positive),
            ask_per_day=parse(
                "ASK_PER_DAY",
                str(DEFAULT_ASK_PER_DAY),
                int,
                f"a whole number from 0 to {MAX_ASK_PER_DAY}",
                lambda v: 0 <= v <= MAX_ASK_PER_DAY,
            ),
            shard_count=shard_count,
            shard_ids=shard_ids,
            system_prompt=parse(
                "SYSTEM_PROMPT", "", str, f"at most {MAX_TEXT_CHARS} characters", lambda v: len(v) <= MAX_TEXT_CHARS
            )
            or None,
            chat_threads=parse("CHAT_THREADS", "false", boolean, "true or false"),
            chat_max_new_tokens=parse(
                "CHAT_MAX_NEW_TOKENS",
                str(DEFAULT_CHAT_MAX_NEW_TOKENS),
                int,
                f"a whole number from 1 to {MAX_NEW_TOKENS}",
                lambda v: 1 <= v <= MAX_NEW_TOKENS,
            ),
        )
