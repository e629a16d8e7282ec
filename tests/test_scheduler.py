"""Scheduler tests with a fake executor (no models, no worker) and a fake clock.

The executor records every unit and holds it until the test releases it, so each
test decides exactly what is running and what is queued when the next unit forms.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio

from bot.engine import (
    Busy,
    Cancelled,
    DeadlineExceeded,
    EngineError,
    InvalidInput,
    ModelUnavailable,
    Priority,
    ResourceExhausted,
    Scheduler,
    WorkerCrashed,
)
from bot.engine.passes import PassShape
from bot.engine.preemption import Preempted
from bot.engine.request import Failure
from bot.engine.scheduler import ACTIVE_SECONDS, ExecutorInfo, JobEvents, JobState
from bot.specs.fill_mask import FillMaskRequest
from bot.specs.generation import GenerationRequest
from bot.specs.sentiment import SentimentRequest
from bot.specs.tokenize import TokenizeRequest
from bot.specs.zero_shot import ZeroShotRequest

WAIT = 5.0  # seconds before a missing event fails the test instead of hanging it


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Call:
    """One unit handed to the executor."""

    task: str
    job_ids: list[int]
    requests: list
    events: JobEvents
    released: asyncio.Event = field(default_factory=asyncio.Event)
    error: BaseException | None = None

    def on_chunk(self, index: int, sequence: int, text: str) -> None:
        self.events.chunk(self.job_ids[index], sequence, text)

    def finish(self, outcomes: list | None = None, error: BaseException | None = None) -> None:
        """Report an outcome per job (default: ("done", request)), or fail the unit as a whole."""
        if error is None:
            for job_id, outcome in zip(self.job_ids, outcomes or [("done", r) for r in self.requests]):
                self.events.done(job_id, outcome)
        self.error = error
        self.released.set()


class FakeExecutor:
    """Holds each unit until `finish()` (or answers at once once `hold` is False)."""

    def __init__(self) -> None:
        self.info = ExecutorInfo(state="running", passes=PassShape(64, 8192))
        self.calls: list[Call] = []
        self.cancelled: list[int] = []
        self.preempted: list[int] = []
        self.hold = True
        self._started: asyncio.Queue[Call] = asyncio.Queue()

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def cancel(self, job_id: int) -> None:
        self.cancelled.append(job_id)
        for call in self.calls:  # as the worker does: a cancelled job's unit ends at the next step
            if job_id in call.job_ids and len(call.job_ids) == 1:
                call.released.set()

    def preempt(self, job_id: int) -> None:
        """As the worker does where info.preemptible: the running unit stops at its next layer, unreported."""
        self.preempted.append(job_id)
        for call in self.calls:
            if job_id in call.job_ids and not call.released.is_set():
                call.finish(error=Preempted())

    async def run(self, task: str, jobs: list, events: JobEvents) -> None:
        call = Call(task, [job_id for job_id, _ in jobs], [request for _, request in jobs], events)
        self.calls.append(call)
        self._started.put_nowait(call)
        if self.hold:
            await call.released.wait()
        elif not call.released.is_set():
            call.finish()
        if call.error is not None:
            raise call.error

    async def next_call(self) -> Call:
        return await asyncio.wait_for(self._started.get(), WAIT)

    def ran(self, request: Any) -> bool:
        return any(r is request for call in self.calls for r in call.requests)

    def run_freely(self) -> None:
        """From now on answer every unit at once (and release the one being held)."""
        self.hold = False
        for call in self.calls:
            if not call.released.is_set():
                call.finish()


def sent(text: str) -> SentimentRequest:
    return SentimentRequest((text,))


async def outcome(job) -> Any:
    """The job's result, or the exception it ended with."""
    try:
        return await asyncio.wait_for(job.result(), WAIT)
    except EngineError as error:
        return error


@pytest_asyncio.fixture
async def make_scheduler():
    made: list[Scheduler] = []

    def make(**limits: Any) -> tuple[Scheduler, FakeExecutor, FakeClock]:
        executor, clock = FakeExecutor(), FakeClock()
        scheduler = Scheduler(executor, clock=clock, **limits)
        scheduler.start()
        made.append(scheduler)
        return scheduler, executor, clock

    yield make
    for scheduler in made:
        for call in scheduler.executor.calls:
            call.released.set()
        await scheduler.close()


