"""The asyncio side of the engine: a bounded, fair queue that hands the worker work
one step at a time.

- Bounded: a full queue or a user over their in-flight cap is refused at once
  with `Busy` and a retry hint, instead of waiting without end.
- Fair: each lane serves users round-robin, so one user's flood cannot starve others.
- Two lanes: people first; background work (auto-tagging) only fills what is left.
- Step-sized units: the worker gets one classification unit at a time — one forward
  pass, formed when the previous one is done (no timer, as in text-embeddings-inference):
  the head request fixes the batch key, compatible requests join round-robin under the
  token budget and the device's rows per pass. Generation requests go to the worker
  one by one as long as rows are free, and decode alongside each other; so a request
  that arrives while others run waits for about one step, not for a whole batch.
- Cancel and deadlines reach running generations: they stop at the next step.
- A newcomer does not wait for someone's flood: where the executor can (`preemptible`), the pass of a
  user who has more waiting is given up mid-pass and the newcomer's request runs first.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Any, Protocol

from .config import ModelInfo
from .errors import FAILED, Busy, Cancelled, DeadlineExceeded, EngineError, from_wire
from .metrics import Metrics
from .passes import MAX_PADDING, PassShape
from .preemption import Preempted
from .request import Failure, Request

log = logging.getLogger(__name__)

ACTIVE_SECONDS = 2.0  # a user served this recently still counts as present (see next_unit)
TICK = 0.5  # seconds between deadline checks while nothing else wakes the scheduler
SIMILAR_TOKENS = 8  # a row this many tokens longer than the head's still joins its pass (much_longer)
# Estimated padding a shared pass may reach; tighter than the worker's MAX_PADDING, as estimates are rough
# (bench.profile, sentiment on 2 cores: about 10% more requests a second than passes filled to the budget).
UNIT_PADDING = 0.15
ESTIMATE_SLACK = 2  # tokens a row's estimate may be off by (4 characters a token, rounded)


@dataclass
class ExecutorInfo:
    """What the executor tells `/status`, and the step size it wants."""

    state: str = "starting"  # starting | running | restarting | stalled, restarting | stopped
    pid: int | None = None
    device: str = "starting"
    dtypes: dict[str, str] = field(default_factory=dict)  # role -> dtype
    restarts: int = 0
    stalls: int = 0  # restarts because the worker stopped making progress (killed by the watchdog)
    models: tuple[ModelInfo, ...] = ()  # the models in memory, most recently used first
    generation_batching: str = ""
    passes: PassShape = PassShape(64, 8192)  # how big one classification forward pass is on the device
    # Classification units at the executor at once: one per process that runs them (a worker,
    # or each Ray replica), so the queue, and so fairness, stays here.
    classify_window: int = 1
    preemptible: bool = False  # a running classification unit can be given up (Executor.preempt)

    @property
    def alive(self) -> bool:
        return self.state == "running"


class JobEvents(Protocol):
    """Where an executor reports each job of a unit: text deltas, then exactly one outcome."""

    def chunk(self, job_id: int, sequence: int, text: str) -> None: ...

    def done(self, job_id: int, outcome: Any) -> None: ...


class Executor(Protocol):
    """Runs units of work. `run` returns once every job of the unit has been reported to
    `events` (or was cancelled), and raises an EngineError when the unit failed as a whole."""

    info: ExecutorInfo

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def run(self, task: str, jobs: list[tuple[int, Request]], events: JobEvents) -> None: ...

    def cancel(self, job_id: int) -> None: ...

    def preempt(self, job_id: int) -> None:
        """Give up the running classification unit holding this job, if it is still running: `run` then
        raises Preempted, with none of its jobs reported. Called only where `info.preemptible`."""


def row_tokens(request: Request) -> float:
    """Estimated tokens of each of a request's rows."""
    return request.cost() / request.rows()


def much_longer(request: Request, head: Request) -> bool:
    """Whether a request's rows would stretch the head's pass: longer than padding allows (a few tokens
    more always pass: the estimate is rough, and a pass's fixed cost outweighs them)."""
    return row_tokens(request) > (1 + MAX_PADDING) * row_tokens(head) + SIMILAR_TOKENS


def length_gap(request: Request, head: Request) -> float:
    return abs(row_tokens(request) - row_tokens(head))


def candidate(queue: deque[Job], head: Job, by_length: bool) -> Job | None:
    """A user's job that may share the head's pass: their first, or (`by_length`) the one nearest the head's
    length (a user's requests are independent, and a pass of one length pads little)."""
    key = head.request.batch_key()
    jobs = (job for job in queue if job.request.batch_key() == key)
    if not by_length:
        return next(jobs, None)
    return min(jobs, key=lambda job: length_gap(job.request, head.request), default=None)


