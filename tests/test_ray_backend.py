"""ENGINE_BACKEND=ray on a real local Ray cluster (2 CPUs, no dashboard, loopback), started
and stopped by this module: 2 Serve replicas run the tiny models through the same task code
as the local worker (`tiny_engine`)."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
import pytest_asyncio

from bot.engine import Busy, Cancelled, Engine, WorkerCrashed
from bot.specs.fill_mask import FillMaskRequest
from bot.specs.generation import GenerationRequest
from bot.specs.sentiment import SentimentRequest
from bot.specs.tokenize import TokenizeRequest
from bot.specs.zero_shot import ZeroShotRequest

from .conftest import tiny_engine_config
from .test_metrics import free_port, scrape, value

ray = pytest.importorskip("ray")  # the scale extra; `make test` installs it
from ray import serve  # noqa: E402

from bot.engine.ray_backend import RayExecutor  # noqa: E402

pytestmark = pytest.mark.scale
TIMEOUT = 180
ROWS = 2  # max_batch_size: a replica takes 3 units at once and the handle queues 2 more (back-pressure test)


class Sink:
    """JobEvents for driving the executor directly."""

    def __init__(self) -> None:
        self.outcomes: dict[int, object] = {}

    def chunk(self, job_id: int, sequence: int, text: str) -> None:
        pass

    def done(self, job_id: int, outcome: object) -> None:
        self.outcomes[job_id] = outcome


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def ray_engine(tiny_models, ray_cluster):
    config = tiny_engine_config(
        tiny_models, backend="ray", ray_replicas=2, max_batch_size=ROWS, metrics_port=free_port()
    )
    async with Engine(config) as engine:
        yield engine


REQUESTS = [
    SentimentRequest(["great goal!", "what a terrible referee"]),
    ZeroShotRequest("the match went to extra time", ["sports", "politics"]),
    FillMaskRequest("The goal was <mask>."),
    TokenizeRequest("Tokenize me, please"),
    GenerationRequest("Once upon a time", max_new_tokens=8, temperature=0.0),
    GenerationRequest("Once upon a time", max_new_tokens=6, num_return_sequences=2, temperature=1.0, seed=3),
]


async def collect(job) -> str:
    return "".join([delta async for sequence, delta in job.chunks() if sequence == 0])


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: f"{r.task}-{getattr(r, 'seed', None)}")
async def test_results_equal_the_local_worker(ray_engine, tiny_engine, request_):
    remote = ray_engine.submit_job(request_, user="u")
    streamed, result = await asyncio.wait_for(asyncio.gather(collect(remote), remote.result()), TIMEOUT)
    local = await asyncio.wait_for(tiny_engine.submit(request_, user="u"), TIMEOUT)
    assert result == local
    if request_.task == "generation":
        assert streamed == result.texts[0]  # chunks arrive in order


async def test_both_replicas_serve_and_status_says_ray(ray_engine, tiny_models):
    executor: RayExecutor = ray_engine.executor
    executor.units_by_replica.clear()
    jobs = [ray_engine.submit_job(SentimentRequest([f"sentence number {i}"] * 2), user=f"user{i}") for i in range(8)]
    await asyncio.wait_for(asyncio.gather(*(job.result() for job in jobs)), TIMEOUT)
    assert len(executor.units_by_replica) == 2 and os.getpid() not in executor.units_by_replica
    status = ray_engine.status()
    assert status.device.startswith("ray: 2 replicas")
    # Each replica's copy of the model, in /status and in the metrics, named by the replica's pid.
    replicas = {str(pid) for pid in executor.units_by_replica}
    sentiment = str(tiny_models["sentiment"])
    assert {m.replica for m in status.models if m.model_id == sentiment} == replicas
    samples = await asyncio.to_thread(scrape, ray_engine.config.metrics_port)
    for replica in replicas:
        assert value(samples, "hfbot_model_memory_bytes", model=sentiment, dtype="float32", replica=replica) > 0


async def test_cancel_stops_the_generation_in_the_replica(ray_engine):
    job = ray_engine.submit_job(GenerationRequest("Once upon a time", max_new_tokens=200, temperature=0.0), user="c")
    await asyncio.wait_for(anext(job.chunks()), TIMEOUT)
    job.cancel()
    with pytest.raises(Cancelled):
        await asyncio.wait_for(job.result(), TIMEOUT)
    await asyncio.wait_for(
        asyncio.gather(*ray_engine.scheduler._units), TIMEOUT
    )  # its stream ended, not just its caller
    assert not ray_engine.executor._streams


async def test_a_replica_killed_mid_request_fails_it_and_the_next_is_served(ray_engine):
    executor: RayExecutor = ray_engine.executor
    job = ray_engine.submit_job(GenerationRequest("Once upon a time", max_new_tokens=200, temperature=0.0), user="k")
    await asyncio.wait_for(anext(job.chunks()), TIMEOUT)  # decoding in a replica now
    restarts = ray_engine.status().worker_restarts
    killed = executor.replica_pids[job.id]
    os.kill(killed, signal.SIGKILL)
    with pytest.raises(WorkerCrashed):
        await asyncio.wait_for(job.result(), TIMEOUT)
    status = ray_engine.status()  # counted at once, and the dead replica's models are gone
    assert status.worker_restarts == restarts + 1 and str(killed) not in {m.replica for m in status.models}
    result = await asyncio.wait_for(ray_engine.submit(SentimentRequest(["still here?"]), user="k"), TIMEOUT)
    assert result.sentences[0].label
    samples = await asyncio.to_thread(scrape, ray_engine.config.metrics_port)
    assert value(samples, "hfbot_worker_restarts_total") == restarts + 1  # the replacement is not counted twice


async def test_serve_back_pressure_becomes_busy(ray_engine):
    # Past the scheduler (as several bot processes sharing the replicas would be): more units,
    # all sent at once, than the replicas take (2 x 3) plus what the handle queues (2).
    executor: RayExecutor = ray_engine.executor
    sink = Sink()
    units = [executor.run("sentiment", [(10_000 + i, SentimentRequest(["so many requests"]))], sink) for i in range(12)]
    outcomes = await asyncio.wait_for(asyncio.gather(*units, return_exceptions=True), TIMEOUT)
    busy = [outcome for outcome in outcomes if isinstance(outcome, Busy)]
    assert busy and "busy" in str(busy[0])
    assert len(sink.outcomes) == len(outcomes) - len(busy)  # every unit taken was answered


async def test_every_command_answers_through_the_replicas(ray_engine, tiny_models, tmp_path):
    import discord

    from bot.client import HFBot
    from bot.settings import Settings

    from .discord_harness import FakeDiscord
    from .test_commands_discord import assert_answered, bot_env, reset

    executor: RayExecutor = ray_engine.executor
    executor.units_by_replica.clear()
    h = await FakeDiscord.create(HFBot(Settings.from_env(bot_env(tiny_models, str(tmp_path))), ray_engine))
    try:
        for name, options, title in [
            ("sentiment", {"text": "I love this bot | The food was awful"}, "Sentiment"),
            ("generate", {"prompt": "The weather today is", "max_new_tokens": 4, "temperature": 0.0}, "Generation"),
            ("label", {"text": "What a goal!", "labels": "sports, politics", "method": "nli"}, None),
            ("fill", {"text": "Paris is the [MASK] of France.", "top_k": 3}, None),
            ("tokens", {"text": "Hello world"}, None),
        ]:
            reset(h)
            await h.invoke_slash(name, options)
            embed = assert_answered(h)
            assert embed["color"] == discord.Colour.blurple().value, embed  # an answer, not an error
            assert title is None or embed["title"] == title
        reset(h)
        await h.invoke_slash("status")
        assert "ray: 2 replicas on cpu" in h.recorder.records[0].embeds[0]["description"]
    finally:
        await h.close()
    assert sum(executor.units_by_replica.values()) == 5
