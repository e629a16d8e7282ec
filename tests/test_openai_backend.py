"""GENERATION_BACKEND=openai against a real OpenAI-compatible server on 127.0.0.1:
`transformers serve` (the scale extra) serving the de-quantized packaged SmolLM2, started
and stopped here. Classification keeps running in the local worker (tiny models)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from bot.engine import (
    Cancelled,
    Engine,
    EngineConfig,
    EngineError,
    InvalidInput,
    ModelUnavailable,
    WorkerCrashed,
)
from bot.engine.backends import RoutingExecutor
from bot.engine.openai_backend import DOWN, LOST
from bot.engine.scheduler import ExecutorInfo
from bot.specs.generation import GenerationRequest
from bot.specs.sentiment import SentimentRequest

from .conftest import offline_config, tiny_engine_config
from .openai_server import Server

pytestmark = pytest.mark.scale
TIMEOUT = 120


@pytest.fixture(scope="session")
def smollm_folder() -> Path:
    """The packaged SmolLM2 as the engine's registry de-quantizes it (once, shared with `make console`)."""
    from bot.engine.registry import ModelRegistry

    return Path(ModelRegistry(offline_config()).source("generation")[0])


@pytest.fixture(scope="module")
def server(smollm_folder: Path) -> Iterator[Server]:
    server = Server(smollm_folder)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def openai_config(tiny_models: dict[str, Path], server: Server, **overrides: object) -> EngineConfig:
    return tiny_engine_config(
        tiny_models,
        generation_backend="openai",
        openai_base_url=server.base_url,
        openai_model=server.model,
        **overrides,
    )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def engine(tiny_models, server):
    async with Engine(openai_config(tiny_models, server)) as engine:
        yield engine


async def collect(job) -> dict[int, str]:
    texts: dict[int, str] = {}
    async for sequence, delta in job.chunks():
        texts[sequence] = texts.get(sequence, "") + delta
    return texts


async def test_chat_streams_from_the_server_and_classification_stays_in_the_worker(engine, server):
    job = engine.submit_job(
        GenerationRequest("Write one short sentence about rain.", max_new_tokens=12, mode="chat", temperature=0.0),
        user="u",
    )
    streamed, result = await asyncio.wait_for(asyncio.gather(collect(job), job.result()), TIMEOUT)
    assert result.texts[0] and streamed == {0: result.texts[0]}  # the chunks, in order, are the answer
    assert result.model == server.model and result.finish_reasons[0] in ("stop", "length")
    assert 0 < result.new_tokens[0] <= 12
    sentiment = await asyncio.wait_for(engine.submit(SentimentRequest(["great goal!"]), user="u"), TIMEOUT)
    assert sentiment.sentences[0].label  # the tiny classifier, in the local worker
    status = engine.status()
    assert (server.model, ("generation",)) in [(m.model_id, m.roles) for m in status.models]
    assert "openai" in status.generation_batching


async def test_a_conversation_reaches_the_server_whole(engine):
    request = GenerationRequest(
        "What is my name?",
        max_new_tokens=12,
        mode="chat",
        temperature=0.0,
        system="Be brief.",
        history=(("user", "My name is Ada."), ("assistant", "Nice to meet you, Ada!")),
    )
    result = await asyncio.wait_for(engine.submit(request, user="u"), TIMEOUT)
    assert "Ada" in result.texts[0], result.texts  # greedy SmolLM2 read the earlier turns
    assert (result.turns_seen, result.dropped_turns) == (2, 0)
    with pytest.raises(InvalidInput, match="Continue is not available"):
        await asyncio.wait_for(
            engine.submit(dataclasses.replace(request, continue_answer="Your name"), user="u"), TIMEOUT
        )


async def test_complete_mode_with_several_sequences_and_a_seed(engine):
    request = GenerationRequest(
        "The capital of France is", max_new_tokens=6, num_return_sequences=2, temperature=1.0, top_p=0.9, seed=7
    )
    job = engine.submit_job(request, user="u")
    streamed, result = await asyncio.wait_for(asyncio.gather(collect(job), job.result()), TIMEOUT)
    assert len(result.texts) == 2 and streamed == {0: result.texts[0], 1: result.texts[1]}
    again = await asyncio.wait_for(engine.submit(request, user="u"), TIMEOUT)
    assert again.texts == result.texts  # the same seed gives the same sequences