async def start_blocker(scheduler: Scheduler, executor: FakeExecutor, user: str = "blocker"):
    """Occupy the executor with one held job, so later submissions queue up."""
    job = scheduler.submit(sent("blocker"), user=user)
    call = await executor.next_call()
    assert call.requests == [job.request]
    return job, call


# --- admission ---------------------------------------------------------------------------


async def test_full_queue_is_refused_with_busy_and_a_retry_hint(make_scheduler):
    scheduler, executor, clock = make_scheduler(max_queue=2, max_per_user=10)
    blocker, call = await start_blocker(scheduler, executor)
    queued = [scheduler.submit(sent("one"), user="b"), scheduler.submit(sent("two"), user="c")]
    assert scheduler.queue_depth() == 2

    with pytest.raises(Busy) as refused:
        scheduler.submit(sent("three"), user="d")
    # Nothing measured yet: 1 s default per queued request.
    assert refused.value.retry_after == pytest.approx(2.0)
    assert "busy" in str(refused.value).lower() and "2 s" in str(refused.value)
    assert scheduler.metrics.shed["queue_full"] == 1
    assert "d" not in scheduler.in_flight  # a refused request holds no slot

    # The interactive bound does not apply to background work.
    background = scheduler.submit(sent("bg"), user="d", priority=Priority.BACKGROUND)

    call.finish()
    batch = await executor.next_call()
    assert batch.requests == [q.request for q in queued] + [background.request]
    assert scheduler.queue_depth() == 0
    late = scheduler.submit(sent("three"), user="d")  # room again once the batch left the queue
    batch.finish()
    assert [await outcome(j) for j in (blocker, *queued, background)] == [
        ("done", j.request) for j in (blocker, *queued, background)
    ]
    (await executor.next_call()).finish()
    assert await outcome(late) == ("done", late.request)


async def test_full_background_lane_is_refused(make_scheduler):
    scheduler, executor, _ = make_scheduler(max_background=1)
    await start_blocker(scheduler, executor)
    scheduler.submit(sent("tag me"), user="a", priority=Priority.BACKGROUND)
    with pytest.raises(Busy, match="Background work is backed up"):
        scheduler.submit(sent("tag me too"), user="b", priority=Priority.BACKGROUND)
    assert scheduler.metrics.shed["background_full"] == 1
    scheduler.submit(sent("a person"), user="b")  # interactive still admitted


async def test_per_user_cap_refuses_and_frees_when_a_job_ends(make_scheduler):
    scheduler, executor, _ = make_scheduler(max_per_user=2)
    first = scheduler.submit(sent("a1"), user="alice")
    call = await executor.next_call()
    second = scheduler.submit(sent("a2"), user="alice")

    with pytest.raises(Busy) as refused:
        scheduler.submit(sent("a3"), user="alice")
    assert "You already have 2 requests in progress" in str(refused.value)
    assert refused.value.retry_after == pytest.approx(1.0)  # default per-request estimate
    assert scheduler.metrics.shed["user_cap"] == 1
    other = scheduler.submit(sent("b1"), user="bob")  # the cap is per user
    # Background work does not count against the cap.
    scheduler.submit(sent("bg"), user="alice", priority=Priority.BACKGROUND)

    call.finish()
    assert await outcome(first) == ("done", first.request)
    assert scheduler.in_flight["alice"] == 1
    third = scheduler.submit(sent("a3"), user="alice")  # a slot was freed
    with pytest.raises(Busy):
        scheduler.submit(sent("a4"), user="alice")

    executor.run_freely()
    for job in (second, other, third):
        assert await outcome(job) == ("done", job.request)
    assert scheduler.in_flight == {}


async def test_invalid_request_is_refused_before_it_takes_a_slot(make_scheduler):
    scheduler, executor, _ = make_scheduler(max_per_user=1)
    with pytest.raises(InvalidInput):
        scheduler.submit(sent("   "), user="alice")
    assert scheduler.in_flight == {} and scheduler.queue_depth() == 0
    job = scheduler.submit(sent("fine"), user="alice")
    (await executor.next_call()).finish()
    assert await outcome(job) == ("done", job.request)


# --- fairness and priority ---------------------------------------------------------------


async def test_round_robin_puts_a_late_user_in_the_next_pass(make_scheduler):
    scheduler, executor, _ = make_scheduler(max_per_user=100, max_batch_size=4)
    _, call = await start_blocker(scheduler, executor)
    flood = [scheduler.submit(sent(f"a{i}"), user="A") for i in range(20)]
    late = scheduler.submit(sent("b"), user="B")
    assert late.position() == 1  # only A's first request is ahead of it

    call.finish()
    batch = await executor.next_call()
    # Several people present: one job each per pass, so nobody waits behind a pass full of A's.
    assert batch.requests == [flood[0].request, late.request]
    batch.finish()
    assert await outcome(late) == ("done", late.request)


