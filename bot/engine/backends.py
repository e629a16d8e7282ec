"""Which executor runs the engine's units: the local worker process, Ray Serve replicas,
and optionally an OpenAI-compatible server for generation (README "Scaling out").
Ray and aiohttp's client are imported only when their backend is chosen."""

from __future__ import annotations

import dataclasses

from .config import EngineConfig
from .requests.base import Request
from .scheduler import Executor, ExecutorInfo, JobEvents


class RoutingExecutor:
    """Generation units to one executor, every other task to another (e.g. the worker)."""

    def __init__(self, default: Executor, generation: Executor) -> None:
        self.default = default
        self.generation = generation

    @property
    def info(self) -> ExecutorInfo:
        # /status and the scheduler's step sizes follow the executor that classifies.
        info, generation = self.default.info, self.generation.info
        return dataclasses.replace(
            info,
            models=(*generation.models, *info.models),
            generation_batching=f"{generation.generation_batching} ({generation.device})",
        )

    async def start(self) -> None:
        await self.generation.start()
        await self.default.start()

    async def close(self) -> None:
        await self.default.close()
        await self.generation.close()

    async def run(self, task: str, jobs: list[tuple[int, Request]], events: JobEvents) -> None:
        await (self.generation if task == "generation" else self.default).run(task, jobs, events)

    def cancel(self, job_id: int) -> None:
        # Job ids are unique across both; the one that does not run it ignores the call.
        self.default.cancel(job_id)
        self.generation.cancel(job_id)


def make_executor(config: EngineConfig) -> Executor:
    executor: Executor
    if config.backend == "ray":
        from .ray_backend import RayExecutor

        executor = RayExecutor(config)
    else:
        from .supervisor import WorkerProcess

        executor = WorkerProcess(config)
    if config.generation_backend == "openai":
        from .openai_backend import OpenAIGenerationExecutor

        executor = RoutingExecutor(executor, OpenAIGenerationExecutor(config))
    return executor
