"""Inference engine: scheduler, worker process, model registry and the worker side of each task.
Knows nothing of Discord.

Importing this package does not import torch: requests, errors and the scheduler are plain
Python; torch loads in the worker process only. Each task's request and result types live
with its spec (bot/specs/).
"""

from .config import EngineConfig
from .engine import Engine, EngineStatus
from .errors import (
    Busy,
    Cancelled,
    DeadlineExceeded,
    EngineError,
    InvalidInput,
    ModelUnavailable,
    ResourceExhausted,
    WorkerCrashed,
    WorkerStalled,
)
from .request import Request
from .scheduler import Job, Priority, Scheduler

__all__ = [
    "Engine",
    "EngineConfig",
    "EngineStatus",
    "Job",
    "Priority",
    "Request",
    "Scheduler",
    "EngineError",
    "InvalidInput",
    "Busy",
    "DeadlineExceeded",
    "ModelUnavailable",
    "WorkerCrashed",
    "WorkerStalled",
    "Cancelled",
    "ResourceExhausted",
]
