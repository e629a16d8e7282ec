"""The inference worker: a spawned process that owns the models and the device.

It works in steps. The main thread takes messages from the parent, starts streaming
requests (they decode on their own threads, see tasks/base.py StreamingTask) and runs at most
one classification unit — one forward pass — before looking at its messages again.
Every forward pass holds the device turn (turns.py), so a classification pass waits
for at most one decode step and the other way round. A heartbeat thread tells the
parent twice a second how long the current step has been running, for its watchdog.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from . import profiling
from .config import EngineConfig, ModelInfo
from .errors import FAILED, EngineError, ResourceExhausted
from .messages import (
    CancelJob,
    Chunk,
    Heartbeat,
    JobDone,
    RunUnit,
    StopWorker,
    UnitDone,
    UnitStarted,
    WorkerFailed,
    WorkerReady,
)
from .preemption import Preempted, PreemptSignal
from .request import Request, failure

if TYPE_CHECKING:  # the parent imports this module for worker_main; torch loads in the child only
    from .tasks.base import Emit, Task

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 0.5


def worker_main(conn: Connection, config: EngineConfig, preempt: Any = None) -> None:
    """The child process's entry point. `preempt`: the shared integer the parent names a unit to give up in."""
    if config.offline:
        os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)-8s worker: %(message)s")
    logging.getLogger("ContinuousBatchingLogger").setLevel(logging.WARNING)  # it logs every start and stop at INFO
    import torch

    if not config.progress_bars:
        from transformers.utils.logging import disable_progress_bar

        disable_progress_bar()

    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    if config.profile_passes:
        profiling.enable()
    try:
        worker = Worker(conn, config, preempt)
    except Exception as error:  # a setting it can't use (DEVICE): the parent tells the operator
        log.error("The worker can't start: %s", error, exc_info=log.isEnabledFor(logging.DEBUG))
        conn.send(WorkerFailed(str(error) or type(error).__name__))
        return
    worker.serve()


