"""Where a worker's time goes, per unit: phase timers the tasks' shared code marks (tokenize, collate,
forward, postprocess; and a count of forward passes), read by bench/profile.py. Off by default
(EngineConfig.profile_passes): a phase then costs one check and a shared no-op context."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager

_OFF = contextlib.nullcontext()
_seconds: dict[str, float] | None = None  # phase -> seconds in the current unit; None: off


def enable() -> None:
    global _seconds
    _seconds = {}


def phase(name: str) -> AbstractContextManager[None]:
    """Time a phase of the current unit (nested phases are counted in their own name only)."""
    return _OFF if _seconds is None else _timed(name)


@contextlib.contextmanager
def _timed(name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        add(name, time.perf_counter() - started)


def add(name: str, seconds: float) -> None:
    if _seconds is not None:
        _seconds[name] = _seconds.get(name, 0.0) + seconds


def take() -> dict[str, float] | None:
    """The current unit's phases (None when off), and start the next unit's."""
    if _seconds is None:
        return None
    taken = dict(_seconds)
    _seconds.clear()
    return taken
