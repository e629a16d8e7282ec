"""Forward passes take turns on the device.

Inside the worker, classification runs on the main thread and generation decodes on
its own thread(s). Every model's forward pass holds the device turn, handed out in
arrival order (a ticket lock), so a classification pass waits for at most the decode
step in progress, a decode step for at most one classification pass, and the two never
fight over the same cores. The turn also tells the watchdog how long the current step
has been running.
"""

from __future__ import annotations

import threading
import time
from typing import Any


class DeviceTurns:
    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._next_ticket = 0
        self._serving = 0
        self._holder: int | None = None  # thread holding the turn; a nested forward doesn't queue again
        self._depth = 0
        self.steps = 0  # forward passes completed
        self.running_since: float | None = None
        self.slowest_step = 0.0

    def acquire(self) -> None:
        me = threading.get_ident()
        with self._changed:
            if self._holder == me:
                self._depth += 1
                return
            ticket = self._next_ticket
            self._next_ticket += 1
            self._changed.wait_for(lambda: self._serving == ticket)
            self._holder, self._depth = me, 1
            self.running_since = time.monotonic()

    def release(self) -> None:
        with self._changed:
            self._depth -= 1
            if self._depth:
                return
            if self.running_since is not None:
                self.slowest_step = max(self.slowest_step, time.monotonic() - self.running_since)
            self._holder, self.running_since = None, None
            self.steps += 1
            self._serving += 1
            self._changed.notify_all()

    def running_for(self) -> float | None:
        since = self.running_since
        return None if since is None else time.monotonic() - since

    def attach(self, model: Any) -> None:
        """Make every call of `model` (a torch module) hold the turn, released even when it raises."""
        model.register_forward_pre_hook(lambda *_: self.acquire())
        model.register_forward_hook(lambda *_: self.release(), always_call=True)
