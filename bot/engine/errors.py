"""Typed errors the engine raises. Each carries a message a chat user understands.

They cross the process boundary as (kind, message) pairs, so every subclass is
rebuilt from its name by `from_wire`.
"""

from __future__ import annotations

FAILED = "Something went wrong while running the model. Please try again."  # an unexpected error, logged


class EngineError(Exception):
    """Base class: `str(error)` is safe to show to a chat user."""

    kind = "engine_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_wire(self) -> tuple[str, str]:
        return (self.kind, self.message)


class InvalidInput(EngineError):
    """The request itself is wrong (empty text, two masks, unknown option...)."""

    kind = "invalid_input"


class Busy(EngineError):
    """Back-pressure: the queue or the user's in-flight cap is full."""

    kind = "busy"

    def __init__(self, message: str, retry_after: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeadlineExceeded(EngineError):
    """The request waited past its deadline and was dropped without running."""

    kind = "deadline"


class ModelUnavailable(EngineError):
    """A model could not be loaded; the message names the setting to change."""

    kind = "model_unavailable"


class WorkerCrashed(EngineError):
    """The worker process died while this request was in flight."""

    kind = "worker_crashed"


class WorkerStalled(WorkerCrashed):
    """The worker stopped making progress (hung) and was restarted by the watchdog."""

    kind = "worker_stalled"


class Cancelled(EngineError):
    kind = "cancelled"


class ResourceExhausted(EngineError):
    """Out of device memory even for a batch of one."""

    kind = "resource_exhausted"


_KINDS = {
    cls.kind: cls
    for cls in (
        EngineError,
        InvalidInput,
        Busy,
        DeadlineExceeded,
        ModelUnavailable,
        WorkerCrashed,
        WorkerStalled,
        Cancelled,
        ResourceExhausted,
    )
}


def from_wire(kind: str, message: str) -> EngineError:
    return _KINDS.get(kind, EngineError)(message)