async def test_a_user_alone_fills_the_pass_and_shares_it_once_others_are_present(make_scheduler):
    scheduler, executor, clock = make_scheduler(max_per_user=100, max_batch_size=4)
    _, call = await start_blocker(scheduler, executor, user="A")
    flood = [scheduler.submit(sent(f"a{i}"), user="A") for i in range(12)]
    call.finish()
    assert (await executor.next_call()).requests == [j.request for j in flood[:4]]  # alone: a full pass
    clock.advance(ACTIVE_SECONDS / 2)
    light = scheduler.submit(sent("b"), user="B")
    executor.calls[-1].finish()
    assert (await executor.next_call()).requests == [flood[4].request, light.request]
    executor.calls[-1].finish()
    # B was served a moment ago and may be back: A still gets one row a pass...
    assert (await executor.next_call()).requests == [flood[5].request]
    clock.advance(ACTIVE_SECONDS)
    executor.calls[-1].finish()
    # ...until B has been gone for ACTIVE_SECONDS.
    assert (await executor.next_call()).requests == [j.request for j in flood[6:10]]
    executor.run_freely()
    for job in [*flood, light]:
        assert await outcome(job) == ("done", job.request)


async def test_round_robin_serves_the_late_user_before_most_of_the_flood(make_scheduler):
    scheduler, executor, _ = make_scheduler(max_per_user=100, max_batch_size=1)
    _, call = await start_blocker(scheduler, executor)
    flood = [scheduler.submit(sent(f"a{i}"), user="A") for i in range(20)]
    late = scheduler.submit(sent("b"), user="B")

    executor.run_freely()
    for job in [*flood, late]:
        await outcome(job)
    order = [call.requests[0] for call in executor.calls[1:]]  # after the blocker
    assert len(order) == 21 and all(len(c.requests) == 1 for c in executor.calls)
    assert order.index(late.request) == 1
    assert order[:1] + order[2:] == [j.request for j in flood]  # A's own order is kept


async def test_a_newcomer_cuts_a_floods_pass_short_and_runs_alone_first(make_scheduler):
    scheduler, executor, _ = make_scheduler(max_per_user=100, max_batch_size=4)
    executor.info.preemptible = True
    flood = [scheduler.submit(sent(f"a{i}"), user="A") for i in range(10)]
    first = await executor.next_call()
    assert first.requests == [j.request for j in flood[:4]]  # A alone: a full pass
    newcomer = scheduler.submit(sent("b"), user="B")
    assert executor.preempted == [flood[0].id]
    assert (await executor.next_call()).requests == [newcomer.request]  # alone: none of A's rows
    assert all(job.state is JobState.QUEUED for job in flood[:4])  # back in the queue, unrun
    executor.calls[-1].finish()
    assert await outcome(newcomer) == ("done", newcomer.request)
    again = await executor.next_call()
    assert again.requests[0] is flood[0].request  # A's order is kept
    # A pass is given up once at most: a second newcomer waits for this one.
    scheduler.submit(sent("c"), user="C")
    assert executor.preempted == [flood[0].id]
    executor.run_freely()
    for job in flood:
        assert await outcome(job) == ("done", job.request)
    assert scheduler.metrics.preempted == {"sentiment": 1}


async def test_with_preemption_a_backlog_takes_a_quarter_pass_while_others_are_present(make_scheduler):
    scheduler, executor, clock = make_scheduler(max_per_user=100, max_batch_size=8)
    executor.info.preemptible = True
    flood = [scheduler.submit(sent(f"a{i}"), user="A") for i in range(12)]
    assert (await executor.next_call()).requests == [j.request for j in flood[:8]]  # alone: a full pass
    light = scheduler.submit(sent("b"), user="B")  # cuts it short, runs alone
    assert (await executor.next_call()).requests == [light.request]
    executor.calls[-1].finish()
    # B was just served and may be back: A's backlog goes on in quarter passes, which B could cut short.
    assert (await executor.next_call()).requests == [j.request for j in flood[:2]]
    executor.run_freely()
    for job in [*flood, light]:
        assert await outcome(job) == ("done", job.request)


