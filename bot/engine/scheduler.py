"""The asyncio side of the engine: a bounded, fair queue that forms batches.

- Bounded: a full queue or a user over their in-flight cap is refused at once
  with `Busy` and a retry hint, instead of waiting without end.
- Fair: each lane serves users round-robin, so one user's flood cannot starve others.
- Two lanes: people first; background work (auto-tagging) only fills what is left.
- Batches are formed when the executor is free (no timer, as in
  text-embeddings-inference): the head request fixes the batch key, compatible
  requests join in round-robin order until the token budget or size cap is hit.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Any, Protocol

from .errors import Busy, Cancelled, DeadlineExceeded, EngineError, from_wire
from .metrics import Metrics
from .requests.base import Failure, Request

log = logging.getLogger(__name__)

OnChunk = Callable[[int, int, str], None]


class Executor(Protocol):
    """Runs one batch at a time: one outcome (result or Failure) per request, in order."""

    async def execute(self, task: str, requests: list[Request], on_chunk: OnChunk) -> list[Any]: ...


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


class Priority(IntEnum):
    INTERACTIVE = 0
    BACKGROUND = 1


class JobState(Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


_END = object()


@dataclass(eq=False)
class Job:
    """One submitted request: await `result()`, iterate `chunks()`, ask `position()`/`eta()`."""

    id: int
    request: Request
    user: str
    priority: Priority
    deadline: float | None
    enqueued_at: float
    scheduler: Scheduler = field(repr=False)
    state: JobState = JobState.QUEUED
    future: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future(), repr=False)
    _chunks: asyncio.Queue = field(default_factory=asyncio.Queue, repr=False)

    async def result(self) -> Any:
        try:
            return await asyncio.shield(self.future)
        except asyncio.CancelledError:
            self.cancel()  # the caller went away: don't run it for nobody
            raise

    async def chunks(self) -> AsyncIterator[tuple[int, str]]:
        """(sequence index, text delta) as the model produces them; ends when the job ends."""
        while (item := await self._chunks.get()) is not _END:
            yield item

    def position(self) -> int | None:
        """How many requests will be served before this one; None once it runs."""
        return self.scheduler.position(self) if self.state is JobState.QUEUED else None

    def eta(self) -> float | None:
        """Estimated seconds until this job's batch starts running."""
        return self.scheduler.eta(self) if self.state is JobState.QUEUED else None

    def cancel(self) -> None:
        self.scheduler.cancel(self)

    def _finish(self, outcome: Any) -> None:
        self.state = JobState.DONE
        if not self.future.done():
            if isinstance(outcome, BaseException):
                self.future.set_exception(outcome)
                self.future.exception()  # mark retrieved: a dropped job may have no one awaiting it
            else:
                self.future.set_result(outcome)
        self._chunks.put_nowait(_END)


class Lane:
    """Per-user FIFO queues visited round-robin (the dict's order is the service order)."""

    def __init__(self) -> None:
        self.users: OrderedDict[str, deque[Job]] = OrderedDict()
        self.size = 0

    def push(self, job: Job) -> None:
        self.users.setdefault(job.user, deque()).append(job)
        self.size += 1

    def remove(self, job: Job) -> bool:
        queue = self.users.get(job.user)
        if queue is None or job not in queue:
            return False
        queue.remove(job)
        self.size -= 1
        if not queue:
            del self.users[job.user]
        return True

    def jobs(self) -> list[Job]:
        return [job for queue in self.users.values() for job in queue]

    def served(self, users: list[str]) -> None:
        """Users that just got a turn go to the back of the line."""
        for user in users:
            if user in self.users:
                self.users.move_to_end(user)