class Outbox:
    """The pipe to the parent, shared by the main, decoding and heartbeat threads."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.lock = threading.Lock()

    def send(self, message: Any) -> None:
        with self.lock:
            self.conn.send(message)


class Worker:
    def __init__(self, conn: Connection, config: EngineConfig, preempt: Any = None) -> None:
        from .registry import ModelRegistry
        from .tasks import TaskSet
        from .turns import DeviceTurns

        self.conn = conn
        self.outbox = Outbox(conn)
        self.turns = DeviceTurns()
        self.registry = ModelRegistry(config, self.turns)
        self.preempt = self.registry.preempt = PreemptSignal(preempt) if preempt is not None else None
        self.tasks = TaskSet(self.registry)
        self.waiting: deque[RunUnit] = deque()  # classification units, one forward pass each
        self.cancelled: set[int] = set()  # jobs cancelled before their unit ran
        self.streaming: dict[int, int] = {}  # running streaming job -> its unit
        self.started: dict[int, float] = {}  # unit -> when it started
        self.lock = threading.Lock()  # streaming and started are touched by the decoding threads too
        self.reported_models: tuple[ModelInfo, ...] = ()
        self.idle_since = time.perf_counter()  # when the last classification unit ended (profiling)

    def serve(self) -> None:
        self.outbox.send(
            WorkerReady(
                pid=os.getpid(),
                device=str(self.registry.device),
                dtypes=self.registry.dtypes(),
                generation_batching=self.registry.config.streaming_batching(),
                passes=self.registry.passes,
                preemptible=self.preempt is not None,
            )
        )
        threading.Thread(target=self._heartbeat, daemon=True, name="heartbeat").start()
        try:
            while True:
                # Block while idle; only peek while classification work waits its turn.
                if self.waiting and not self.conn.poll(0):
                    self._run_unit(self.waiting.popleft())
                    continue
                try:
                    message = self.conn.recv()
                except (EOFError, OSError):
                    return  # the parent is gone
                if isinstance(message, StopWorker):
                    return
                self._on_message(message)
        finally:
            self.tasks.close()

    def _on_message(self, message: RunUnit | CancelJob) -> None:
        if isinstance(message, CancelJob):
            if self.tasks.cancel(message.job_id):
                self._release(message.job_id)
            elif any(message.job_id == job_id for unit in self.waiting for job_id, _ in unit.jobs):
                self.cancelled.add(message.job_id)
            return
        self._start(message)
        if message.streams:
            for job_id, request in message.jobs:
                with self.lock:
                    self.streaming[job_id] = message.unit_id
                self.tasks.start(job_id, request, self)
            self._report_models()
        else:
            self.waiting.append(message)

    def _start(self, unit: RunUnit) -> None:
        with self.lock:
            self.started[unit.unit_id] = time.perf_counter()
        self.outbox.send(UnitStarted(unit.unit_id))

    def _finish_unit(self, unit_id: int, phases: dict[str, float] | None = None, preempted: bool = False) -> None:
        with self.lock:
            started = self.started.pop(unit_id, None)
        if started is not None:
            self.outbox.send(UnitDone(unit_id, time.perf_counter() - started, phases, preempted))

    def _run_unit(self, unit: RunUnit) -> None:
        # The device idled from the last unit's end until this one came (none when it waited here).
        profiling.add("wait", max(0.0, self.started.get(unit.unit_id, self.idle_since) - self.idle_since))
        jobs = [(job_id, request) for job_id, request in unit.jobs if job_id not in self.cancelled]
        self.cancelled.difference_update(job_id for job_id, _ in unit.jobs)
        if jobs:
            ids = [job_id for job_id, _ in jobs]

            def emit(index: int, sequence: int, text: str) -> None:
                self.outbox.send(Chunk(ids[index], sequence, text))

            task = self.tasks.get(jobs[0][1])  # the task and the model are part of the batch key
            try:
                with self.preempt.running(unit.unit_id) if self.preempt else contextlib.nullcontext():
                    outcomes = run_batch(task, [request for _, request in jobs], emit)
            except Preempted:  # given up for a newcomer: its jobs go back to the queue, unrun
                self._finish_unit(unit.unit_id, profiling.take(), preempted=True)
                self.idle_since = time.perf_counter()
                return
            self._report_models()
            with profiling.phase("messages"):
                for job_id, outcome in zip(ids, outcomes):
                    self.outbox.send(JobDone(job_id, outcome))
        self._finish_unit(unit.unit_id, profiling.take())
        self.idle_since = time.perf_counter()

    # --- the streaming tasks' sink (called from decoding threads) ----------------------------
    def chunk(self, job_id: int, sequence: int, text: str) -> None:
        self.outbox.send(Chunk(job_id, sequence, text))

    def done(self, job_id: int, outcome: Any) -> None:
        self.outbox.send(JobDone(job_id, outcome))
        self._release(job_id)

    def _release(self, job_id: int) -> None:
        """A streaming job ended (done or cancelled): its unit, and so its rows, are free."""
        with self.lock:
            unit_id = self.streaming.pop(job_id, None)
        if unit_id is not None:
            self._finish_unit(unit_id)

    def _report_models(self) -> None:
        """A unit may have loaded a model: say so before its results, so /status never lags behind them."""
        if self.registry.loaded() != self.reported_models:
            self._beat()

    def _beat(self) -> None:
        self.reported_models = self.registry.loaded()
        self.outbox.send(
            Heartbeat(
                steps=self.turns.steps,
                step_running_for=self.turns.running_for(),
                loading=self.registry.loading is not None,
                models=self.reported_models,
                dtypes=self.registry.dtypes(),
            )
        )

    def _heartbeat(self) -> None:
        while True:
            time.sleep(HEARTBEAT_SECONDS)
            try:
                self._beat()
            except (OSError, ValueError):
                return  # the pipe is closed: the parent is gone
            except Exception:  # a missed beat is harmless; a dead heartbeat thread would get us killed
                log.exception("Heartbeat failed")


def run_batch(task: Task, requests: list[Request], emit: Emit) -> list[Any]:
    """Run a unit; on device out-of-memory split it in halves and retry each."""
    import torch

    try:
        return task.run(requests, emit)
    except Preempted:
        raise  # not a failure: the unit runs again later
    except EngineError as error:
        return [failure(error)] * len(requests)
    except torch.OutOfMemoryError:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if len(requests) == 1:
            log.warning("Out of memory on a single request of %s", type(task).__name__)
            return [
                failure(
                    ResourceExhausted(
                        "This request needs more memory than the device has. Try a shorter text or fewer tokens."
                    )
                )
            ]
        half = len(requests) // 2
        log.warning("Out of memory on a batch of %d requests of %s; splitting", len(requests), type(task).__name__)

        def emit_second(index: int, sequence: int, text: str) -> None:
            emit(index + half, sequence, text)

        return run_batch(task, requests[:half], emit) + run_batch(task, requests[half:], emit_second)
    except Exception:
        log.exception("%s failed on a batch of %d", type(task).__name__, len(requests))
        return [failure(EngineError(FAILED))] * len(requests)
