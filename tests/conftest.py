"""Shared fixtures.

Engine fixtures (this section): tiny random-weight models built once per session by
`tests/model_factory.py`, loaded through the production path (`EngineConfig` ->
`Engine` -> spawned worker process -> `ModelRegistry`). Starting a worker costs a few
seconds, so each distinct model set gets one session-scoped engine that every test
reuses; tests must leave it idle (await or cancel what they submit).

    tiny_models            {kind: Path} of the tiny models (sentiment, nli, fill_mask, gpt2, llama, t5, embedding, ner,
                           marian (en→de), bart (a summarizer that reads 128 tokens))
    tiny_engine            every role on a tiny model, generation = gpt2 (no pad token, no chat template)
    tiny_llama_engine      generation, translation, summarization = tiny llama (chat template); the others unset
    tiny_t5_engine         generation = tiny t5 (seq2seq); zero_shot = a Hub id that is not on this machine,
                           fill_mask = the gpt2 folder (a causal LM: fills by infilling)
    real_engine            the packaged real models (the offline profile); only for @pytest.mark.slow tests

`tiny_engine_config(tiny_models, ...)` builds a config for tests that need a dedicated engine
(e.g. killing the worker).

Database fixtures (tests/databases.py):

    postgres_server        a real PostgreSQL server on 127.0.0.1 for the session (fails, never skips, without one)
    backend                parametrized "sqlite" / "postgres": the test's own empty database on that back-end;
                           `-m "not postgres"` leaves the PostgreSQL cases out
    postgres_backend       a database on the session's server, for tests of PostgreSQL alone
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_asyncio
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from bot.engine import Engine, EngineConfig
from bot.settings import Settings

from .databases import Backend, PostgresBackend, PostgresServer, SQLiteBackend
from .model_factory import build_all

REPO_ROOT = Path(__file__).resolve().parent.parent
# Shared with `make console`: the packaged SmolLM2 GGUF is converted to safetensors once, here.
REAL_MODEL_CACHE = REPO_ROOT / ".cache" / "models"
# A Hub id that is certainly not in any local cache (the Hub is unreachable in tests).
MISSING_MODEL_ID = "no-such-org/no-such-model-for-tests"
# All a child process keeps of this one's environment: what it takes to run Python here.
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")


def bot_settings() -> tuple[str, ...]:
    """Every variable `Settings.from_env` reads, found by watching it read them (so none is forgotten)."""
    read: list[str] = []

    class Watched(dict):
        def get(self, name: str, default: str | None = None) -> str | None:
            read.append(name)
            return default

    Settings.from_env(Watched())
    return tuple(dict.fromkeys(read))


def child_env(**settings: str) -> dict[str, str]:
    """The environment of a child process a test starts, from a known base, not from this one's (where an
    operator's ENGINE_BACKEND, OPENAI_*, STALL_TIMEOUT... may be set): every bot setting present and empty,
    which means its default (and python-dotenv never overrides a variable that is set, so a .env can't fill
    one in), then `settings`."""
    env = {name: os.environ[name] for name in INHERITED if name in os.environ}
    env.update(dict.fromkeys(bot_settings(), ""))
    env.update(HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")  # the Hub is unreachable; output as it comes
    env.update(settings)
    return env


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_all(tmp_path_factory.mktemp("tiny-models"), size="tiny")


def tiny_engine_config(
    tiny_models: dict[str, Path], *, generation: str = "gpt2", cache_dir: Path | None = None, **overrides: object
) -> EngineConfig:
    """Every role on a tiny model (generation = the `generation` kind); `overrides` replace EngineConfig fields,
    and `models={...}` entries replace single roles."""
    models = {
        "sentiment": str(tiny_models["sentiment"]),
        "generation": str(tiny_models[generation]),
        "zero_shot": str(tiny_models["nli"]),
        "fill_mask": str(tiny_models["fill_mask"]),
        "embedding": str(tiny_models["embedding"]),
        "ner": str(tiny_models["ner"]),
        "question_answering": str(tiny_models["qa"]),
        "translation": str(tiny_models["marian"]),
        "summarization": str(tiny_models["bart"]),
    }
    models.update(overrides.pop("models", {}))  # type: ignore[arg-type]
    settings: dict[str, object] = {
        "device": "cpu",  # tiny models: CPU everywhere, so batched == alone holds to float32 precision
        "dtype": "float32",  # DTYPE=auto may pick bf16 here; test_dtype.py compares the two
        "offline": True,
        # Tiny tensors gain nothing from intra-op threads, and several workers share 2 cores in CI.
        "torch_threads": 1,
        "cache_dir": cache_dir or tiny_models["gpt2"].parent / "cache",
        # Wide passes, so the batching tests can put every request of a test into one unit.
        "forward_rows": 32,
        "forward_tokens": 8192,
    }
    settings.update(overrides)
    return EngineConfig(models=models, **settings)  # type: ignore[arg-type]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def tiny_engine(tiny_models):
    async with Engine(tiny_engine_config(tiny_models)) as engine:  # spawns the worker; closes it at the end
        yield engine


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def tiny_llama_engine(tiny_models):
    unconfigured = {
        "sentiment": "",
        "zero_shot": "",
        "fill_mask": "",
        "embedding": "",
        "ner": "",
        "question_answering": "",
    }
    # A chat model asked to translate and to summarize.
    unconfigured.update(translation=str(tiny_models["llama"]), summarization=str(tiny_models["llama"]))
    async with Engine(tiny_engine_config(tiny_models, generation="llama", models=unconfigured)) as engine:
        yield engine


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def tiny_t5_engine(tiny_models):
    broken = {"zero_shot": MISSING_MODEL_ID, "fill_mask": str(tiny_models["gpt2"])}
    async with Engine(tiny_engine_config(tiny_models, generation="t5", models=broken)) as engine:
        yield engine


def lone_generate(model_dir: Path, prompt: str, max_new_tokens: int) -> tuple[str, int, str]:
    """Greedy text, new-token count and finish reason from a plain `generate` call on the same model, in
    this process, counted as the engine counts them: the end-of-text token ends the text and is not counted."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    new = out[0, ids.shape[1] :].tolist()
    stop = next((i for i, token in enumerate(new) if token == tokenizer.eos_token_id), None)
    tokens = new if stop is None else new[:stop]
    return tokenizer.decode(tokens, skip_special_tokens=True), len(tokens), "length" if stop is None else "stop"


def offline_config(**overrides: object) -> EngineConfig:
    """The offline profile's engine, as Settings builds it (the packaged real models), with `overrides`."""
    return dataclasses.replace(Settings.from_env({}, profile="offline").engine, cache_dir=REAL_MODEL_CACHE, **overrides)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def real_engine():
    async with Engine(offline_config()) as engine:
        yield engine


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest_asyncio.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return SQLiteBackend(tmp_path)
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return PostgresBackend(server, await server.new_database())


@pytest_asyncio.fixture
async def postgres_backend(postgres_server: PostgresServer) -> PostgresBackend:
    """For the tests of PostgreSQL alone (mark them `postgres`)."""
    return PostgresBackend(postgres_server, await postgres_server.new_database())
