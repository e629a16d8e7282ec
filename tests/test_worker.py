"""The worker process: step-level work (a cheap request is served while a generation streams),
continuous batching (joining and leaving, equal to a lone `generate`), cancel of running work,
the stall watchdog (SIGSTOP), surviving a kill -9, and splitting units on out-of-memory."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import pytest_asyncio
import torch

from bot.engine import Cancelled, Engine, WorkerCrashed, WorkerStalled
from bot.engine.errors import ModelUnavailable
from bot.engine.preemption import Preempted, PreemptSignal
from bot.engine.request import Failure, Request
from bot.engine.supervisor import WorkerProcess
from bot.engine.tasks.base import Task
from bot.engine.worker import run_batch
from bot.specs.generation import GenerationRequest
from bot.specs.sentiment import SentimentRequest

from .conftest import lone_generate, tiny_engine_config

TIMEOUT = 120.0


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def crash_engine(tiny_models):
    """A dedicated engine: its worker gets killed, so it is not shared with other modules."""
    async with Engine(tiny_engine_config(tiny_models)) as engine:
        yield engine


async def drain(chunks) -> list[tuple[int, str]]:
    return [chunk async for chunk in chunks]


async def test_worker_killed_mid_batch_fails_the_request_and_restarts(crash_engine):
    # Greedy decoding is deterministic: the same request gives the same text before and after a restart,
    # and a shorter run is a prefix of a longer one.
    short = GenerationRequest("Hello", max_new_tokens=8, temperature=0)
    reference = await asyncio.wait_for(crash_engine.submit(short, user="u"), TIMEOUT)
    assert reference.texts[0]
    before = crash_engine.status()
    assert before.worker_alive
    pid = crash_engine.executor.info.pid

    # Hundreds of tokens (this prompt never stops early on the tiny gpt2): still running when it is killed.
    job = crash_engine.submit_job(GenerationRequest("Hello", max_new_tokens=256, temperature=0), user="u")
    chunks = job.chunks()
    sequence, first = await asyncio.wait_for(anext(chunks), TIMEOUT)  # the batch is running now
    assert sequence == 0 and first and reference.texts[0].startswith(first)
    os.kill(pid, signal.SIGKILL)

    with pytest.raises(WorkerCrashed) as crashed:
        await asyncio.wait_for(job.result(), TIMEOUT)
    assert "stopped unexpectedly" in str(crashed.value) and "try again" in str(crashed.value)
    rest = await asyncio.wait_for(drain(chunks), TIMEOUT)  # the stream ends too, instead of hanging
    assert all(sequence == 0 for sequence, _ in rest)
    assert crash_engine.status().worker_restarts == before.worker_restarts + 1

    # Submitted while the worker is still restarting: it waits for the new worker and is answered.
    again = await asyncio.wait_for(crash_engine.submit(short, user="u"), TIMEOUT)
    assert again.texts == reference.texts
    after = crash_engine.status()
    assert after.worker_alive and after.worker_restarts == before.worker_restarts + 1
    assert after.worker_stalls == 0  # a crash, not a stall
    assert crash_engine.executor.info.pid not in (None, pid)
    assert after.tasks["generation"].failed == before.tasks["generation"].failed + 1


async def test_worker_killed_while_idle_is_invisible_to_the_next_request(crash_engine):
    short = GenerationRequest("Hello", max_new_tokens=4, temperature=0)
    reference = await asyncio.wait_for(crash_engine.submit(short, user="u"), TIMEOUT)
    restarts = crash_engine.status().worker_restarts
    pid = crash_engine.executor.info.pid
    os.kill(pid, signal.SIGKILL)
    # Submitted at once, before or after the parent notices the death: the worker never started
    # this batch, so it is sent again to the restarted worker instead of failing.
    answer = await asyncio.wait_for(crash_engine.submit(short, user="u"), TIMEOUT)
    assert answer.texts == reference.texts
    assert crash_engine.status().worker_restarts == restarts + 1
    assert crash_engine.executor.info.pid not in (None, pid)


async def first_chunk(job) -> tuple[int, str]:
    """Wait until the job streams: it is running at the worker now."""
    return await asyncio.wait_for(anext(job.chunks()), TIMEOUT)


async def test_a_cheap_request_is_served_while_a_generation_streams(tiny_engine):
    long = tiny_engine.submit_job(GenerationRequest("Hello", max_new_tokens=256, temperature=0), user="storyteller")
    await first_chunk(long)
    quick = await asyncio.wait_for(tiny_engine.submit(SentimentRequest(("Great game!",)), user="quick"), TIMEOUT)
    assert quick.sentences[0].label
    assert not long.future.done()  # answered between two decode steps, not after the generation
    result = await asyncio.wait_for(long.result(), TIMEOUT)
    assert result.new_tokens == [256]


async def test_generations_join_and_leave_the_running_batch(tiny_engine, tiny_models):
    """A request that arrives while another decodes starts at once and ends on its own; greedy text is the
    same as a lone `generate` call's (continuous batching changes when a row runs, not what it writes)."""
    assert tiny_engine.status().generation_batching == "continuous"
    first = tiny_engine.submit_job(GenerationRequest("Once upon a time", max_new_tokens=200, temperature=0), user="a")
    await first_chunk(first)
    joined = [
        tiny_engine.submit_job(GenerationRequest(prompt, max_new_tokens=limit, temperature=0), user=f"j{limit}")
        for prompt, limit in (("The capital of France is", 5), ("Why is the sky blue?", 40))
    ]
    short = await asyncio.wait_for(joined[0].result(), TIMEOUT)
    assert not first.future.done()  # the short one left while the long one kept decoding
    results = [await asyncio.wait_for(job.result(), TIMEOUT) for job in (first, *joined)]
    for request, result in zip((first.request, *(j.request for j in joined)), results):
        text, tokens, _ = lone_generate(tiny_models["gpt2"], request.prompt, request.max_new_tokens)
        assert result.texts == [text] and result.new_tokens == [tokens]
    assert short.new_tokens == [5]


