"""The engine's front door: a scheduler feeding one executor (the worker process, or see backends.py), plus status."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import Any

from .backends import make_executor
from .config import EngineConfig, ModelInfo, list_setting_name
from .errors import InvalidInput
from .metrics import Metrics, TaskStats
from .prometheus import MetricsServer
from .request import Request
from .scheduler import Executor, Job, Priority, Scheduler


@dataclass(frozen=True)
class EngineStatus:
    device: str
    dtypes: dict[str, str]  # role -> dtype its model runs in
    generation_batching: str  # continuous | static
    worker_state: str  # starting | running | restarting | stalled, restarting | stopped
    worker_restarts: int
    worker_stalls: int  # of those restarts, the ones after the worker stopped making progress
    models: tuple[ModelInfo, ...]  # the models in memory, most recently used first
    memory_budget_mb: float  # 0: no limit
    queued: int
    queued_background: int
    running: int
    shed: dict[str, int]
    tasks: dict[str, TaskStats]

    @property
    def worker_alive(self) -> bool:
        return self.worker_state == "running"


class Engine:
    """`await engine.submit(request, user=...)` -> result dataclass, or a typed EngineError.

    Whoever creates an engine closes it (`async with Engine(config) as engine:`)."""

    def __init__(self, config: EngineConfig, executor: Executor | None = None) -> None:
        self.config = config
        self.metrics = Metrics()
        self.executor = executor or make_executor(config)
        self.scheduler = Scheduler(
            self.executor,
            metrics=self.metrics,
            max_queue=config.max_queue,
            max_per_user=config.max_per_user,
            max_background=config.max_background,
            max_batch_tokens=config.max_batch_tokens,
            max_batch_size=config.max_batch_size,
        )
        self.metrics_server = MetricsServer(self) if config.metrics_port else None
        self._started = False

    async def start(self) -> None:
        """Start the metrics server (if configured), the worker and the scheduler; calling it again does nothing.
        Raises MetricsUnavailable when the metrics port can't be opened: before any model work starts."""
        if self._started:
            return
        if self.metrics_server is not None:
            self.metrics_server.start(self.config.metrics_host, self.config.metrics_port)
        self._started = True
        try:
            await self.executor.start()
        except BaseException:
            await self._close_metrics()  # the worker could not start: nothing to report, free the port
            raise
        self.scheduler.start()

    async def close(self) -> None:
        self._started = False
        await self.scheduler.close()
        await self.executor.close()
        await self._close_metrics()

    async def _close_metrics(self) -> None:
        if self.metrics_server is not None:
            await asyncio.to_thread(self.metrics_server.close)

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def submit_job(self, request: Request, *, user: str, background: bool = False, timeout: float | None = None) -> Job:
        """Enqueue and return the job at once (for streaming and queue position); raises InvalidInput or Busy."""
        priority = Priority.BACKGROUND if background else Priority.INTERACTIVE
        return self.scheduler.submit(self._checked_model(request), user=user, priority=priority, timeout=timeout)

    def _checked_model(self, request: Request) -> Request:
        """Refuse a model not in the role's list; name the default as "", so both share forward passes."""
        chosen, role = request.chosen_model(), request.model_role()
        if not chosen:
            return request
        allowed = self.config.allowed(role)
        if chosen not in allowed:
            listed = ", ".join(allowed) or "none"
            raise InvalidInput(
                f"The model '{chosen[:100]}' is not one of this bot's {role.replace('_', '-')} models ({listed}). "
                f"Pick one from the list; an operator can add models with {list_setting_name(role)}."
            )
        return dataclasses.replace(request, model="") if chosen == allowed[0] else request

    async def submit(
        self, request: Request, *, user: str, background: bool = False, timeout: float | None = None
    ) -> Any:
        return await self.submit_job(request, user=user, background=background, timeout=timeout).result()

    def status(self) -> EngineStatus:
        info = self.executor.info
        return EngineStatus(
            device=info.device,
            dtypes=dict(info.dtypes),
            generation_batching=info.generation_batching,
            worker_state=info.state,
            worker_restarts=info.restarts,
            worker_stalls=info.stalls,
            models=tuple(info.models),
            memory_budget_mb=self.config.memory_budget_mb,
            queued=self.scheduler.queue_depth(Priority.INTERACTIVE),
            queued_background=self.scheduler.queue_depth(Priority.BACKGROUND),
            running=len(self.scheduler.running),
            shed=dict(self.metrics.shed),
            tasks=self.metrics.tasks(),
        )
