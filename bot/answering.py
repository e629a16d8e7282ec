"""The one way a request is answered, for every command, button, /compare and the console:
submit (refused at once when the queue is full, before anything is shown), then follow the jobs —
the queue position while they wait, the text as it streams — and cancel whatever is left at the end,
so an answer that can no longer be shown never holds a place in the queue or the device.

A front end only says how to show those two things (a `Screen`); it knows nothing of jobs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .commands import render_waiting
from .engine import EngineError, Job, Request

QUEUE_INTERVAL = 2.0  # seconds between looks at the queue position


class Screen(Protocol):
    """Where an answer is being shown."""

    async def waiting(self, text: str) -> bool:
        """Show the queue position; False when the answer is gone (deleted, expired): nobody will see it."""

    async def streamed(self, text: str, delta: str) -> None:
        """Show the first sequence's text so far, `delta` being what is new."""


@dataclass
class Answering:
    """Requests being answered (one, or two for /compare) and the text streamed so far (what Stop keeps)."""

    requests: list[Request]
    jobs: list[Job]
    text: str = ""
    stopped: bool = False  # its member pressed Stop: the answer keeps `text`

    @classmethod
    def submit(cls, submit: Callable[[Request], Job], requests: Sequence[Request]) -> Answering:
        """Queue every request, or none: a refusal (Busy, a model not in the list) cancels what was queued."""
        jobs: list[Job] = []
        try:
            for request in requests:
                jobs.append(submit(request))
        except EngineError:
            for job in jobs:
                job.cancel()
            raise
        return cls(list(requests), jobs)

    async def follow(self, screen: Screen, queue_interval: float = QUEUE_INTERVAL) -> list[Any]:
        """Each job's result or EngineError, in order, once all are done."""
        waiting = asyncio.create_task(self._show_queue(screen, queue_interval))
        try:
            if len(self.requests) == 1 and self.requests[0].streams:  # /compare shows both when both are done
                async for sequence, delta in self.jobs[0].chunks():
                    if sequence == 0:
                        self.text += delta
                        await screen.streamed(self.text, delta)
            outcomes = await asyncio.gather(*(job.result() for job in self.jobs), return_exceptions=True)
        finally:
            self.cancel()  # no-op once finished; otherwise (showing failed) frees the queue or the device
            waiting.cancel()
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, EngineError):
                raise outcome
        return outcomes

    async def result(self, screen: Screen, queue_interval: float = QUEUE_INTERVAL) -> Any:
        """The one job's result; its EngineError raised."""
        (outcome,) = await self.follow(screen, queue_interval)
        if isinstance(outcome, EngineError):
            raise outcome
        return outcome

    def stop(self) -> None:
        """Its member pressed Stop: the writer shows the text so far."""
        self.stopped = True
        self.cancel()

    def cancel(self) -> None:
        for job in self.jobs:
            job.cancel()

    async def _show_queue(self, screen: Screen, interval: float) -> None:
        shown = None
        while True:
            await asyncio.sleep(interval)
            queued = [(position, job.eta() or 0.0) for job in self.jobs if (position := job.position()) is not None]
            if not queued:
                return
            text = render_waiting(*max(queued))  # the later of the two, for /compare
            if text != shown:
                if not await screen.waiting(text):
                    self.cancel()
                    return
                shown = text


class Unseen:
    """A screen for an answer nobody watches being written (background work, scripts, tests)."""

    async def waiting(self, text: str) -> bool:
        return True

    async def streamed(self, text: str, delta: str) -> None:
        pass