def padded_over(rows: int, widest: float, tokens: float) -> bool:
    """Whether a pass of `rows` rows padded to `widest` tokens would pad more than UNIT_PADDING of `tokens`
    (with a little slack per row: short texts' estimates are too coarse to tell a token or two apart)."""
    return rows * (widest + ESTIMATE_SLACK) > (1 + UNIT_PADDING) * (tokens + rows * ESTIMATE_SLACK)


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
    started_at: float | None = None  # the scheduler's clock, when its unit went to the executor
    finished_at: float | None = None
    preempted: bool = False  # its pass was given up once for a newcomer; not again
    preempting: bool = False  # it cut a flood's pass short: it runs next, in a pass of its own
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
        """Estimated seconds until this job starts running."""
        return self.scheduler.eta(self) if self.state is JobState.QUEUED else None

    def cancel(self) -> None:
        self.scheduler.cancel(self)

    def run_seconds(self) -> float | None:
        """How long it ran (its unit's time at the executor, loading a model included); None until it ends."""
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    def _finish(self, outcome: Any) -> None:
        self.state = JobState.DONE
        self.finished_at = self.scheduler.clock()
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

    def push_front(self, job: Job) -> None:
        """A job back from a given-up pass: first again in its user's queue."""
        self.users.setdefault(job.user, deque()).appendleft(job)
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
        self.max_batch_size = max_batch_size  # rows decoding at once; the cap of a classification unit too
        self.clock = clock
        self.lanes = {priority: Lane() for priority in Priority}
        self.in_flight: dict[str, int] = {}  # interactive jobs queued or running, per user
        self.running: dict[int, Job] = {}  # job id -> job, at the executor
        self._passes: list[list[Job]] = []  # the classification units at the executor
        self._classifying = 0  # classification units at the executor
        self._decoding_rows = 0  # generation rows at the executor
        self._last_served: dict[str, float] = {}  # user -> when a unit of theirs last went to the executor
        self._ids = itertools.count(1)
        self._wakeup = asyncio.Event()
        self._loop_task: asyncio.Task | None = None
        self._units: set[asyncio.Task] = set()

    # --- admission -------------------------------------------------------------------------
    def submit(
        self, request: Request, *, user: str, priority: Priority = Priority.INTERACTIVE, timeout: float | None = None
    ) -> Job:
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
                raise Busy(
                    f"I'm busy right now ({plural(lane.size, 'request')} waiting). "
                    f"Please try again in about {retry:.0f} s.",
                    retry_after=retry,
                )
            if self.in_flight.get(user, 0) >= self.max_per_user:
                self.metrics.record_shed("user_cap")
                raise Busy(
                    f"You already have {plural(self.max_per_user, 'request')} in progress. "
                    "Wait for one to finish, then try again.",
                    retry_after=self.metrics.seconds_per_request(request.task),
                )
            self.in_flight[user] = self.in_flight.get(user, 0) + 1
        now = self.clock()
        job = Job(next(self._ids), request, user, priority, None if timeout is None else now + timeout, now, self)
        lane.push(job)
        if self.executor.info.preemptible:
            self._preempt_for(job)
        self._wakeup.set()
        return job

    def _preempt_for(self, job: Job) -> None:
        """Give up a running pass that is all one other user's backlog (they have more waiting), so the
        newcomer's request does not wait for it. Each pass is given up at most once, and only for someone
        with nothing else in flight: the work lost is at most the part of one pass per newcomer."""
        if job.priority is not Priority.INTERACTIVE or job.request.streams or self.in_flight.get(job.user) != 1:
            return
        lane = self.lanes[Priority.INTERACTIVE]
        for unit in self._passes:
            owners = {queued.user for queued in unit}
            if (
                len(owners) == 1
                and job.user not in owners
                and lane.users.get(unit[0].user)
                and all(queued.priority is Priority.INTERACTIVE and not queued.preempted for queued in unit)
            ):
                for queued in unit:
                    queued.preempted = True
                job.preempting = True
                lane.users.move_to_end(job.user, last=False)  # first in the round-robin order
                self.executor.preempt(unit[0].id)
                return

    async def run(self, request: Request, **kwargs: Any) -> Any:
        return await self.submit(request, **kwargs).result()

    def cancel(self, job: Job, error: EngineError | None = None) -> None:
        """Drop a queued job, or stop a running one at the worker's next step."""
        error = error or Cancelled("Cancelled.")
        if job.state is JobState.QUEUED and self.lanes[job.priority].remove(job):
            self._release(job, error)
        elif job.state is JobState.RUNNING and self.running.pop(job.id, None) is job:
            self.executor.cancel(job.id)
            self._release(job, error)

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
        return self.position(job) * self.metrics.seconds_per_request(job.request.task)

    def _drain_estimate(self) -> float:
        jobs = self.lanes[Priority.INTERACTIVE].jobs()
        return max(1.0, sum(self.metrics.seconds_per_request(j.request.task) for j in jobs))

    # --- handing out work ------------------------------------------------------------------
    def start(self) -> None:
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._serve(), name="scheduler")

    async def close(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None
        units, self._units = self._units, set()
        for unit in units:
            unit.cancel()
        await asyncio.gather(*units, return_exceptions=True)
        for job in list(self.running.values()):
            self.running.pop(job.id)
            self._release(job, Cancelled("The bot is shutting down."))
        for lane in self.lanes.values():
            for job in lane.jobs():
                lane.remove(job)
                self._release(job, Cancelled("The bot is shutting down."))

    async def _serve(self) -> None:
        while True:
            self._expire()
            unit = self.next_unit()
            if unit:
                self._dispatch(unit)
                continue
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):  # (asyncio.wait_for could swallow a cancel here)
                async with asyncio.timeout(TICK):
                    await self._wakeup.wait()

    def next_unit(self) -> list[Job]:
        """Take the next unit of work off the queues, if the executor has room for it."""
        head = self._head()
        if head is None:
            return []
        if head.request.streams or head.preempting:
            # One request decodes alongside the others; one that cut a flood's pass short pays for its own only.
            head.preempting = False
            self.lanes[head.priority].remove(head)
            self.lanes[head.priority].served([head.user])
            return [head]
        unit: list[Job] = []
        tokens = rows = 0
        widest = 0.0
        passes = self.executor.info.passes
        max_rows = min(self.max_batch_size, passes.rows)
        max_tokens = min(self.max_batch_tokens, passes.tokens)  # a pass sized by tokens: short texts fill more rows
        # While several people are around, a pass takes one job per user, so a newcomer waits for one row of
        # someone's flood, not a full pass; a pass that only one user's backlog fills takes up to a quarter of
        # a full pass of theirs where the executor can give it up for a newcomer (bench: the flood ran about
        # 20% faster in 8-row passes than in 1-row ones on 2 CPU cores, the newcomer as fast). None much
        # longer than the head's (a short request's pass is not stretched by someone's long one), each
        # user's request nearest the head's length, the nearest first, while the pass pads little.
        one_round = self._present_users() > 1
        backlog_rows = max(1, max_rows // 4) if self.executor.info.preemptible else 1

        def round_over(served: list[str]) -> bool:
            return one_round and bool(served) and (len(set(served)) > 1 or rows >= backlog_rows)

        for lane in self.lanes.values():  # interactive first; background fills what is left
            served: list[str] = []
            progress = True
            while progress and rows < max_rows and not round_over(served):
                progress = False
                firsts = [
                    (user, job) for user, queue in lane.users.items() if (job := candidate(queue, head, one_round))
                ]
                if one_round:
                    firsts = [(user, job) for user, job in firsts if not much_longer(job.request, head.request)]
                    firsts.sort(key=lambda item: (item[1] is not head, length_gap(item[1].request, head.request)))
                for user, job in firsts:  # one job per user per round
                    # The first job always runs, even over the budget alone.
                    cost, width = job.request.cost(), max(widest, row_tokens(job.request))
                    if unit and (
                        tokens + cost > max_tokens
                        or rows + job.request.rows() > max_rows
                        or (one_round and padded_over(rows + job.request.rows(), width, tokens + cost))
                    ):
                        continue
                    lane.remove(job)
                    unit.append(job)
                    tokens += cost
                    rows += job.request.rows()
                    widest = width
                    served.append(user)
                    progress = True
            lane.served(list(dict.fromkeys(served)))
        return unit

    def _present_users(self) -> int:
        """People waiting now, or served in the last ACTIVE_SECONDS (so likely to be back soon)."""
        now = self.clock()
        recent = {user for user, at in self._last_served.items() if now - at < ACTIVE_SECONDS}
        if len(self._last_served) > 4 * len(recent) + 64:  # forget the long gone
            self._last_served = {user: self._last_served[user] for user in recent}
        return len(recent | set(self.lanes[Priority.INTERACTIVE].users))

    def _head(self) -> Job | None:
        """The first job in round-robin order whose kind of work has room at the executor."""
        room_to_classify = self._classifying < self.executor.info.classify_window
        free_rows = self.max_batch_size - self._decoding_rows
        for lane in self.lanes.values():
            for queue in lane.users.values():
                job = queue[0]
                if job.request.streams:
                    # A request wider than the whole cap still runs, alone.
                    if job.request.rows() <= free_rows or not self._decoding_rows:
                        return job
                elif room_to_classify:
                    return job
        return None

    def _expire(self) -> None:
        now = self.clock()
        for lane in self.lanes.values():
            for job in lane.jobs():
                if job.deadline is not None and now >= job.deadline:
                    lane.remove(job)
                    self.metrics.record_shed("deadline")
                    self._release(
                        job,
                        DeadlineExceeded(
                            "This request waited too long in the queue and was dropped. Please try again."
                        ),
                    )
        for job in list(self.running.values()):
            # A classification pass ends within a step anyway; a generation is stopped at its next one.
            if job.request.streams and job.deadline is not None and now >= job.deadline:
                self.metrics.record_shed("deadline")
                self.cancel(
                    job, DeadlineExceeded("The answer took too long and was stopped. Please try a shorter one.")
                )

    def _dispatch(self, unit: list[Job]) -> None:
        """Take the unit's room at the executor (before the next unit forms), then run it."""
        task, started = unit[0].request.task, self.clock()
        rows = sum(job.request.rows() for job in unit)
        if unit[0].request.streams:
            self._decoding_rows += rows
        else:
            self._classifying += 1
            self._passes.append(unit)
        self.metrics.record_unit(task, len(unit), rows)
        for job in unit:
            if job.priority is Priority.INTERACTIVE:
                self._last_served[job.user] = started
            job.state, job.started_at = JobState.RUNNING, started
            self.running[job.id] = job
            self.metrics.record_wait(task, started - job.enqueued_at)
        runner = asyncio.create_task(self._execute(unit, started), name=f"unit-{task}")
        self._units.add(runner)
        runner.add_done_callback(self._units.discard)

    async def _execute(self, unit: list[Job], started: float) -> None:
        task = unit[0].request.task
        rows = sum(job.request.rows() for job in unit)
        streams = unit[0].request.streams
        error: EngineError | None = None
        preempted = False
        try:
            await self.executor.run(task, [(job.id, job.request) for job in unit], self)
        except Preempted:
            preempted = True
        except EngineError as failed:
            error = failed
        except Exception:  # a bug here must not leave requests waiting forever
            log.exception("A unit of %d %s requests failed", len(unit), task)
            error = EngineError(FAILED)
        finally:
            if streams:
                self._decoding_rows -= rows
            else:
                self._classifying -= 1
                self._passes.remove(unit)
            self._wakeup.set()
        if preempted:
            self.metrics.record_preempted(task)
            for job in reversed(unit):  # back to the front of their queue, in their order
                if self.running.pop(job.id, None) is job:
                    job.state, job.started_at = JobState.QUEUED, None
                    self.lanes[job.priority].push_front(job)
            return
        # A unit's pass is shared by its jobs; a generation's steps by the rows decoding with it.
        self.metrics.record_compute(
            task, self.clock() - started, len(unit) if not streams else self._decoding_rows + rows
        )
        for job in unit:
            if self.running.pop(job.id, None) is job:  # not reported: the unit failed as a whole
                self._release(job, error or EngineError(FAILED))

    # --- JobEvents: what the executor reports ------------------------------------------------
    def chunk(self, job_id: int, sequence: int, text: str) -> None:
        job = self.running.get(job_id)
        if job is not None:
            job._chunks.put_nowait((sequence, text))

    def done(self, job_id: int, outcome: Any) -> None:
        job = self.running.pop(job_id, None)
        if job is not None:
            self._release(job, from_wire(outcome.kind, outcome.message) if isinstance(outcome, Failure) else outcome)

    def _release(self, job: Job, outcome: Any) -> None:
        if job.priority is Priority.INTERACTIVE:
            left = self.in_flight.get(job.user, 1) - 1
            if left:
                self.in_flight[job.user] = left
            else:
                self.in_flight.pop(job.user, None)
        if not isinstance(outcome, Cancelled):
            ok = not isinstance(outcome, BaseException)
            # A streaming task's result counts the tokens it wrote per sequence (specs' Streaming contract);
            # read leniently: a result without them must not leave its job unfinished.
            written = sum(getattr(outcome, "new_tokens", ())) if ok and job.request.streams else 0
            self.metrics.record_outcome(job.request.task, ok, written)
        job._finish(outcome)
