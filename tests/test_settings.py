"""Settings: defaults per profile, every bad value refused with its variable's name, no token in repr."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bot.engine import config
from bot.engine.config import setting_name
from bot.settings import ROLES_BEGIN, ROLES_END, Settings, SettingsError, role_settings
from bot.specs import roles

from .conftest import REPO_ROOT, bot_settings

ONLINE_MODELS = {name: role.online for name, role in roles().items()}  # on a CPU
OFFLINE_MODELS = {name: role.offline for name, role in roles().items()}
ROLES = tuple(roles())
GPU_CHAT_MODEL, CPU_CHAT_MODEL = "Qwen/Qwen2.5-1.5B-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.fixture(autouse=True)
def no_gpu_here(monkeypatch):
    """Whether a GPU is present is a fact of the machine: every test here runs as on one without, unless it says."""
    monkeypatch.setattr(config, "cuda_gpu_present", lambda: False)


TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GhIjKl.super-secret-token-value"


def test_online_defaults():
    s = Settings.from_env({})
    assert s.profile == "online"
    assert s.engine.models == ONLINE_MODELS and not s.engine.offline
    assert s.label_method == "nli"
    assert (s.engine.device, s.engine.dtype) == ("auto", "auto")
    assert s.engine.cache_dir == Path(".cache/models")
    assert (s.engine.max_queue, s.engine.max_per_user, s.engine.max_background) == (64, 3, 256)
    assert (s.engine.max_batch_tokens, s.engine.max_batch_size, s.engine.torch_threads) == (8192, 32, 0)
    assert s.request_timeout == 840.0 and s.log_level == "INFO"
    assert s.discord_token is None and s.dev_guild_id is None
    assert s.database_path == Path("data/bot.sqlite3") and s.autotag is False


def test_offline_defaults():
    s = Settings.from_env({"MODEL_PROFILE": "offline"})
    assert s.profile == "offline"
    assert s.engine.models == OFFLINE_MODELS and s.engine.offline
    assert s.label_method == "embedding"  # the offline profile has no NLI model by default
    assert s.engine.max_queue == 64 and s.request_timeout == 840.0


def test_profile_argument_overrides_model_profile():
    assert Settings.from_env({"MODEL_PROFILE": "online"}, profile="offline").profile == "offline"
    assert Settings.from_env({"MODEL_PROFILE": "offline"}, profile="online").engine.models == ONLINE_MODELS


def test_empty_values_mean_the_default():
    """As in .env.example, where every optional variable is present but empty."""
    empty = {
        name: ""
        for name in (
            "DEV_GUILD_ID",
            "MODEL_PROFILE",
            "LABEL_METHOD",
            "DEVICE",
            "DTYPE",
            "MAX_QUEUE",
            "REQUEST_TIMEOUT",
            "LOG_LEVEL",
            "DATABASE_PATH",
            "AUTOTAG",
            "DISCORD_TOKEN",
            *(setting_name(role) for role in ROLES),
        )
    }
    s = Settings.from_env(empty)
    assert s == Settings.from_env({})


def test_values_are_read_and_normalised():
    s = Settings.from_env(
        {
            "DISCORD_TOKEN": f"  {TOKEN}  ",
            "DEV_GUILD_ID": "123456789012345678",
            "MODEL_PROFILE": " Offline ",
            "SENTIMENT_MODEL": "/models/sst2",
            "ZERO_SHOT_MODEL": "org/nli",
            "LABEL_METHOD": "NLI",
            "DEVICE": "CUDA:1",
            "DTYPE": "bfloat16",
            "MODEL_CACHE_DIR": "/tmp/cache",
            "MAX_QUEUE": " 5 ",
            "MAX_PER_USER": "1",
            "MAX_BACKGROUND": "7",
            "MAX_BATCH_TOKENS": "100",
            "MAX_BATCH_SIZE": "2",
            "TORCH_THREADS": "0",
            "REQUEST_TIMEOUT": "1.5",
            "LOG_LEVEL": "debug",
            "DATABASE_PATH": "/tmp/x.sqlite3",
            "AUTOTAG": "yes",
            "GENERATION_BATCHING": "Static",
            "STALL_TIMEOUT": "30",
        }
    )
    assert s.discord_token == TOKEN and s.dev_guild_id == 123456789012345678
    assert s.profile == "offline" and s.label_method == "nli"
    assert s.engine.models["sentiment"] == "/models/sst2" and s.engine.models["zero_shot"] == "org/nli"
    assert s.engine.models["generation"] == OFFLINE_MODELS["generation"]  # unset roles keep the profile's model
    assert (s.engine.device, s.engine.dtype, s.engine.cache_dir) == ("cuda:1", "bfloat16", Path("/tmp/cache"))
    assert (s.engine.max_queue, s.engine.max_per_user, s.engine.max_background) == (5, 1, 7)
    assert (s.engine.max_batch_tokens, s.engine.max_batch_size) == (100, 2)
    assert s.request_timeout == 1.5 and s.log_level == "DEBUG"
    assert (s.engine.generation_batching, s.engine.stall_timeout) == ("static", 30.0)
    assert s.database_path == Path("/tmp/x.sqlite3") and s.autotag is True


def test_reads_os_environ_by_default(monkeypatch):
    monkeypatch.setenv("MAX_QUEUE", "9")
    monkeypatch.setenv("MODEL_PROFILE", "offline")
    s = Settings.from_env()
    assert s.engine.max_queue == 9 and s.profile == "offline"


BAD = [
    ("CHAT_MAX_NEW_TOKENS", "0"),
    ("CHAT_MAX_NEW_TOKENS", "257"),
    ("CHAT_MAX_NEW_TOKENS", "long"),
    ("MODEL_PROFILE", "cloud"),
    ("DEVICE", "tpu"),
    ("DTYPE", "float64"),
    ("LABEL_METHOD", "svm"),
    ("LOG_LEVEL", "verbose"),
    ("MAX_QUEUE", "abc"),
    ("MAX_QUEUE", "0"),
    ("MAX_QUEUE", "-3"),
    ("MAX_QUEUE", "2.5"),
    ("MAX_PER_USER", "0"),
    ("MAX_BACKGROUND", "lots"),
    ("MAX_BATCH_TOKENS", "1e4"),
    ("MAX_BATCH_SIZE", "0"),
    ("TORCH_THREADS", "-1"),
    ("DEV_GUILD_ID", "my-server"),
    ("DEV_GUILD_ID", "-5"),
    ("REQUEST_TIMEOUT", "0"),
    ("REQUEST_TIMEOUT", "900"),  # interaction tokens live 15 minutes
    ("REQUEST_TIMEOUT", "nan"),
    ("REQUEST_TIMEOUT", "inf"),
    ("REQUEST_TIMEOUT", "soon"),
    ("AUTOTAG", "maybe"),
    ("GENERATION_BATCHING", "dynamic"),
    ("STALL_TIMEOUT", "0"),
    ("STALL_TIMEOUT", "inf"),
    ("STALL_TIMEOUT", "never"),
    ("METRICS_PORT", "http"),
    ("METRICS_PORT", "-1"),
    ("METRICS_PORT", "65536"),
    ("METRICS_PORT", "9100.5"),
    ("METRICS_HOST", "not a host"),
    ("METRICS_HOST", "http://127.0.0.1"),
    ("METRICS_HOST", "127.0.0.1:9100"),
    ("MIN_EXAMPLES", "1"),  # a label needs two examples at least to be learned
    ("MIN_EXAMPLES", "1001"),
    ("MIN_EXAMPLES", "five"),
    ("RETRAIN_EVERY", "0"),
    ("RETRAIN_EVERY", "often"),
    ("OPENAI_TIMEOUT", "0"),
    ("OPENAI_TIMEOUT", "-5"),
    ("OPENAI_TIMEOUT", "inf"),
    ("OPENAI_TIMEOUT", "slow"),
    ("CHAT_THREADS", "maybe"),
]


@pytest.mark.parametrize(("name", "value"), BAD, ids=[f"{n}={v}" for n, v in BAD])
def test_every_bad_value_names_its_variable(name, value):
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({name: value})
    message = str(refused.value)
    assert message.startswith(f"{name}=")
    assert repr(value.strip().lower() if name == "DEVICE" else value) in message
    assert "expected" in message
    assert isinstance(refused.value, ValueError)


def test_metrics_are_off_by_default_and_bound_to_loopback():
    default = Settings.from_env({}).engine
    assert (default.metrics_port, default.metrics_host) == (0, "127.0.0.1")
    assert Settings.from_env({"METRICS_PORT": "", "METRICS_HOST": ""}).engine == default
    for host in ("0.0.0.0", "::", "metrics.internal", "localhost"):
        engine = Settings.from_env({"METRICS_PORT": " 9100 ", "METRICS_HOST": host}).engine
        assert (engine.metrics_port, engine.metrics_host) == (9100, host)


def test_a_too_long_system_prompt_is_named_by_its_start():
    prompt = "You are a helpful assistant." + " Be brief." * 200  # 2028 characters; a chat message holds 2000
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"SYSTEM_PROMPT": prompt})
    message = str(refused.value)
    assert message.startswith("SYSTEM_PROMPT='You are a helpful assistant.") and "… (2028 characters)" in message
    assert message.endswith("expected at most 2000 characters.") and len(message) < 150


@pytest.mark.parametrize("device", ["cuda:abc", "cuda:", "cuda:-1"])
def test_device_cuda_needs_a_number(device):
    with pytest.raises(SettingsError, match="DEVICE"):
        Settings.from_env({"DEVICE": device})


def test_database_url_picks_the_store_and_never_echoes_a_password():
    assert Settings.from_env({}).database == Path("data/bot.sqlite3")  # the embedded default: SQLite
    url = "postgresql://bot:s3cret@db.internal:5432/bot"
    both = Settings.from_env({"DATABASE_URL": url, "DATABASE_PATH": "/tmp/x.sqlite3"})
    assert both.database == url  # DATABASE_URL wins over DATABASE_PATH
    assert Settings.from_env({"DATABASE_URL": "sqlite:////srv/bot.sqlite3"}).database == "sqlite:////srv/bot.sqlite3"
    with pytest.raises(SettingsError, match="DATABASE_URL is not valid: expected postgresql://") as refused:
        Settings.from_env({"DATABASE_URL": "mysql://bot:s3cret@db.internal/bot"})
    assert "s3cret" not in str(refused.value)


def test_a_bad_profile_argument_is_named():
    with pytest.raises(SettingsError, match="--profile 'cloud'"):
        Settings.from_env({}, profile="cloud")


def test_the_token_never_appears_in_repr_or_str():
    s = Settings.from_env({"DISCORD_TOKEN": TOKEN, "DEV_GUILD_ID": "42"})
    assert s.discord_token == TOKEN
    for shown in (repr(s), str(s), f"{s}", f"{s!r}", repr([s]), repr({"settings": s})):
        assert TOKEN not in shown and "super-secret" not in shown
    assert "token=set" in repr(s) and "dev_guild_id=42" in repr(s)
    assert "token=unset" in repr(Settings.from_env({}))
    assert "super-secret" not in repr(s.engine)
    # A copy (e.g. dataclasses.replace in a test or a reload) keeps the guarded repr.
    assert TOKEN not in repr(dataclasses.replace(s, profile="offline"))


def test_settings_are_immutable():
    s = Settings.from_env({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.discord_token = TOKEN  # type: ignore[misc]


def test_env_example_lists_every_model_role_the_specs_declare():
    """.env.example's model section is the registry's: a new task's role shows up there, or this fails."""
    text = (REPO_ROOT / ".env.example").read_text()
    block = text[text.index(ROLES_BEGIN) : text.index(ROLES_END) + len(ROLES_END)]
    assert block == role_settings(), f"Replace the model roles block of .env.example with:\n{role_settings()}"
    example = dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    assert Settings.from_env(example).engine.models == ONLINE_MODELS  # every role's variable read, empty = default