async def test_no_pass_is_cut_short_for_someone_already_waiting(make_scheduler):
    scheduler, executor, _ = make_scheduler(max_per_user=100, max_batch_size=4)
    executor.info.preemptible = True
    a = [scheduler.submit(sent(f"a{i}"), user="A") for i in range(6)]
    await executor.next_call()
    scheduler.submit(sent("b0"), user="B")
    scheduler.submit(sent("b1"), user="B")  # B already has a request in flight: no second cut
    assert executor.preempted == [a[0].id]
    executor.run_freely()
    assert await outcome(a[-1]) == ("done", a[-1].request)


async def test_a_pass_shared_by_several_users_is_not_cut_short(make_scheduler):
    scheduler, executor, clock = make_scheduler(max_per_user=100, max_batch_size=4)
    executor.info.preemptible = True
    _, call = await start_blocker(scheduler, executor)  # its user has nothing more waiting: not a flood
    clock.advance(ACTIVE_SECONDS / 2)
    shared = [scheduler.submit(sent(f"x{i}"), user=user) for i, user in enumerate("DDEE")]
    call.finish()
    running = await executor.next_call()
    assert {job.user for job in shared if job.request in running.requests} == {"D", "E"}
    scheduler.submit(sent("f"), user="F")  # nobody's flood: F waits for the pass in progress
    assert executor.preempted == []
    executor.run_freely()
    for job in shared:
        assert await outcome(job) == ("done", job.request)


async def test_without_preemption_at_the_executor_nothing_is_cut_short(make_scheduler):
    scheduler, executor, _ = make_scheduler(max_per_user=100, max_batch_size=4)
    flood = [scheduler.submit(sent(f"a{i}"), user="A") for i in range(5)]
    await executor.next_call()
    scheduler.submit(sent("b"), user="B")
    assert executor.preempted == []
    executor.run_freely()
    assert await outcome(flood[-1]) == ("done", flood[-1].request)


async def test_background_runs_only_when_no_interactive_work_waits(make_scheduler):
    scheduler, executor, _ = make_scheduler()
    _, call = await start_blocker(scheduler, executor)
    tag = scheduler.submit(TokenizeRequest("auto-tag me"), user="mod", priority=Priority.BACKGROUND)
    people = [scheduler.submit(sent("hello"), user="a"), scheduler.submit(sent("hi"), user="b")]
    assert tag.position() == 2  # behind every interactive request

    call.finish()
    batch = await executor.next_call()
    assert batch.requests == [p.request for p in people]  # the older background job waits
    batch.finish()
    batch = await executor.next_call()
    assert batch.requests == [tag.request]  # no interactive work left: background runs

    # Background jobs with the interactive head's key fill the rest of its batch.
    fillers = [scheduler.submit(sent(f"tag {i}"), user=f"bg{i}", priority=Priority.BACKGROUND) for i in range(2)]
    other_key = scheduler.submit(TokenizeRequest("tag"), user="bg9", priority=Priority.BACKGROUND)
    person = scheduler.submit(sent("me first"), user="c")
    batch.finish()
    batch = await executor.next_call()
    assert batch.requests == [person.request] + [f.request for f in fillers]
    batch.finish()
    batch = await executor.next_call()
    assert batch.requests == [other_key.request]
    batch.finish()
    for job in (tag, *people, *fillers, other_key, person):
        assert await outcome(job) == ("done", job.request)


# --- deadlines and cancellation ----------------------------------------------------------


async def test_expired_job_fails_with_deadline_and_never_runs(make_scheduler):
    scheduler, executor, clock = make_scheduler()
    _, call = await start_blocker(scheduler, executor)
    expires = scheduler.submit(sent("hurry"), user="a", timeout=5)
    patient = scheduler.submit(sent("patient"), user="b", timeout=60)
    clock.advance(10)

    call.finish()
    error = await outcome(expires)
    assert isinstance(error, DeadlineExceeded)
    assert "waited too long" in str(error)
    assert not executor.ran(expires.request)
    assert scheduler.metrics.shed["deadline"] == 1
    assert "a" not in scheduler.in_flight  # the slot is released

    batch = await executor.next_call()
    assert batch.requests == [patient.request]
    batch.finish()
    assert await outcome(patient) == ("done", patient.request)