class Scheduler:
    def __init__(
        self,
        executor: Executor,
        *,
        metrics: Metrics | None = None,
        max_queue: int = 64,
        max_per_user: int = 3,
        max_background: int = 256,
        max_batch_tokens: int = 8192,
        max_batch_size: int = 32,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.executor = executor
        self.metrics = metrics or Metrics()
        self.max_queue = max_queue
        self.max_per_user = max_per_user
        self.max_background = max_background
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_size = max_batch_size
        self.clock = clock
        self.lanes = {priority: Lane() for priority in Priority}
        self.in_flight: dict[str, int] = {}  # interactive jobs queued or running, per user
        self.running: list[Job] = []
        self._running_since = 0.0
        self._ids = itertools.count(1)
        self._wakeup = asyncio.Event()
        self._loop_task: asyncio.Task | None = None

    # --- admission -------------------------------------------------------------------------
    def submit(self, request: Request, *, user: str, priority: Priority = Priority.INTERACTIVE,
               timeout: float | None = None) -> Job:
        """Validate and enqueue, or raise InvalidInput / Busy at once."""
        request.validate()
        lane = self.lanes[priority]
        if priority is Priority.BACKGROUND:
            if lane.size >= self.max_background:
                self.metrics.record_shed("background_full")
                raise Busy("Background work is backed up; this item was skipped.", retry_after=self._drain_estimate())
        else:
            if lane.size >= self.max_queue:
                self.metrics.record_shed("queue_full")
                retry = self._drain_estimate()
                raise Busy(f"I'm busy right now ({plural(lane.size, 'request')} waiting). Please try again in about {retry:.0f} s.", retry_after=retry)
            if self.in_flight.get(user, 0) >= self.max_per_user:
                self.metrics.record_shed("user_cap")
                raise Busy(f"You already have {plural(self.max_per_user, 'request')} in progress. Wait for one to finish, then try again.",
                           retry_after=self.metrics.seconds_per_request(request.task))
            self.in_flight[user] = self.in_flight.get(user, 0) + 1
        now = self.clock()
        job = Job(next(self._ids), request, user, priority, None if timeout is None else now + timeout, now, self)
        lane.push(job)
        self._wakeup.set()
        return job

    async def run(self, request: Request, **kwargs: Any) -> Any:
        return await self.submit(request, **kwargs).result()

    def cancel(self, job: Job) -> None:
        if job.state is JobState.QUEUED and self.lanes[job.priority].remove(job):
            self._release(job, Cancelled("Cancelled."))
        # A running job finishes with its batch; its result is simply not awaited.

    # --- waiting honestly ------------------------------------------------------------------
    def queue_depth(self, priority: Priority = Priority.INTERACTIVE) -> int:
        return self.lanes[priority].size

    def position(self, job: Job) -> int:
        ahead = sum(self.lanes[p].size for p in Priority if p < job.priority)
        lane = self.lanes[job.priority]
        mine = lane.users.get(job.user, deque())
        k = mine.index(job) if job in mine else 0
        before = True  # users earlier in the round-robin order get one more turn before mine
        for user, queue in lane.users.items():
            if user == job.user:
                before = False
                continue
            ahead += min(len(queue), k + 1 if before else k)
        return ahead + k

    def eta(self, job: Job) -> float:
        return self._running_left() + self.position(job) * self.metrics.seconds_per_request(job.request.task)

    def _running_left(self) -> float:
        if not self.running:
            return 0.0
        expected = self.metrics.batch_seconds(self.running[0].request.task)
        return max(0.0, expected - (self.clock() - self._running_since))

    def _drain_estimate(self) -> float:
        jobs = self.lanes[Priority.INTERACTIVE].jobs()
        per_request = sum(self.metrics.seconds_per_request(j.request.task) for j in jobs)
        return max(1.0, self._running_left() + per_request)

    # --- the batching loop -----------------------------------------------------------------
    def start(self) -> None:
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._serve(), name="scheduler")

    async def close(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None
        # The batch that was running when the loop was cancelled has no one left to finish it.
        running, self.running = self.running, []
        for job in running:
            if job.state is not JobState.DONE:
                self._release(job, Cancelled("The bot is shutting down."))
        for lane in self.lanes.values():
            for job in lane.jobs():
                lane.remove(job)
                self._release(job, Cancelled("The bot is shutting down."))

    async def _serve(self) -> None:
        while True:
            batch = self.next_batch()
            if not batch:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            try:
                await self._execute(batch)
            except Exception:  # a bug here must not leave requests waiting forever
                log.exception("Scheduler failed on a batch of %d", len(batch))
                for job in batch:
                    if job.state is not JobState.DONE:
                        self._release(job, EngineError("Something went wrong while running the model. Please try again."))

    def next_batch(self) -> list[Job]:
        """Take the next batch off the queues (called when the executor is free)."""
        self._drop_expired()
        head_lane = next((lane for lane in self.lanes.values() if lane.size), None)
        if head_lane is None:
            return []
        head = next(iter(head_lane.users.values()))[0]
        key = head.request.batch_key()
        batch, tokens = [], 0
        for lane in self.lanes.values():  # interactive first; background fills what is left
            served: list[str] = []
            progress = True
            while progress and len(batch) < self.max_batch_size:
                progress = False
                for user, queue in list(lane.users.items()):  # one job per user per round
                    job = next((j for j in queue if j.request.batch_key() == key), None)
                    if job is None:
                        continue
                    cost = job.request.cost()
                    if batch and tokens + cost > self.max_batch_tokens:
                        continue
                    lane.remove(job)
                    batch.append(job)
                    tokens += cost
                    served.append(user)
                    progress = True
                    if len(batch) >= self.max_batch_size:
                        break
            lane.served(list(dict.fromkeys(served)))
        return batch

    def _drop_expired(self) -> None:
        now = self.clock()
        for lane in self.lanes.values():
            for job in lane.jobs():
                if job.deadline is not None and now >= job.deadline:
                    lane.remove(job)
                    self.metrics.record_shed("deadline")
                    self._release(job, DeadlineExceeded("This request waited too long in the queue and was dropped. Please try again."))

    async def _execute(self, batch: list[Job]) -> None:
        task = batch[0].request.task
        self.running, self._running_since = batch, self.clock()
        for job in batch:
            job.state = JobState.RUNNING
            self.metrics.record_wait(task, self._running_since - job.enqueued_at)

        def on_chunk(index: int, sequence: int, text: str) -> None:
            batch[index]._chunks.put_nowait((sequence, text))

        try:
            outcomes = await self.executor.execute(task, [job.request for job in batch], on_chunk)
        except EngineError as error:
            outcomes = [error] * len(batch)
        except Exception:
            log.exception("Batch of %d %s requests failed", len(batch), task)
            outcomes = [EngineError("Something went wrong while running the model. Please try again.")] * len(batch)
        self.metrics.record_batch(task, len(batch), self.clock() - self._running_since)
        self.running = []
        for job, outcome in zip(batch, outcomes):
            if isinstance(outcome, Failure):
                outcome = from_wire(outcome.kind, outcome.message)
            self._release(job, outcome)

    def _release(self, job: Job, outcome: Any) -> None:
        if job.priority is Priority.INTERACTIVE:
            left = self.in_flight.get(job.user, 1) - 1
            if left:
                self.in_flight[job.user] = left
            else:
                self.in_flight.pop(job.user, None)
        if not isinstance(outcome, Cancelled):
            self.metrics.record_outcome(job.request.task, not isinstance(outcome, BaseException))
        job._finish(outcome)