async def test_static_mode_decodes_each_request_alongside_with_the_same_text(tiny_models):
    async with Engine(tiny_engine_config(tiny_models, generation_batching="static")) as engine:
        assert engine.status().generation_batching == "static"
        requests = [
            GenerationRequest("Once upon a time", max_new_tokens=30, temperature=0),
            GenerationRequest("The capital of France is", max_new_tokens=7, temperature=0),
        ]
        jobs = [engine.submit_job(request, user=f"s{i}") for i, request in enumerate(requests)]
        results = [await asyncio.wait_for(job.result(), TIMEOUT) for job in jobs]
    for request, result in zip(requests, results):
        text, tokens, _ = lone_generate(tiny_models["gpt2"], request.prompt, request.max_new_tokens)
        assert result.texts == [text] and result.new_tokens == [tokens]


async def test_cancel_stops_a_running_generation_and_frees_its_rows(tiny_engine):
    job = tiny_engine.submit_job(GenerationRequest("Hello", max_new_tokens=256, temperature=0), user="canceller")
    streamed = [await first_chunk(job)]
    job.cancel()
    with pytest.raises(Cancelled):
        await asyncio.wait_for(job.result(), TIMEOUT)
    streamed += [chunk async for chunk in job.chunks()]  # the stream ends too
    # The worker stopped it at its next step: its unit is done and its rows are free again.
    for _ in range(100):
        if not tiny_engine.scheduler._decoding_rows and not tiny_engine.executor._units:
            break
        await asyncio.sleep(0.05)
    assert tiny_engine.scheduler._decoding_rows == 0 and not tiny_engine.executor._units
    assert len("".join(text for _, text in streamed)) < 256 * 20  # far from a whole answer
    again = await asyncio.wait_for(
        tiny_engine.submit(GenerationRequest("Hi", max_new_tokens=3, temperature=0), user="canceller"), TIMEOUT
    )
    assert again.new_tokens == [3]