async def test_cancelled_queued_job_never_runs(make_scheduler):
    scheduler, executor, _ = make_scheduler(max_per_user=1)
    _, call = await start_blocker(scheduler, executor)
    dropped = scheduler.submit(sent("never mind"), user="a")
    kept = scheduler.submit(sent("keep"), user="b")
    dropped.cancel()
    assert isinstance(await outcome(dropped), Cancelled)
    assert scheduler.queue_depth() == 1
    again = scheduler.submit(sent("again"), user="a")  # the cap slot came back

    call.finish()
    batch = await executor.next_call()
    batch.finish()
    assert batch.requests == [kept.request, again.request]
    assert not executor.ran(dropped.request)
    assert scheduler.metrics.tasks()["sentiment"].failed == 0  # a cancellation is not a failure


async def test_cancelling_the_awaiting_task_cancels_the_job(make_scheduler):
    scheduler, executor, _ = make_scheduler()
    _, call = await start_blocker(scheduler, executor)
    job = scheduler.submit(sent("slow reader"), user="a")
    waiting = asyncio.Event()

    async def caller():
        waiting.set()
        return await job.result()

    task = asyncio.create_task(caller())
    await waiting.wait()  # the caller is now suspended inside job.result()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert job.state is JobState.DONE
    assert isinstance(job.future.exception(), Cancelled)
    assert scheduler.queue_depth() == 0 and "a" not in scheduler.in_flight

    call.finish()
    follow = scheduler.submit(sent("next"), user="b")
    (await executor.next_call()).finish()
    await outcome(follow)
    assert not executor.ran(job.request)


async def test_close_fails_queued_and_running_jobs(make_scheduler):
    scheduler, executor, _ = make_scheduler()
    running, _ = await start_blocker(scheduler, executor)
    queued = scheduler.submit(sent("queued"), user="a")
    await scheduler.close()
    for job in (running, queued):
        error = await outcome(job)  # must not hang
        assert isinstance(error, Cancelled) and "shutting down" in str(error)
    assert scheduler.in_flight == {}


# --- batching rules ------------------------------------------------------------------------


async def test_only_requests_with_the_same_batch_key_share_a_unit(make_scheduler):
    scheduler, executor, _ = make_scheduler(max_per_user=10)
    _, call = await start_blocker(scheduler, executor)
    nli_a = scheduler.submit(ZeroShotRequest("text", ("x", "y")), user="a")
    emb_b = scheduler.submit(ZeroShotRequest("text", ("x", "y"), method="embedding"), user="b")
    nli_c = scheduler.submit(ZeroShotRequest("more", ("x", "y", "z"), multi_label=True), user="c")
    fill = scheduler.submit(FillMaskRequest("a [MASK] b"), user="j")
    tok_sentiment = scheduler.submit(TokenizeRequest("t", role="sentiment"), user="k")
    tok_generation = scheduler.submit(TokenizeRequest("t", role="generation"), user="l")

    call.finish()
    executor.run_freely()
    jobs = [nli_a, emb_b, nli_c, fill, tok_sentiment, tok_generation]
    for job in jobs:
        assert await outcome(job) == ("done", job.request)
    assert [call.requests for call in executor.calls[1:]] == [
        [nli_a.request, nli_c.request],
        [emb_b.request],
        [fill.request],
        [tok_sentiment.request],
        [tok_generation.request],
    ]
    assert [call.task for call in executor.calls[1:]] == ["zero_shot", "zero_shot", "fill_mask", "tokenize", "tokenize"]


async def test_generation_starts_alongside_running_work_one_request_per_unit(make_scheduler):
    scheduler, executor, _ = make_scheduler(max_per_user=10)
    _, blocker = await start_blocker(scheduler, executor)  # a classification pass is running
    gens = [
        scheduler.submit(GenerationRequest("p", temperature=0.7, seed=1), user="d"),
        scheduler.submit(GenerationRequest("q", temperature=0.9), user="e"),
        scheduler.submit(GenerationRequest("r", temperature=0), user="f"),
    ]
    # None waits for the classification pass, nor for each other: they decode side by side.
    calls = [await executor.next_call() for _ in gens]
    assert [c.requests for c in calls] == [[g.request] for g in gens]
    assert all(c.task == "generation" for c in calls)

    # One classification unit at a time: the queue (and so fairness) stays in the scheduler.
    waiting = scheduler.submit(sent("next pass"), user="z")
    await asyncio.sleep(0.05)
    assert not executor.ran(waiting.request) and waiting.position() == 0
    blocker.finish()
    assert (await executor.next_call()).requests == [waiting.request]
    executor.run_freely()
    for job in [*gens, waiting]:
        assert await outcome(job) == ("done", job.request)


