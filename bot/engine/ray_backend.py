"""ENGINE_BACKEND=ray: the same task code as the local worker, in N Ray Serve replicas.

The scheduler in the bot process keeps admission, fairness, priorities and deadlines and
hands out units as with the local worker; `classify_window` lets one classification unit
be in flight per replica. Each unit is one streaming call (`handle.options(stream=True)`):
the replica yields ("chunk", ...) and ("done", ...) events as the worker sends its messages.
A replica that dies fails its in-flight units with `WorkerCrashed` (Serve starts a new one);
Serve's back-pressure (`max_queued_requests`) becomes `Busy`; cancel cancels the stream,
which stops the generation at its next step inside the replica.

Several bot processes (gateway shards) share one set of replicas by pointing RAY_ADDRESS at
the same cluster: the first deploys the application, the others attach to it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator
from typing import Any

import ray
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.exceptions import (
    BackPressureError,
    DeploymentUnavailableError,
    RayServeException,
    ReplicaUnavailableError,
)

from .config import EngineConfig, ModelInfo
from .errors import FAILED, Busy, EngineError, WorkerCrashed
from .request import Request
from .scheduler import ExecutorInfo, JobEvents

log = logging.getLogger(__name__)

APP = "hf-discord-bot"
CRASHED = "The model replica stopped unexpectedly while answering (a new one is starting). Please try again."
BUSY = "All model replicas are busy right now. Please try again in a few seconds."

# ("started", pid) | ("chunk", job_id, sequence, text) | ("models", its ModelInfos) | ("done", job_id, outcome)
Event = tuple[Any, ...]


class Replica:
    """One Serve replica: the worker's registry, device turns and tasks, driven by streaming calls."""

    def __init__(self, config: EngineConfig) -> None:
        if config.offline:
            os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported
        import torch

        from .registry import ModelRegistry
        from .tasks import TaskSet
        from .turns import DeviceTurns

        if config.torch_threads:
            torch.set_num_threads(config.torch_threads)
        self.registry = ModelRegistry(config, DeviceTurns())
        self.tasks = TaskSet(self.registry)

    def describe(self) -> dict[str, Any]:
        return {
            "device": str(self.registry.device),
            "dtypes": self.registry.dtypes(),
            "generation_batching": self.registry.config.streaming_batching(),
            "passes": self.registry.passes,
        }

    async def run(self, task: str, jobs: list[tuple[int, Request]]) -> AsyncIterator[Event]:
        yield ("started", os.getpid())
        reported = False
        async for event in self._stream(jobs) if jobs[0][1].streams else self._classify(jobs):
            if event[0] == "done" and not reported:
                # A unit may have loaded a model: say so before its results, as the local worker does.
                yield ("models", self.registry.loaded())
                reported = True
            yield event

    async def _classify(self, jobs: list[tuple[int, Request]]) -> AsyncIterator[Event]:
        from .worker import run_batch

        ids = [job_id for job_id, _ in jobs]
        # A thread, so the replica's loop keeps streaming other units' chunks; classification emits none.
        outcomes = await asyncio.to_thread(
            run_batch, self.tasks.get(jobs[0][1]), [request for _, request in jobs], _no_chunks
        )
        for job_id, outcome in zip(ids, outcomes):
            yield ("done", job_id, outcome)

    async def _stream(self, jobs: list[tuple[int, Request]]) -> AsyncIterator[Event]:
        loop, queue = asyncio.get_running_loop(), asyncio.Queue()

        class Sink:  # called from the decoding threads
            def chunk(self, job_id: int, sequence: int, text: str) -> None:
                loop.call_soon_threadsafe(queue.put_nowait, ("chunk", job_id, sequence, text))

            def done(self, job_id: int, outcome: Any) -> None:
                loop.call_soon_threadsafe(queue.put_nowait, ("done", job_id, outcome))

        running = {job_id for job_id, _ in jobs}
        for job_id, request in jobs:
            self.tasks.start(job_id, request, Sink())
        try:
            while running:
                event = await queue.get()
                if event[0] == "done":
                    running.discard(event[1])
                yield event
        finally:  # the caller cancelled the stream (or went away): stop at the next step
            for job_id in running:
                self.tasks.cancel(job_id)


def _no_chunks(index: int, sequence: int, text: str) -> None:
    raise AssertionError("classification tasks do not stream")


