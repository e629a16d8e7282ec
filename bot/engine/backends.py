"""Which executor runs the engine's units: the local worker process, Ray Serve replicas,
and optionally an OpenAI-compatible server for generation (README "Scaling out").
Ray and aiohttp's client are imported only when their backend is chosen."""

from __future__ import annotations

import dataclasses

from .config import EngineConfig
from .request import Request
from .scheduler import Executor, ExecutorInfo, JobEvents


class RoutingExecutor:
    """The units of one task (`other.task`) to one executor, every other task's to another (the worker)."""

    def __init__(self, default: Executor, other: Executor) -> None:
        self.default = default
        self.other = other

    @property
    def info(self) -> ExecutorInfo:
        # /status and the scheduler's step sizes follow the executor that classifies.
        info, other = self.default.info, self.other.info
        return dataclasses.replace(
            info,
            models=(*other.models, *info.models),
            generation_batching=f"{other.generation_batching} ({other.device})",
        )

    async def start(self) -> None:
        await self.other.start()
        await self.default.start()

    async def close(self) -> None:
        await self.default.close()
        await self.other.close()

    async def run(self, task: str, jobs: list[tuple[int, Request]], events: JobEvents) -> None:
        await (self.other if task == self.other.task else self.default).run(task, jobs, events)

    def cancel(self, job_id: int) -> None:
        # Job ids are unique across both; the one that does not run it ignores the call.
        self.default.cancel(job_id)
        self.other.cancel(job_id)

    def preempt(self, job_id: int) -> None:
        self.default.preempt(job_id)  # only classification passes are given up, and they run there


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