async def test_a_newcomer_cuts_a_floods_running_pass_short_at_the_real_worker(tiny_models):
    config = tiny_engine_config(tiny_models, max_per_user=100, max_batch_size=4)
    async with Engine(config) as engine:
        warm = SentimentRequest(("warm up",))
        expected = await asyncio.wait_for(engine.submit(warm, user="w"), TIMEOUT)
        assert engine.executor.info.preemptible
        pid = engine.executor.info.pid
        # The worker is stopped, so A's pass is still at its first layer when B arrives.
        os.kill(pid, signal.SIGSTOP)
        try:
            flood = [engine.submit_job(SentimentRequest((f"flood {i}",)), user="A") for i in range(6)]

            async def sent() -> None:
                while flood[0].id not in engine.executor._job_units:  # A's first pass is on its way to the worker
                    await asyncio.sleep(0.01)

            await asyncio.wait_for(sent(), TIMEOUT)
            newcomer = engine.submit_job(warm, user="B")
        finally:
            os.kill(pid, signal.SIGCONT)
        finished: list[str] = []

        async def record(job, who: str):
            result = await asyncio.wait_for(job.result(), TIMEOUT)
            finished.append(who)
            return result

        results = await asyncio.gather(record(newcomer, "B"), *(record(job, "A") for job in flood))
        assert engine.metrics.preempted == {"sentiment": 1}, engine.metrics.preempted
        assert finished[0] == "B", finished  # it did not wait for A's pass
        assert results[0] == expected
        alone = [await engine.submit(job.request, user="C") for job in flood]
        assert results[1:] == alone  # the given-up pass ran again, whole and right
        assert engine.status().worker_restarts == 0


async def test_a_hung_worker_is_detected_and_replaced(tiny_models):
    config = tiny_engine_config(tiny_models, stall_timeout=3.0)
    async with Engine(config) as engine:
        await asyncio.wait_for(engine.submit(SentimentRequest(("warm up",)), user="u"), TIMEOUT)
        job = engine.submit_job(GenerationRequest("Hello", max_new_tokens=256, temperature=0), user="u")
        await first_chunk(job)
        pid = engine.executor.info.pid
        os.kill(pid, signal.SIGSTOP)  # as a driver deadlock would: alive, silent, no progress
        waiting = engine.submit_job(SentimentRequest(("queued behind the hang",)), user="v")
        with pytest.raises(WorkerStalled) as stalled:
            await asyncio.wait_for(job.result(), TIMEOUT)
        assert "stopped responding" in str(stalled.value) and "try again" in str(stalled.value)
        assert engine.status().worker_state in ("stalled, restarting", "running")
        # The request that waited is served by the new worker; the stalled one was killed.
        assert (await asyncio.wait_for(waiting.result(), TIMEOUT)).sentences
        status = engine.status()
        assert status.worker_state == "running" and status.worker_restarts == 1 and engine.executor.info.pid != pid
        assert status.worker_stalls == 1
        assert status.tasks["generation"].failed == 1


async def test_a_worker_that_cannot_start_says_why_and_is_not_restarted(tiny_models):
    """A real worker dying before it is ready (a GPU no machine has): start-up fails at once with its reason."""
    worker = WorkerProcess(tiny_engine_config(tiny_models, device="cuda:99"))
    with pytest.raises(WorkerCrashed) as failed:
        await asyncio.wait_for(worker.start(), TIMEOUT)
    assert str(failed.value).startswith("The model worker could not start: DEVICE=cuda:99 but torch sees")
    assert worker.info.restarts == 0 and worker.info.state == "stopped" and not worker._process.is_alive()