async def test_generation_rows_are_capped_and_freed_as_each_request_ends(make_scheduler):
    scheduler, executor, _ = make_scheduler(max_per_user=10, max_batch_size=4)
    two_a = scheduler.submit(GenerationRequest("a", num_return_sequences=2), user="a")
    two_b = scheduler.submit(GenerationRequest("b", num_return_sequences=2), user="b")
    one_c = scheduler.submit(GenerationRequest("c"), user="c")
    first, second = await executor.next_call(), await executor.next_call()
    await asyncio.sleep(0.05)
    assert len(executor.calls) == 2 and one_c.position() == 0  # 4 of 4 rows decoding
    # A classification request does not wait for decoding rows.
    quick = scheduler.submit(sent("quick"), user="d")
    assert (await executor.next_call()).requests == [quick.request]

    first.finish()  # two rows free: the waiting request joins at once
    assert (await executor.next_call()).requests == [one_c.request]
    executor.run_freely()
    for job in (two_a, two_b, one_c, quick):
        assert await outcome(job) == ("done", job.request)
    assert second.released.is_set()


async def test_cancel_reaches_a_running_generation(make_scheduler):
    scheduler, executor, _ = make_scheduler(max_per_user=1)
    job = scheduler.submit(GenerationRequest("tell me a long story", max_new_tokens=256), user="a")
    call = await executor.next_call()
    call.on_chunk(0, 0, "Once")
    job.cancel()
    assert isinstance(await outcome(job), Cancelled)
    assert executor.cancelled == [job.id]  # the worker stops it at its next step
    assert [chunk async for chunk in job.chunks()] == [(0, "Once")]
    assert "a" not in scheduler.in_flight  # the user may ask again at once
    call.finish(["too late"])  # what the worker still sends for it is dropped
    again = scheduler.submit(GenerationRequest("shorter"), user="a")
    (await executor.next_call()).finish()
    assert await outcome(again) == ("done", again.request)
    assert scheduler.metrics.tasks()["generation"].failed == 0


async def test_deadline_stops_a_running_generation(make_scheduler):
    scheduler, executor, clock = make_scheduler()
    job = scheduler.submit(GenerationRequest("tell me a long story", max_new_tokens=256), user="a", timeout=30)
    await executor.next_call()
    clock.advance(31)
    error = await outcome(job)  # noticed at the scheduler's next tick
    assert isinstance(error, DeadlineExceeded) and "took too long" in str(error)
    assert executor.cancelled == [job.id]
    assert scheduler.metrics.shed["deadline"] == 1


async def test_token_budget_caps_a_batch_but_a_lone_request_always_runs(make_scheduler):
    scheduler, executor, _ = make_scheduler(max_per_user=10, max_batch_tokens=110)
    _, call = await start_blocker(scheduler, executor)
    # SentimentRequest.cost() = len(text) // 4 + 2
    big_a = scheduler.submit(sent("x" * 232), user="a")  # 60
    big_b = scheduler.submit(sent("y" * 232), user="b")  # 60: would make 120 > 110
    small_c = scheduler.submit(sent("z" * 184), user="c")  # 48: fits next to big_a (and is about as long)
    huge = scheduler.submit(sent("h" * 1992), user="d")  # 500: over budget alone
    assert [j.request.cost() for j in (big_a, big_b, small_c, huge)] == [60, 60, 48, 500]

    call.finish()
    executor.run_freely()
    for job in (big_a, big_b, small_c, huge):
        assert await outcome(job) == ("done", job.request)
    batches = [call.requests for call in executor.calls[1:]]
    assert batches == [[big_a.request, small_c.request], [big_b.request], [huge.request]]


async def test_the_devices_pass_tokens_cap_a_unit(make_scheduler):
    scheduler, executor, clock = make_scheduler(max_per_user=20)
    executor.info.passes = PassShape(rows=32, tokens=100)  # e.g. a CPU: passes sized by tokens, not rows
    _, call = await start_blocker(scheduler, executor)
    short = [scheduler.submit(sent("s" * 32), user="u") for i in range(10)]  # 10 tokens each
    long = [scheduler.submit(sent("l" * 192), user="u") for i in range(3)]  # 50 tokens each
    clock.advance(ACTIVE_SECONDS)  # the blocker's user is gone: u is alone
    call.finish()
    executor.run_freely()
    for job in [*short, *long]:
        await outcome(job)
    # Short texts fill 10 rows, long ones 2, under the same 100 tokens.
    assert [len(call.requests) for call in executor.calls[1:]] == [10, 2, 1]