class RayExecutor:
    """Implements the scheduler's Executor with Ray Serve replicas."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.info = ExecutorInfo(classify_window=config.ray_replicas)
        self.replica_pids: dict[int, int] = {}  # job id -> pid of the replica running it
        self.units_by_replica: Counter[int] = Counter()  # pid -> units it has run
        # What each replica holds, as it last said (with its unit's results), least recently heard from first.
        self.replica_models: OrderedDict[int, tuple[ModelInfo, ...]] = OrderedDict()
        self._replicas_seen: set[int] = set()  # pids of every replica that has started a unit of ours
        self._replicas_crashed: set[int] = set()  # pids of replicas that died running one
        self._handle: Any = None
        self._streams: dict[int, Any] = {}  # job id -> its unit's response stream
        self._started_ray = False

    async def start(self) -> None:
        if self._handle is not None:
            return
        await asyncio.to_thread(self._connect)
        description = await self._handle.describe.remote()
        self.info.device = f"ray: {self.config.ray_replicas} replicas on {description['device']}"
        self.info.dtypes, self.info.generation_batching = description["dtypes"], description["generation_batching"]
        self.info.passes = description["passes"]
        self.info.state = "running"

    def _connect(self) -> None:
        if not ray.is_initialized():
            # "": a local Ray for this process, on loopback; "auto" or ray://...: a running cluster.
            ray.init(address=self.config.ray_address or None, include_dashboard=False, log_to_driver=False)
            self._started_ray = not self.config.ray_address
        try:
            self._handle = serve.get_app_handle(APP)  # another bot process deployed it: share its replicas
            log.info("Attached to the running Ray Serve application %r", APP)
        except RayServeException:  # not deployed yet
            rows = self.config.max_batch_size
            deployment = serve.deployment(Replica).options(
                name="Replica",
                num_replicas=self.config.ray_replicas,
                ray_actor_options={"num_gpus": self.config.ray_gpus_per_replica, "num_cpus": 1},
                # Generations decode side by side (up to a batch of rows) plus one classification pass.
                max_ongoing_requests=rows + 1,
                max_queued_requests=rows,
            )
            serve.start(proxy_location="Disabled")  # called through handles only: no HTTP port is opened
            self._handle = serve.run(deployment.bind(self.config), name=APP, route_prefix=None)
            log.info("Deployed %d Ray Serve replicas", self.config.ray_replicas)

    async def close(self) -> None:
        for stream in self._streams.values():
            stream.cancel()
        if self._started_ray:  # ours alone: take it down; a shared cluster keeps serving the others
            await asyncio.to_thread(serve.shutdown)
            await asyncio.to_thread(ray.shutdown)
        self._handle = None
        self.info.state = "stopped"

    async def run(self, task: str, jobs: list[tuple[int, Request]], events: JobEvents) -> None:
        stream = self._handle.options(stream=True).run.remote(task, jobs)
        ids = [job_id for job_id, _ in jobs]
        pid: int | None = None  # the replica's, once it has started the unit
        self._streams.update((job_id, stream) for job_id in ids)
        try:
            async for event in stream:
                if event[0] == "started":
                    pid = event[1]
                    self.replica_pids.update((job_id, pid) for job_id in ids)
                    self.units_by_replica[pid] += 1
                    self._replicas_seen.add(pid)
                    self._count_restarts()
                elif event[0] == "models":
                    self._replica_reported(pid, event[1])
                elif event[0] == "chunk":
                    events.chunk(*event[1:])
                else:
                    events.done(*event[1:])
        except asyncio.CancelledError:
            stream.cancel()
            raise
        except BackPressureError:
            raise Busy(BUSY, retry_after=5.0) from None
        except (RayActorError, ReplicaUnavailableError, DeploymentUnavailableError) as error:
            log.error("A Ray Serve replica failed with %d %s requests in flight: %s", len(jobs), task, error)
            if pid is not None:
                self._replica_died(pid)
            raise WorkerCrashed(CRASHED) from None
        except ray.exceptions.TaskCancelledError:
            pass  # our own cancel (the job's caller went away): the scheduler has answered it
        except ray.exceptions.RayError as error:
            log.error("A Ray Serve unit of %d %s requests failed: %s", len(jobs), task, error)
            raise EngineError(FAILED) from None
        finally:
            for job_id in ids:
                self._streams.pop(job_id, None)
                self.replica_pids.pop(job_id, None)

    def cancel(self, job_id: int) -> None:
        if (stream := self._streams.get(job_id)) is not None:
            stream.cancel()

    # --- what /status and the metrics show of the replicas -------------------------------------
    # Serve restarts replicas on its own and tells no handle; the bot sees a replica die under a unit,
    # and a new replica when it first answers.
    def _replica_reported(self, pid: int, models: tuple[ModelInfo, ...]) -> None:
        self.replica_models[pid] = tuple(dataclasses.replace(model, replica=str(pid)) for model in models)
        self.replica_models.move_to_end(pid)
        # One that died idle never says so: keep the replicas heard from most recently, as many as there are.
        while len(self.replica_models) > self.config.ray_replicas:
            self.replica_models.popitem(last=False)
        self._publish_models()

    def _replica_died(self, pid: int) -> None:
        self._replicas_crashed.add(pid)
        self.replica_models.pop(pid, None)
        self._count_restarts()
        self._publish_models()

    def _count_restarts(self) -> None:
        # Every replica past the first RAY_REPLICAS replaced one; a crash is counted before its replacement answers.
        replaced = len(self._replicas_seen) - self.config.ray_replicas
        self.info.restarts = max(self.info.restarts, replaced, len(self._replicas_crashed))

    def _publish_models(self) -> None:
        self.info.models = tuple(model for models in reversed(self.replica_models.values()) for model in models)
