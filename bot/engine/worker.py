"""The inference worker: a spawned process that owns the models and the device.

`worker_main` runs in the child: it receives one batch at a time, runs the task
and sends back chunks and outcomes. `WorkerProcess` is the parent's handle: it
feeds batches, and when the child dies (kill -9, OOM killer, segfault) it fails
the batch in flight with a clear error and restarts the child with backoff.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing as mp
import os
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from .config import EngineConfig
from .errors import EngineError, ResourceExhausted, WorkerCrashed
from .scheduler import OnChunk
from .requests.base import Request, failure
from .tasks.base import Emit, Task

log = logging.getLogger(__name__)

STARTUP_TIMEOUT = 120.0  # importing torch and transformers on a slow disk


# --- child side --------------------------------------------------------------------------

def worker_main(conn: Connection, config: EngineConfig) -> None:
    if config.offline:
        os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-8s worker: %(message)s")
    import torch

    from .registry import ModelRegistry
    from .tasks import TASKS

    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    registry = ModelRegistry(config)
    tasks = {name: cls(registry) for name, cls in TASKS.items()}
    conn.send(("ready", {"pid": os.getpid(), "device": str(registry.device), "dtype": str(registry.dtype).removeprefix("torch.")}))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if message[0] == "stop":
            return
        _, batch_id, task_name, requests = message
        conn.send(("started", batch_id))

        def emit(index: int, sequence: int, text: str) -> None:
            conn.send(("chunk", batch_id, index, sequence, text))

        started = time.perf_counter()
        outcomes = run_batch(tasks[task_name], requests, emit)
        conn.send(("done", batch_id, outcomes, time.perf_counter() - started, registry.loaded()))


def run_batch(task: Task, requests: list[Request], emit: Emit) -> list[Any]:
    """Run a batch; on device out-of-memory split it in halves and retry each."""
    import torch

    try:
        return task.run(requests, emit)
    except EngineError as error:
        return [failure(error)] * len(requests)
    except torch.OutOfMemoryError:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if len(requests) == 1:
            log.warning("Out of memory on a single %s request", task.name)
            return [failure(ResourceExhausted("This request needs more memory than the device has. Try a shorter text or fewer tokens."))]
        half = len(requests) // 2
        log.warning("Out of memory on a batch of %d %s requests; splitting", len(requests), task.name)

        def emit_second(index: int, sequence: int, text: str) -> None:
            emit(index + half, sequence, text)

        return run_batch(task, requests[:half], emit) + run_batch(task, requests[half:], emit_second)
    except Exception:
        log.exception("The %s task failed on a batch of %d", task.name, len(requests))
        return [failure(EngineError("Something went wrong while running the model. Please try again."))] * len(requests)


# --- parent side -------------------------------------------------------------------------

@dataclass
class WorkerInfo:
    pid: int | None = None
    device: str = "starting"
    dtype: str = ""
    restarts: int = 0
    alive: bool = False
    models: dict[str, str] = field(default_factory=dict)  # role -> model id, once loaded


class WorkerProcess:
    """Parent-side handle of the worker; implements the scheduler's Executor."""

    def __init__(self, config: EngineConfig, *, backoff: tuple[float, float] = (0.5, 30.0)) -> None:
        self.config = config
        self.info = WorkerInfo()
        self._backoff_first, self._backoff_max = backoff
        self._failures_in_a_row = 0
        self._generation = 0
        self._ids = itertools.count(1)
        self._ready = asyncio.Event()
        self._closing = False
        self._process: Any = None
        self._conn: Connection | None = None
        self._batch: tuple[int, asyncio.Future, OnChunk] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._died_starting = asyncio.Event()
        self._batch_started = False

    async def start(self) -> None:
        """Spawn the worker and wait until it is ready; fail fast if it dies on the way."""
        self._loop = asyncio.get_running_loop()
        self._died_starting = asyncio.Event()
        self._spawn()
        ready = asyncio.ensure_future(self._ready.wait())
        died = asyncio.ensure_future(self._died_starting.wait())
        await asyncio.wait([ready, died], timeout=STARTUP_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        died.cancel()
        if not self._ready.is_set():
            await self.close()
            raise WorkerCrashed("The model worker could not start (see the log above for why).")

    async def execute(self, task: str, requests: list[Request], on_chunk: OnChunk) -> list[Any]:
        # A batch the worker never started (it died idle, before we noticed) is sent once more to
        # the restarted worker; one it started is not, since it may be what killed the worker.
        attempts = 0
        while True:
            attempts += 1
            try:
                await asyncio.wait_for(self._ready.wait(), STARTUP_TIMEOUT)
            except TimeoutError:
                raise WorkerCrashed("The model worker is restarting. Please try again in a minute.") from None
            batch_id = next(self._ids)
            future = self._loop.create_future()
            self._batch = (batch_id, future, on_chunk)
            self._batch_started = False
            try:
                # Sent from a thread: a large batch could fill the pipe while the child is busy.
                await asyncio.to_thread(self._conn.send, ("run", batch_id, task, requests))
                return await future
            except (WorkerCrashed, BrokenPipeError, ConnectionError, OSError):
                if self._batch_started or attempts == 2:
                    raise WorkerCrashed("The model worker stopped unexpectedly while answering (it is restarting). "
                                        "Please try again.") from None
                log.warning("The worker died before starting a batch of %d %s requests; resending it", len(requests), task)
            finally:
                self._batch = None

    async def close(self) -> None:
        self._closing = True
        process, conn = self._process, self._conn
        if process is None:
            return
        try:
            conn.send(("stop",))
        except (OSError, ValueError):
            pass
        await asyncio.to_thread(process.join, 10)
        if process.is_alive():
            process.kill()
            await asyncio.to_thread(process.join, 5)
        self.info.alive = False

    def kill(self) -> None:
        """Kill the worker outright (tests and `/status` debugging); it is restarted."""
        if self._process is not None and self._process.is_alive():
            self._process.kill()

    # --- supervision ---------------------------------------------------------------------
    def _spawn(self) -> None:
        context = mp.get_context("spawn")  # CUDA cannot be used in a forked child
        parent_end, child_end = context.Pipe()
        process = context.Process(target=worker_main, args=(child_end, self.config), name="inference-worker", daemon=True)
        process.start()
        child_end.close()  # so the parent sees EOF when the child dies
        self._generation += 1
        self._process, self._conn = process, parent_end
        self.info.pid, self.info.alive, self.info.models = process.pid, True, {}
        threading.Thread(target=self._read, args=(self._generation, process, parent_end), daemon=True, name="worker-reader").start()

    def _read(self, generation: int, process: Any, conn: Connection) -> None:
        """Reader thread: forward every message to the event loop, then report the exit."""
        while True:
            ready = wait([conn, process.sentinel])
            if conn not in ready:
                break  # the process ended and nothing is left to read
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break
            self._loop.call_soon_threadsafe(self._on_message, generation, message)
        process.join()
        self._loop.call_soon_threadsafe(self._on_exit, generation, process.exitcode)

    def _on_message(self, generation: int, message: tuple) -> None:
        if generation != self._generation:
            return
        kind = message[0]
        if kind == "ready":
            info = message[1]
            self.info.pid, self.info.device, self.info.dtype = info["pid"], info["device"], info["dtype"]
            self._ready.set()
        elif self._batch is not None and message[1] == self._batch[0]:
            if kind == "started":
                self._batch_started = True
            elif kind == "chunk":
                self._batch[2](*message[2:])
            elif kind == "done":
                _, _, outcomes, _seconds, models = message
                self.info.models = models
                self._failures_in_a_row = 0
                if not self._batch[1].done():
                    self._batch[1].set_result(outcomes)

    def _on_exit(self, generation: int, exitcode: int | None) -> None:
        if generation != self._generation or self._closing:
            return
        if self.info.device == "starting":  # never became ready: a restart would fail the same way
            log.error("The inference worker exited with code %s before it was ready", exitcode)
            self._died_starting.set()
            return
        self._ready.clear()
        self.info.alive = False
        log.error("The inference worker (pid %s) died with exit code %s; restarting", self.info.pid, exitcode)
        if self._batch is not None and not self._batch[1].done():
            self._batch[1].set_exception(WorkerCrashed(
                "The model worker stopped unexpectedly while answering (it is restarting). Please try again."))
        delay = min(self._backoff_max, self._backoff_first * 2 ** self._failures_in_a_row)
        self._failures_in_a_row += 1
        self.info.restarts += 1
        self._loop.call_later(delay, self._restart)

    def _restart(self) -> None:
        if not self._closing:
            self._spawn()
