"""Inference engine: tasks, model registry, worker process and scheduler. Knows nothing of Discord."""
from .config import EngineConfig, OFFLINE_MODELS, ONLINE_MODELS, ROLES
from .engine import Engine, EngineStatus
from .errors import (Busy, Cancelled, DeadlineExceeded, EngineError, InvalidInput, ModelUnavailable,
                     ResourceExhausted, WorkerCrashed)
from .scheduler import Job, Priority, Scheduler
from .requests import (FillMaskRequest, FillMaskResult, GenerationRequest, GenerationResult, SentimentRequest,
                    SentimentResult, TokenizeRequest, TokenizeResult, ZeroShotRequest, ZeroShotResult)

__all__ = [
    "Engine", "EngineConfig", "EngineStatus", "Job", "Priority", "Scheduler", "ROLES", "ONLINE_MODELS", "OFFLINE_MODELS",
    "EngineError", "InvalidInput", "Busy", "DeadlineExceeded", "ModelUnavailable", "WorkerCrashed", "Cancelled", "ResourceExhausted",
    "SentimentRequest", "SentimentResult", "GenerationRequest", "GenerationResult", "ZeroShotRequest", "ZeroShotResult",
    "FillMaskRequest", "FillMaskResult", "TokenizeRequest", "TokenizeResult",
]