async def test_cancel_mid_stream_closes_it_and_the_server_serves_the_next(engine):
    job = engine.submit_job(
        GenerationRequest("Tell me a long story about a dragon.", max_new_tokens=200, mode="chat"), user="u"
    )
    await asyncio.wait_for(anext(job.chunks()), TIMEOUT)  # streaming now
    job.cancel()
    with pytest.raises(Cancelled):
        await asyncio.wait_for(job.result(), TIMEOUT)
    await asyncio.wait_for(asyncio.gather(*engine.scheduler._units), TIMEOUT)  # the unit ends: its stream was closed
    assert not engine.executor.other._jobs
    result = await asyncio.wait_for(engine.submit(GenerationRequest("Hi", max_new_tokens=3), user="u"), TIMEOUT)
    assert result.texts[0]


async def test_server_stopped_then_killed_mid_stream_then_down(tiny_models, smollm_folder):
    server = Server(smollm_folder)
    try:
        server.wait_ready()
        async with Engine(openai_config(tiny_models, server, openai_timeout=10.0)) as engine:
            # Warm up: the first request loads the model.
            await asyncio.wait_for(engine.submit(GenerationRequest("Hi", max_new_tokens=2), user="u"), TIMEOUT)
            long = GenerationRequest("Tell me a long story about a dragon.", max_new_tokens=200, mode="chat")

            job = engine.submit_job(long, user="u")
            await asyncio.wait_for(anext(job.chunks()), TIMEOUT)
            os.kill(server.process.pid, signal.SIGSTOP)  # hung: no chunk comes any more
            with pytest.raises(ModelUnavailable, match="too slow"):
                await asyncio.wait_for(job.result(), TIMEOUT)
            os.kill(server.process.pid, signal.SIGCONT)

            job = engine.submit_job(long, user="u")
            await asyncio.wait_for(anext(job.chunks()), TIMEOUT)
            server.process.kill()
            with pytest.raises(WorkerCrashed) as crashed:
                await asyncio.wait_for(job.result(), TIMEOUT)
            assert str(crashed.value) == LOST
            server.process.wait(30)

            with pytest.raises(ModelUnavailable) as down:
                await asyncio.wait_for(engine.submit(GenerationRequest("Hi", max_new_tokens=2), user="u"), TIMEOUT)
            assert str(down.value) == DOWN
    finally:
        server.stop()


async def test_a_server_that_refuses_the_model_gets_a_clear_message(tiny_models, server):
    config = tiny_engine_config(
        tiny_models, generation_backend="openai", openai_base_url=server.base_url, openai_model="no-such-model"
    )
    async with Engine(config) as engine:
        with pytest.raises(EngineError) as refused:
            await asyncio.wait_for(engine.submit(GenerationRequest("Hi", max_new_tokens=2), user="u"), TIMEOUT)
    assert re.fullmatch(
        r"The text generation server refused this request \(HTTP 4\d\d\); the bot's log says why\.", str(refused.value)
    )


async def test_slash_generate_streams_from_the_server(engine, tiny_models, tmp_path):
    import discord

    from bot.client import HFBot
    from bot.settings import Settings

    from .discord_harness import FakeDiscord
    from .test_commands_discord import assert_answered, bot_env

    h = await FakeDiscord.create(HFBot(Settings.from_env(bot_env(tiny_models, str(tmp_path))), engine))
    try:
        await h.invoke_slash(
            "generate", {"prompt": "Say hello", "max_new_tokens": 6, "temperature": 0.0, "mode": "chat"}
        )
        embed = assert_answered(h)
    finally:
        await h.close()
    assert embed["title"] == "Chat" and embed["color"] == discord.Colour.blurple().value
    assert "SmolLM2" in embed["footer"]["text"]  # the server's model


class PreemptRecorder:
    def __init__(self) -> None:
        self.info = ExecutorInfo(state="running", preemptible=True)
        self.preempted: list[int] = []

    def preempt(self, job_id: int) -> None:
        self.preempted.append(job_id)


def test_routing_gives_up_passes_at_the_executor_that_classifies():
    default, other = PreemptRecorder(), PreemptRecorder()
    routing = RoutingExecutor(default, other)
    assert routing.info.preemptible
    routing.preempt(7)
    assert default.preempted == [7] and other.preempted == []
