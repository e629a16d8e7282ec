"""Load generators and probes: the open-loop driver, the naive and static-batching servers, the event-loop lag
probe, a CPU-contention probe, and a worker handle that records per-batch timings.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.engine import Busy, EngineError
from bot.engine.messages import UnitDone
from bot.engine.passes import FORWARD_TOKENS, PassShape, padded_chunks, padded_width
from bot.engine.supervisor import WorkerProcess

from .workload import pct

now = time.perf_counter


async def sleep_until(t: float) -> None:
    delay = t - now()
    if delay > 0:
        await asyncio.sleep(delay)


@dataclass
class RunResult:
    """One load run: latencies (s) of completed requests, counted from the scheduled arrival."""

    latencies: list[float] = field(default_factory=list)
    started: float = 0.0  # first scheduled arrival
    finished: float = 0.0  # last completion
    completed: int = 0
    refused: int = 0  # Busy
    failed: int = 0  # any other EngineError
    units: float = 0.0  # requests, or new tokens for generation
    errors: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return max(self.finished - self.started, 1e-9)

    @property
    def rate(self) -> float:
        return self.units / self.seconds

    def ms(self, q: float) -> float | None:
        v = pct(self.latencies, q)
        return None if v is None else v * 1000

    def record(self, arrival: float, units: float) -> None:
        done = now()
        self.latencies.append(done - arrival)
        self.completed += 1
        self.units += units
        self.finished = max(self.finished, done)


Call = Callable[[int], Awaitable[float]]  # request index -> units served (1, or new tokens)


async def open_loop(call: Call, offsets: Sequence[float], lead: float = 0.05) -> RunResult:
    """Send request i at start + offsets[i] whatever happened to earlier ones."""
    result = RunResult()
    start = now() + lead
    result.started = start

    async def one(i: int) -> None:
        arrival = start + offsets[i]
        await sleep_until(arrival)
        try:
            units = await call(i)
        except Busy:
            result.refused += 1
            return
        except EngineError as error:
            result.failed += 1
            result.errors.append(f"{type(error).__name__}: {error}")
            return
        result.record(arrival, units)

    await asyncio.gather(*(one(i) for i in range(len(offsets))))
    return result


def single_thread_server(
    fn: Callable[[Any], Any], units: Callable[[Any], float] = lambda _: 1.0
) -> Callable[[Any], Awaitable[float]]:
    """The naive server: one request at a time, in arrival order, on one thread."""
    lock = asyncio.Lock()  # FIFO: waiters are woken in the order they arrived

    async def serve(payload: Any) -> float:
        async with lock:
            out = await asyncio.to_thread(fn, payload)
        return units(out)

    return serve


def static_batching_server(fn: Callable[[list[Any]], list[float]], max_batch: int) -> Callable[[Any], Awaitable[float]]:
    """Static batching: whatever waits when the model is free runs as ONE call (at most
    `max_batch` payloads); later arrivals wait for the next call. One call at a time."""
    waiting: list[tuple[Any, asyncio.Future]] = []
    busy = False

    def kick() -> None:
        nonlocal busy
        if busy or not waiting:
            return
        busy = True
        batch = waiting[:max_batch]
        del waiting[:max_batch]
        runner = asyncio.ensure_future(asyncio.to_thread(fn, [payload for payload, _ in batch]))

        def finished(task: asyncio.Future) -> None:
            nonlocal busy
            busy = False
            for (_, future), units in zip(batch, task.result()):
                future.set_result(float(units))
            kick()

        runner.add_done_callback(finished)

    async def serve(payload: Any) -> float:
        future = asyncio.get_running_loop().create_future()
        waiting.append((payload, future))
        kick()
        return await future

    return serve


# --- probes ------------------------------------------------------------------------------


class LagProbe:
    """Sleeps 10 ms over and over on the event loop and records the oversleep."""

    def __init__(self, interval: float = 0.010) -> None:
        self.interval = interval
        self.samples: list[float] = []
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        while True:
            t = now()
            await asyncio.sleep(self.interval)
            self.samples.append(now() - t - self.interval)

    def __enter__(self) -> LagProbe:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()

    def ms(self, q: float) -> float | None:
        v = pct(self.samples, q)
        return None if v is None else v * 1000


_TICK = os.sysconf("SC_CLK_TCK")


def _proc_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime (all threads)
    except (OSError, IndexError, ValueError):
        return 0


def _cpu_ticks() -> tuple[int, int]:
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (parts + [0] * 8)[:8]
    return user + nice + system + irq + softirq, steal


class CpuProbe:
    """CPU cores used during a phase: by this process, by the worker, and by everything
    else on the machine (other people's jobs share these 2 cores: it shows here)."""

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        self.pids = pids

    def __enter__(self) -> CpuProbe:
        self._t = now()
        self._busy, self._steal = _cpu_ticks()
        self._own = {pid: _proc_ticks(pid) for pid in self.pids()}
        return self

    def __exit__(self, *exc: object) -> None:
        wall = max(now() - self._t, 1e-9)
        busy, steal = _cpu_ticks()
        own = {pid: _proc_ticks(pid) - self._own.get(pid, 0) for pid in self.pids()}
        total = (busy - self._busy) / _TICK / wall
        mine = sum(own.values()) / _TICK / wall
        self.cores = {
            "bench_process": round(own.get(os.getpid(), 0) / _TICK / wall, 2),
            "worker": round(sum(v for p, v in own.items() if p != os.getpid()) / _TICK / wall, 2),
            "other_processes": round(max(0.0, total - mine), 2),
            "steal": round((steal - self._steal) / _TICK / wall, 2),
        }
        self.own_cpu_seconds = sum(own.values()) / _TICK
        self.wall = wall


# --- the engine's worker, with per-batch timings ------------------------------------------


@dataclass
class BatchRecord:
    task: str
    size: int
    worker_seconds: float  # the unit inside the worker (tokenize + forward + postprocess; a whole generation)
    round_trip: float  # parent: sent -> the worker's "unit done" on the event loop
    started: float
    requests: list = field(default_factory=list, repr=False)
    phases: dict[str, float] | None = None  # the worker's seconds per phase (EngineConfig.profile_passes)


class TimedWorker(WorkerProcess):
    """The real WorkerProcess; also keeps the worker-side seconds of each unit, which the
    engine receives in the worker's UnitDone message but does not keep."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches: list[BatchRecord] = []
        self._sent: dict[int, tuple[str, Any, float]] = {}  # job id -> (task, request, sent at)

    async def run(self, task: str, jobs: list, events: Any) -> None:
        sent = now()
        self._sent.update((job_id, (task, request, sent)) for job_id, request in jobs)
        await super().run(task, jobs, events)

    def _on_message(self, generation: int, message: Any) -> None:
        unit = (
            self._units.get(message.unit_id)
            if isinstance(message, UnitDone) and generation == self._generation
            else None
        )
        if unit is not None:
            sent = [self._sent.pop(job_id) for job_id in unit.job_ids if job_id in self._sent]
            if sent:
                self.batches.append(
                    BatchRecord(
                        sent[0][0],
                        len(sent),
                        message.seconds,
                        now() - sent[0][2],
                        sent[0][2],
                        [request for _, request, _ in sent],
                        message.phases,
                    )
                )
        super()._on_message(generation, message)


def batch_summary(
    batches: Sequence[BatchRecord],
    wall: float,
    lengths: Callable[[list], list[int]] | None = None,
    passes: PassShape | None = None,
) -> dict[str, Any]:
    """Sizes and timings of the batches the engine formed in one phase. With `lengths`
    (token lengths of a batch's sequences) and the worker's pass shape, also the padding of the
    engine's forward passes, chunked exactly as the tasks chunk them (padded_chunks)."""
    if not batches:
        return {}
    padding = None
    if lengths is not None and passes is not None:
        real = padded = 0
        for b in batches:
            ls = lengths(b.requests)
            real += sum(ls)
            padded += sum(
                len(chunk) * padded_width(max(ls[i] for i in chunk), passes.pad_multiple)
                for chunk in padded_chunks(ls, FORWARD_TOKENS, passes.rows, passes.pad_multiple)
            )
        padding = round(1 - real / padded, 3) if padded else None
    sizes = [b.size for b in batches]
    worker = sum(b.worker_seconds for b in batches)
    trip = sum(b.round_trip for b in batches)
    return {
        "batches": len(batches),
        "mean_batch_size": round(sum(sizes) / len(sizes), 2),
        "max_batch_size": max(sizes),
        "worker_compute_s": round(worker, 3),
        "round_trip_s": round(trip, 3),
        "ipc_overhead_s": round(trip - worker, 3),  # pickling, pipe, reader thread, loop hand-off
        "ipc_overhead_ms_per_batch": round((trip - worker) / len(batches) * 1000, 2),
        "executor_busy_fraction": round(trip / wall, 3),  # rest: the scheduler waiting for work
    } | ({"padding_fraction": padding} if padding is not None else {})
