"""Inference engine: tasks, model registry, worker process and scheduler. Knows nothing of Discord.

Importing this package does not import torch: requests, results, errors and the
scheduler are plain Python; torch loads in the worker process only.
"""

from .config import OFFLINE_MODELS, ONLINE_MODELS, ROLES, EngineConfig
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
from .requests import (
    FillMaskRequest,
    FillMaskResult,
    GenerationRequest,
    GenerationResult,
    SentimentRequest,
    SentimentResult,
    TokenizeRequest,
    TokenizeResult,
    ZeroShotRequest,
    ZeroShotResult,
)
from .scheduler import Job, Priority, Scheduler

__all__ = [
    "Engine",
    "EngineConfig",
    "EngineStatus",
    "Job",
    "Priority",
    "Scheduler",
    "ROLES",
    "ONLINE_MODELS",
    "OFFLINE_MODELS",
    "EngineError",
    "InvalidInput",
    "Busy",
    "DeadlineExceeded",
    "ModelUnavailable",
    "WorkerCrashed",
    "WorkerStalled",
    "Cancelled",
    "ResourceExhausted",
    "SentimentRequest",
    "SentimentResult",
    "GenerationRequest",
    "GenerationResult",
    "ZeroShotRequest",
    "ZeroShotResult",
    "FillMaskRequest",
    "FillMaskResult",
    "TokenizeRequest",
    "TokenizeResult",
]