async def test_with_others_present_a_long_request_stays_out_of_a_short_ones_pass(make_scheduler):
    scheduler, executor, _ = make_scheduler(max_per_user=20)
    _, call = await start_blocker(scheduler, executor)
    light = scheduler.submit(sent("a short one"), user="light")
    heavy = [scheduler.submit(sent("l" * 240), user="heavy") for _ in range(2)]
    call.finish()
    # Light's pass does not wait for heavy's long row: that row runs in the next pass.
    assert (await executor.next_call()).requests == [light.request]
    executor.calls[-1].finish()
    assert (await executor.next_call()).requests == [heavy[0].request]
    executor.run_freely()
    for job in [*heavy, light]:
        assert await outcome(job) == ("done", job.request)


async def test_with_others_present_a_pass_takes_the_lengths_nearest_its_heads(make_scheduler):
    scheduler, executor, _ = make_scheduler(max_per_user=20)
    executor.info.passes = PassShape(rows=32, tokens=70)
    _, call = await start_blocker(scheduler, executor)
    costs = [20, 50, 22, 18, 40, 21]  # SentimentRequest.cost() = len(text) // 4 + 2
    jobs = [scheduler.submit(sent("x" * (4 * (cost - 2))), user=f"u{i}") for i, cost in enumerate(costs)]
    assert [job.request.cost() for job in jobs] == costs
    call.finish()
    # The head (20 tokens), then the nearest lengths while 70 tokens hold them: 21 and 22, not 18;
    # 50 and 40 would stretch the pass.
    assert (await executor.next_call()).requests == [jobs[0].request, jobs[5].request, jobs[2].request]
    executor.run_freely()
    for job in jobs:
        assert await outcome(job) == ("done", job.request)


async def test_with_others_present_a_pass_takes_each_users_nearest_length_while_it_pads_little(make_scheduler):
    scheduler, executor, _ = make_scheduler(max_per_user=20)
    _, call = await start_blocker(scheduler, executor)

    def costing(cost: int) -> SentimentRequest:
        return sent("x" * (4 * (cost - 2)))

    head = scheduler.submit(costing(40), user="a")
    b = [scheduler.submit(costing(cost), user="b") for cost in (10, 38)]
    c = scheduler.submit(costing(20), user="c")
    call.finish()
    # b's second request is nearer the head's length than its first; c's would pad the pass by a third.
    assert (await executor.next_call()).requests == [head.request, b[1].request]
    executor.run_freely()
    for job in [head, *b, c]:
        assert await outcome(job) == ("done", job.request)


async def test_max_batch_size_caps_a_pass(make_scheduler):
    scheduler, executor, clock = make_scheduler(max_per_user=10, max_batch_size=3)
    _, call = await start_blocker(scheduler, executor)
    jobs = [scheduler.submit(sent(f"s{i}"), user="u") for i in range(7)]
    clock.advance(ACTIVE_SECONDS)  # the blocker's user is gone: u is alone
    call.finish()
    executor.run_freely()
    for job in jobs:
        await outcome(job)
    assert [len(call.requests) for call in executor.calls[1:]] == [3, 3, 1]
    assert scheduler.metrics.tasks()["sentiment"].served == 8


# --- waiting honestly --------------------------------------------------------------------


async def test_position_and_eta_of_queued_jobs(make_scheduler):
    scheduler, executor, clock = make_scheduler(max_per_user=10, max_batch_size=1)
    # One measured batch: 2 s for one request.
    first, call = await start_blocker(scheduler, executor)
    clock.advance(2.0)
    call.finish()
    await outcome(first)
    assert scheduler.metrics.seconds_per_request("sentiment") == pytest.approx(2.0)

    running, call = await start_blocker(scheduler, executor)
    assert running.position() is None and running.eta() is None
    clock.advance(0.5)
    a1, a2 = scheduler.submit(sent("a1"), user="A"), scheduler.submit(sent("a2"), user="A")
    b1 = scheduler.submit(sent("b1"), user="B")
    tag = scheduler.submit(sent("tag"), user="A", priority=Priority.BACKGROUND)
    # Service order is a1, b1, a2 (round-robin), then the background lane.
    assert [j.position() for j in (a1, b1, a2, tag)] == [0, 1, 2, 3]
    # 2 s per request ahead (the pass running now ends within a step).
    assert [j.eta() for j in (a1, b1, a2, tag)] == pytest.approx([0.0, 2.0, 4.0, 6.0])

    clock.advance(2.0)
    call.finish()
    batch = await executor.next_call()
    assert batch.requests == [a1.request]
    assert a1.position() is None
    assert [j.position() for j in (b1, a2, tag)] == [0, 1, 2]
    executor.run_freely()
    for job in (a1, b1, a2, tag):
        await outcome(job)
    assert a2.position() is None and a2.eta() is None


