"""The worker process: surviving a kill -9 mid-batch, and splitting batches on out-of-memory."""
from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass

import pytest
import pytest_asyncio
import torch

from bot.engine import Engine, GenerationRequest, WorkerCrashed
from bot.engine.errors import ModelUnavailable
from bot.engine.requests.base import Failure, Request
from bot.engine.tasks.base import Task
from bot.engine.worker import run_batch

from .conftest import tiny_engine_config

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


# --- out-of-memory splitting (run_batch, in this process) -----------------------------------

@dataclass(frozen=True)
class Echo(Request):
    task = "echo"
    text: str


class OomTask(Task):
    """Raises torch.OutOfMemoryError for batches larger than `fits` (None: for every batch)."""

    name = "echo"
    request_type = Echo

    def __init__(self, fits: int | None) -> None:
        super().__init__(registry=None)
        self.fits = fits
        self.sizes: list[int] = []

    def preprocess(self, requests):
        self.sizes.append(len(requests))
        return requests

    def forward(self, requests, emit):
        if self.fits is None or len(requests) > self.fits:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        for index, request in enumerate(requests):
            emit(index, 0, request.text)
        return requests

    def postprocess(self, requests, _):
        return [f"ok {r.text}" for r in requests]


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

        def forward(self, requests, emit):
            raise self.error

    outcomes = run_batch(Broken(ModelUnavailable("Set FILL_MASK_MODEL.")), [Echo("a"), Echo("b")], lambda *c: None)
    assert outcomes == [Failure("model_unavailable", "Set FILL_MASK_MODEL.")] * 2
    outcomes = run_batch(Broken(KeyError("oops")), [Echo("a")], lambda *c: None)
    assert outcomes[0].kind == "engine_error" and "Something went wrong" in outcomes[0].message
