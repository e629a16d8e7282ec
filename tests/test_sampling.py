"""Sampling defaults come from the model's own generation_config where the member gives none, and the
result (and its footer) says what was used. Tiny gpt2 copies whose generation_config.json differ."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest_asyncio

from bot.engine import Engine
from bot.specs.generation import GenerationRequest, Sampling, render

from .conftest import tiny_engine_config

TIMEOUT = 120.0
SAMPLER = {"do_sample": True, "temperature": 0.3, "top_p": 0.8, "top_k": 20}  # a model that samples by default
GREEDY = {"do_sample": False, "repetition_penalty": 1.3}  # a model that decodes greedily by default


def with_generation_config(source: Path, folder: Path, settings: dict) -> Path:
    """A copy of a model whose generation_config.json adds `settings`."""
    shutil.copytree(source, folder)
    config_file = folder / "generation_config.json"
    config = json.loads(config_file.read_text()) if config_file.exists() else {}
    config_file.write_text(json.dumps({**config, **settings}))
    return folder


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def models(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("sampling-models")
    sampler = with_generation_config(tiny_models["gpt2"], root / "sampler", SAMPLER)
    greedy = with_generation_config(tiny_models["gpt2"], root / "greedy", GREEDY)
    unconfigured = {"sentiment": "", "zero_shot": "", "fill_mask": "", "embedding": "", "ner": ""}
    config = tiny_engine_config(
        tiny_models, models={**unconfigured, "generation": str(sampler)}, alternatives={"generation": (str(greedy),)}
    )
    async with Engine(config) as engine:
        yield engine, str(sampler), str(greedy)


async def generate(engine: Engine, request: GenerationRequest):
    return await asyncio.wait_for(engine.submit(request, user="sampling"), TIMEOUT)


async def test_without_options_the_models_own_sampling_decodes(models):
    engine, sampler, greedy = models
    sampled = await generate(engine, GenerationRequest("Once upon a time", max_new_tokens=6, model=sampler))
    assert sampled.sampling == Sampling(0.3, 0.8, 20, 1.0)
    assert "temperature 0.3 · top_p 0.8 · top_k 20" in render(sampled).footer

    request = GenerationRequest("Once upon a time", max_new_tokens=12, model=greedy)
    first, second = await generate(engine, request), await generate(engine, request)
    assert first.sampling == Sampling(0.0, repetition_penalty=1.3)
    assert first.texts == second.texts  # greedy, as the model says: the same text every time
    assert "greedy · repetition_penalty 1.3" in render(first).footer


async def test_the_members_values_win_over_the_models(models):
    engine, sampler, greedy = models
    chosen = await generate(
        engine, GenerationRequest("Once upon a time", max_new_tokens=6, temperature=1.1, top_p=0.5, model=sampler)
    )
    assert chosen.sampling == Sampling(1.1, 0.5, 20, 1.0)  # top_k, not an option, stays the model's
    assert (
        await generate(engine, GenerationRequest("Hi", max_new_tokens=4, temperature=0, model=sampler))
    ).sampling == (Sampling(0.0))
    # A top_p alone asks a greedy model to sample, at generate()'s default temperature.
    nudged = await generate(engine, GenerationRequest("Hi", max_new_tokens=4, top_p=0.9, seed=3, model=greedy))
    assert nudged.sampling == Sampling(1.0, 0.9, 0, 1.3)