# --- outcomes ------------------------------------------------------------------------------


async def test_executor_exception_fails_every_job_in_the_batch(make_scheduler):
    scheduler, executor, _ = make_scheduler(max_per_user=10)
    _, call = await start_blocker(scheduler, executor)
    jobs = [scheduler.submit(sent(f"s{i}"), user=f"u{i}") for i in range(3)]
    call.finish()
    batch = await executor.next_call()
    assert len(batch.requests) == 3
    batch.finish(error=RuntimeError("CUDA driver exploded"))
    for job in jobs:
        error = await outcome(job)
        assert type(error) is EngineError
        assert "Something went wrong" in str(error) and "CUDA" not in str(error)

    # A typed engine error from the executor reaches every job as is.
    more = [scheduler.submit(sent(f"t{i}"), user=f"u{i}") for i in range(2)]
    batch = await executor.next_call()
    batch.finish(error=WorkerCrashed("The model worker stopped unexpectedly."))
    for job in more:
        assert isinstance(await outcome(job), WorkerCrashed)

    # The scheduler keeps serving afterwards.
    last = scheduler.submit(sent("fine"), user="z")
    (await executor.next_call()).finish()
    assert await outcome(last) == ("done", last.request)
    assert scheduler.metrics.tasks()["sentiment"].failed == 5


async def test_failure_outcomes_become_typed_errors(make_scheduler):
    scheduler, executor, _ = make_scheduler(max_per_user=10)
    _, call = await start_blocker(scheduler, executor)
    jobs = [scheduler.submit(sent(f"s{i}"), user=f"u{i}") for i in range(6)]
    call.finish()
    batch = await executor.next_call()
    assert len(batch.requests) == 6
    batch.finish(
        [
            Failure("invalid_input", "No chat template."),
            Failure("model_unavailable", "Set FILL_MASK_MODEL."),
            Failure("resource_exhausted", "Too big."),
            Failure("deadline", "Too late."),
            Failure("something_new", "Odd."),
            "a plain result",
        ]
    )
    outcomes = [await outcome(job) for job in jobs]
    expected = [InvalidInput, ModelUnavailable, ResourceExhausted, DeadlineExceeded, EngineError]
    for got, kind, message in zip(
        outcomes, expected, ["No chat template.", "Set FILL_MASK_MODEL.", "Too big.", "Too late.", "Odd."]
    ):
        assert type(got) is kind and str(got) == message
    assert outcomes[5] == "a plain result"
    stats = scheduler.metrics.tasks()["sentiment"]
    assert (stats.served, stats.failed) == (2, 5)  # blocker + the plain result


async def test_streamed_chunks_reach_each_job_in_order(make_scheduler):
    scheduler, executor, _ = make_scheduler(max_per_user=10)
    first = scheduler.submit(GenerationRequest("one", temperature=0), user="a")
    second = scheduler.submit(GenerationRequest("two", temperature=0, num_return_sequences=2), user="b")
    calls = [await executor.next_call(), await executor.next_call()]
    assert [c.requests for c in calls] == [[first.request], [second.request]]
    for unit, sequence, text in [(0, 0, "Hel"), (1, 0, "x"), (1, 1, "y"), (0, 0, "lo"), (1, 0, "z"), (0, 0, "!")]:
        calls[unit].on_chunk(0, sequence, text)
    calls[1].finish(["r2"])  # each request ends on its own
    calls[0].finish(["r1"])

    async def collect(job):
        return [chunk async for chunk in job.chunks()]

    got_first, got_second = await asyncio.wait_for(asyncio.gather(collect(first), collect(second)), WAIT)
    assert got_first == [(0, "Hel"), (0, "lo"), (0, "!")]
    assert got_second == [(0, "x"), (1, "y"), (0, "z")]
    assert (await outcome(first), await outcome(second)) == ("r1", "r2")