async def until(condition, what: str) -> None:
    for _ in range(int(TIMEOUT / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_restarts_back_off_while_new_workers_die_starting_and_reset_once_one_serves(tiny_models):
    waits: list[float] = []

    async def sleep(seconds: float) -> None:  # the backoff's clock: note the wait, don't wait
        waits.append(seconds)

    config = tiny_engine_config(tiny_models)
    worker = WorkerProcess(config, backoff=(1.0, 3.0), sleep=sleep)
    request = SentimentRequest(("served",))
    async with Engine(config, executor=worker) as engine:
        await asyncio.wait_for(engine.submit(request, user="u"), TIMEOUT)
        worker.config = dataclasses.replace(config, device="cuda:99")  # every new worker now dies starting
        worker.kill()
        await until(lambda: len(waits) >= 3, "three restarts")
        assert waits[:3] == [1.0, 2.0, 3.0]  # doubling, up to the cap
        assert engine.status().worker_state == "restarting" and not engine.status().worker_alive
        worker.config = config  # the device is back: a request waiting meanwhile is served by the next worker
        assert (await asyncio.wait_for(engine.submit(request, user="u"), TIMEOUT)).sentences
        await until(lambda: not worker._units, "the unit's end")  # its answer can come just before it
        restarts = worker.info.restarts
        worker.kill()
        await until(lambda: worker.info.restarts == restarts + 1, "the restart after a served unit")
        assert waits[-1] == 1.0  # a unit served since resets the backoff
        assert (await asyncio.wait_for(engine.submit(request, user="u"), TIMEOUT)).sentences


# --- out-of-memory splitting (run_batch, in this process) -----------------------------------


@dataclass(frozen=True)
class Echo(Request):
    task = "echo"
    text: str


class OomTask(Task):
    """Raises torch.OutOfMemoryError for batches larger than `fits` (None: for every batch)."""

    def __init__(self, fits: int | None) -> None:
        super().__init__(registry=None)
        self.fits = fits
        self.sizes: list[int] = []

    def preprocess(self, loaded, requests):
        self.sizes.append(len(requests))
        return requests

    def forward(self, loaded, requests, emit):
        if self.fits is None or len(requests) > self.fits:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        for index, request in enumerate(requests):
            emit(index, 0, request.text)
        return requests

    def postprocess(self, loaded, requests, _):
        return [f"ok {r.text}" for r in requests]


def test_a_pass_is_given_up_only_in_the_thread_running_the_named_unit(tiny_models):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_models["sentiment"]).eval()
    shared = SimpleNamespace(value=0)
    signal_ = PreemptSignal(shared)
    signal_.install(model)
    ids = torch.tensor([[1, 2, 3, 4]])
    reference = model(input_ids=ids).logits
    with signal_.running(7):
        assert torch.equal(model(input_ids=ids).logits, reference)  # nothing named yet
        shared.value = 6
        assert torch.equal(model(input_ids=ids).logits, reference)  # another unit named
        shared.value = 7
        with pytest.raises(Preempted):
            model(input_ids=ids)
        # A decoding thread sharing the model is never stopped by it.
        elsewhere = ThreadPoolExecutor(1).submit(lambda: model(input_ids=ids).logits).result()
        assert torch.equal(elsewhere, reference)
    assert torch.equal(model(input_ids=ids).logits, reference)  # the unit is over


def test_run_batch_splits_on_out_of_memory():
    task = OomTask(fits=2)
    requests = [Echo(str(i)) for i in range(5)]
    emitted: list[tuple[int, int, str]] = []
    outcomes = run_batch(task, requests, lambda *chunk: emitted.append(chunk))
    assert outcomes == [f"ok {i}" for i in range(5)]
    assert task.sizes == [5, 2, 3, 1, 2]  # halves, and halves again where still too big
    # Chunks of the second halves keep the index of their request in the original batch.
    assert sorted(emitted) == [(i, 0, str(i)) for i in range(5)]


def test_run_batch_single_request_out_of_memory_is_resource_exhausted():
    task = OomTask(fits=None)
    outcomes = run_batch(task, [Echo("big")], lambda *chunk: None)
    assert len(outcomes) == 1 and isinstance(outcomes[0], Failure)
    assert outcomes[0].kind == "resource_exhausted" and "more memory" in outcomes[0].message

    task = OomTask(fits=None)
    outcomes = run_batch(task, [Echo(str(i)) for i in range(3)], lambda *chunk: None)
    assert [o.kind for o in outcomes] == ["resource_exhausted"] * 3
    assert task.sizes == [3, 1, 2, 1, 1]


def test_run_batch_turns_task_errors_into_failures():
    class Broken(OomTask):
        def __init__(self, error: Exception) -> None:
            super().__init__(fits=10)
            self.error = error

        def forward(self, loaded, requests, emit):
            raise self.error

    outcomes = run_batch(Broken(ModelUnavailable("Set FILL_MASK_MODEL.")), [Echo("a"), Echo("b")], lambda *c: None)
    assert outcomes == [Failure("model_unavailable", "Set FILL_MASK_MODEL.")] * 2
    outcomes = run_batch(Broken(KeyError("oops")), [Echo("a")], lambda *c: None)
    assert outcomes[0].kind == "engine_error" and "Something went wrong" in outcomes[0].message