@pytest.mark.parametrize(
    ("device", "gpu_present", "default", "other"),
    [
        ("auto", True, GPU_CHAT_MODEL, CPU_CHAT_MODEL),
        ("auto", False, CPU_CHAT_MODEL, GPU_CHAT_MODEL),
        ("cuda:1", False, GPU_CHAT_MODEL, CPU_CHAT_MODEL),  # the operator says so
        ("cpu", True, CPU_CHAT_MODEL, GPU_CHAT_MODEL),  # a GPU the bot is told not to use
        ("mps", False, CPU_CHAT_MODEL, GPU_CHAT_MODEL),
    ],
)
def test_the_online_chat_default_is_by_device(monkeypatch, device, gpu_present, default, other):
    monkeypatch.setattr(config, "cuda_gpu_present", lambda: gpu_present)
    engine = Settings.from_env({"DEVICE": device}).engine
    # The default first, then the other device's, then the models both list (flan-t5).
    assert engine.allowed("generation") == (default, other, "google/flan-t5-base")
    assert {role: model for role, model in engine.models.items() if role != "generation"} == {
        role: model for role, model in ONLINE_MODELS.items() if role != "generation"
    }  # no other role depends on the device
    offline = Settings.from_env({"DEVICE": device, "MODEL_PROFILE": "offline"}).engine
    assert offline.models == OFFLINE_MODELS  # the packaged weights, whatever the device
    named = Settings.from_env({"DEVICE": device, "GENERATION_MODEL": "org/mine"}).engine
    assert named.allowed("generation") == ("org/mine",)  # a named model is the only one


def test_a_gpu_is_found_without_torch(monkeypatch, tmp_path):
    """The NVIDIA driver's list of GPUs, else nvidia-smi on the PATH."""
    monkeypatch.undo()  # the real detection
    gpus = tmp_path / "gpus"
    monkeypatch.setattr(config, "NVIDIA_GPUS", gpus)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert not config.cuda_gpu_present()  # no driver folder, no nvidia-smi
    gpus.mkdir()
    assert not config.cuda_gpu_present()  # a driver that sees no GPU
    (gpus / "0000:00:1e.0").mkdir()
    assert config.cuda_gpu_present()
    (gpus / "0000:00:1e.0").rmdir()
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\n")
    smi.chmod(0o755)
    assert config.cuda_gpu_present()


def test_env_example_documents_exactly_the_variables_the_settings_read():
    text = (REPO_ROOT / ".env.example").read_text()
    documented = [line.split("=", 1)[0] for line in text.splitlines() if "=" in line and not line.startswith("#")]
    assert sorted(documented) == sorted(bot_settings())


def test_the_readme_names_every_setting():
    readme = (REPO_ROOT / "README.md").read_text()
    assert [name for name in bot_settings() if f"`{name}`" not in readme] == []
