"""The parent's handle on the worker process: sends it units, routes what comes back,
and keeps it alive.

- Crash: when the child dies (kill -9, OOM killer, segfault), every unit it had started
  fails with `WorkerCrashed`; a unit it never started is sent once more to the new worker,
  which is restarted with exponential backoff.
- Stall: a watchdog reads the worker's heartbeat. When the worker goes silent, or one
  forward pass runs past the stall limit, the worker is killed and restarted the same way,
  and its units fail with `WorkerStalled`. The limit scales with the slowest step seen
  (STALL_FACTOR x), between STALL_FLOOR and the `stall_timeout` setting; a step that loads
  a model gets LOAD_TIMEOUT (the heartbeat goes on meanwhile, so silence still counts).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing as mp
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from .config import EngineConfig
from .errors import WorkerCrashed, WorkerStalled
from .messages import (
    CancelJob,
    Chunk,
    FromWorker,
    Heartbeat,
    JobDone,
    RunUnit,
    StopWorker,
    UnitDone,
    UnitStarted,
    WorkerFailed,
    WorkerReady,
)
from .preemption import Preempted
from .request import Request
from .scheduler import ExecutorInfo, JobEvents
from .worker import worker_main

log = logging.getLogger(__name__)

STARTUP_TIMEOUT = 120.0  # importing torch and transformers on a slow disk
LOAD_TIMEOUT = 900.0  # loading a large model from a slow disk is slow, not stuck
STALL_FLOOR = 15.0
STALL_FACTOR = 30.0
WATCH_SECONDS = 0.5
CRASHED = "The model worker stopped unexpectedly while answering (it is restarting). Please try again."
STALLED = "The model worker stopped responding, so it was restarted. Please try again."


class _NotStarted(Exception):
    """The worker died before starting a unit: safe to send it again."""


@dataclass
class _Unit:
    future: asyncio.Future
    events: JobEvents
    job_ids: list[int]
    started: bool = False


@dataclass
class _Health:
    last_message: float = field(default_factory=time.monotonic)
    heartbeat: Heartbeat | None = None
    slowest_step: float = 0.0  # longest forward pass a heartbeat caught running
    stalled: bool = False


class WorkerProcess:
    """Implements the scheduler's Executor with a spawned worker process."""

    def __init__(
        self,
        config: EngineConfig,
        *,
        backoff: tuple[float, float] = (0.5, 30.0),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self.info = ExecutorInfo()
        self._backoff_first, self._backoff_max = backoff
        self._sleep = sleep  # waits out the backoff before a restart (tests inject a clock)
        self._restarting: asyncio.Task | None = None
        self._failures_in_a_row = 0
        self._start_failure: str | None = None  # why the worker said it can't start
        self._generation = 0  # which child a message comes from; stale ones are ignored
        self._ids = itertools.count(1)
        self._ready = asyncio.Event()
        self._died_starting = asyncio.Event()
        self._closing = False
        self._process: Any = None
        self._conn: Connection | None = None
        self._preempt: Any = None  # shared with the worker: the unit id it should give up (preemption.py)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._units: dict[int, _Unit] = {}
        self._job_units: dict[int, int] = {}
        self._health = _Health()
        self._watchdog: asyncio.Task | None = None

    async def start(self) -> None:
        """Spawn the worker and wait until it is ready; fail fast if it dies on the way."""
        if self._process is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._spawn()
        ready = asyncio.ensure_future(self._ready.wait())
        died = asyncio.ensure_future(self._died_starting.wait())
        await asyncio.wait([ready, died], timeout=STARTUP_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        died.cancel()
        if not self._ready.is_set():
            await self.close()
            why = self._start_failure or "see the log above for why"
            raise WorkerCrashed(f"The model worker could not start: {why}")
        self._watchdog = asyncio.create_task(self._watch(), name="worker-watchdog")

    async def run(self, task: str, jobs: list[tuple[int, Request]], events: JobEvents) -> None:
        # A unit the worker never started (it died idle, before we noticed) is sent once more to
        # the restarted worker; one it started is not, since it may be what killed the worker.
        for attempt in (1, 2):
            try:
                await asyncio.wait_for(self._ready.wait(), STARTUP_TIMEOUT)
            except TimeoutError:
                raise WorkerCrashed("The model worker is restarting. Please try again in a minute.") from None
            unit_id = next(self._ids)
            unit = _Unit(self._loop.create_future(), events, [job_id for job_id, _ in jobs])
            self._units[unit_id] = unit
            self._job_units.update((job_id, unit_id) for job_id, _ in jobs)
            try:
                # Sent from a thread: a large unit could fill the pipe while the child is busy.
                await asyncio.to_thread(self._conn.send, RunUnit(unit_id, task, jobs))
                await unit.future
                return
            except (_NotStarted, BrokenPipeError, ConnectionError, OSError):
                if unit.started or attempt == 2:
                    raise WorkerCrashed(CRASHED) from None
                log.warning("The worker died before starting a unit of %d %s requests; resending it", len(jobs), task)
            finally:
                self._forget(unit_id)

    def preempt(self, job_id: int) -> None:
        """Give up the unit holding `job_id` mid-pass; its `run` then raises Preempted."""
        if (unit_id := self._job_units.get(job_id)) is not None and self._preempt is not None:
            self._preempt.value = unit_id

    def cancel(self, job_id: int) -> None:
        if job_id in self._job_units and self._ready.is_set():
            try:
                self._conn.send(CancelJob(job_id))
            except (OSError, ValueError):
                pass  # the worker is gone; its exit fails the unit

    async def close(self) -> None:
        self._closing = True
        for task in (self._watchdog, self._restarting):
            if task is not None:
                task.cancel()
        process, conn = self._process, self._conn
        if process is None:
            return
        try:
            conn.send(StopWorker())
        except (OSError, ValueError):
            pass
        await asyncio.to_thread(process.join, 10)
        if process.is_alive():
            process.kill()
            await asyncio.to_thread(process.join, 5)
        self.info.state = "stopped"

    def kill(self) -> None:
        """Kill the worker outright (the watchdog, tests); it is restarted."""
        if self._process is not None and self._process.is_alive():
            self._process.kill()

    def stall_limit(self) -> float:
        """Seconds one step (or the worker's silence) may last before the worker counts as stalled."""
        return min(self.config.stall_timeout, max(STALL_FLOOR, STALL_FACTOR * self._health.slowest_step))

    # --- supervision ---------------------------------------------------------------------
    def _forget(self, unit_id: int) -> None:
        unit = self._units.pop(unit_id, None)
        for job_id in unit.job_ids if unit else ():
            self._job_units.pop(job_id, None)

    def _spawn(self) -> None:
        context = mp.get_context("spawn")  # CUDA cannot be used in a forked child
        parent_end, child_end = context.Pipe()
        self._preempt = context.Value("q", 0, lock=False)  # one writer (this loop), one reader
        process = context.Process(
            target=worker_main, args=(child_end, self.config, self._preempt), name="inference-worker", daemon=True
        )
        process.start()
        child_end.close()  # so the parent sees EOF when the child dies
        self._generation += 1
        self._process, self._conn = process, parent_end
        self._health = _Health()
        self._start_failure = None
        self.info.pid, self.info.models = process.pid, ()
        threading.Thread(
            target=self._read, args=(self._generation, process, parent_end), daemon=True, name="worker-reader"
        ).start()

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
            if not self._post(self._on_message, generation, message):
                return
        process.join()
        self._post(self._on_exit, generation, process.exitcode)

    def _post(self, callback: Any, *args: Any) -> bool:
        """Hand a call to the event loop; False once the loop is closed (the bot has shut down)."""
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            return False
        return True

    def _on_message(self, generation: int, message: FromWorker) -> None:
        if generation != self._generation:
            return
        self._health.last_message = time.monotonic()
        if isinstance(message, Heartbeat):
            self._health.heartbeat = message
            if message.step_running_for is not None:
                self._health.slowest_step = max(self._health.slowest_step, message.step_running_for)
            self.info.models, self.info.dtypes = message.models, message.dtypes
        elif isinstance(message, WorkerFailed):
            self._start_failure = message.reason
        elif isinstance(message, WorkerReady):
            self.info.pid, self.info.device, self.info.dtypes = message.pid, message.device, message.dtypes
            self.info.generation_batching, self.info.passes = message.generation_batching, message.passes
            self.info.preemptible = message.preemptible
            self.info.state = "running"
            self._ready.set()
        elif isinstance(message, (Chunk, JobDone)):
            unit = self._units.get(self._job_units.get(message.job_id, -1))
            if unit is None:
                return
            if isinstance(message, Chunk):
                unit.events.chunk(message.job_id, message.sequence, message.text)
            else:
                unit.events.done(message.job_id, message.outcome)
        elif isinstance(message, (UnitStarted, UnitDone)):
            unit = self._units.get(message.unit_id)
            if unit is None:
                return
            if isinstance(message, UnitStarted):
                unit.started = True
            elif not unit.future.done():
                self._failures_in_a_row = 0
                if message.preempted:
                    unit.future.set_exception(Preempted())
                else:
                    unit.future.set_result(message.seconds)

    def _on_exit(self, generation: int, exitcode: int | None) -> None:
        if generation != self._generation or self._closing:
            return
        if (
            not self._ready.is_set() and self.info.state == "starting"
        ):  # never became ready: a restart would fail the same way
            log.error("The inference worker exited with code %s before it was ready", exitcode)
            self._died_starting.set()
            return
        self._ready.clear()
        stalled = self._health.stalled
        self.info.state = "stalled, restarting" if stalled else "restarting"
        delay = min(self._backoff_max, self._backoff_first * 2**self._failures_in_a_row)
        if stalled:
            what = "was stopped by the watchdog"
        else:
            what = f"could not start ({self._start_failure})" if self._start_failure else "died"
        log.error(
            "The inference worker (pid %s) %s (exit code %s); restart in %.1f s", self.info.pid, what, exitcode, delay
        )
        for unit in self._units.values():
            if not unit.future.done():
                unit.future.set_exception(
                    (WorkerStalled(STALLED) if stalled else WorkerCrashed(CRASHED)) if unit.started else _NotStarted()
                )
        self._failures_in_a_row += 1
        self.info.restarts += 1
        self._restarting = self._loop.create_task(self._restart(delay), name="worker-restart")

    async def _restart(self, delay: float) -> None:
        await self._sleep(delay)
        if not self._closing:
            self._spawn()

    async def _watch(self) -> None:
        """Kill a worker that stopped making progress while it has work (its exit restarts it)."""
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            health = self._health
            if not self._ready.is_set() or not self._units or health.stalled:
                continue
            limit = self.stall_limit()
            silent = time.monotonic() - health.last_message  # heartbeats go on while a model loads
            heartbeat = health.heartbeat
            step = (heartbeat.step_running_for or 0.0) if heartbeat else 0.0
            if silent > limit or step > (max(LOAD_TIMEOUT, limit) if heartbeat and heartbeat.loading else limit):
                log.error(
                    "The inference worker made no progress for %.0f s (limit %.0f s): restarting it",
                    max(silent, step),
                    limit,
                )
                health.stalled = True
                self.info.state = "stalled, restarting"
                self.info.stalls += 1
                self.kill()
