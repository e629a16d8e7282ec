"""One module per task; TASKS maps a task name to its worker-side class."""
from .base import Failure, Request, Task
from .fill_mask import FillMaskRequest, FillMaskResult, FillMaskTask
from .generation import GenerationRequest, GenerationResult, GenerationTask
from .sentiment import SentimentRequest, SentimentResult, SentimentTask
from .tokenize import TokenizeRequest, TokenizeResult, TokenizeTask
from .zero_shot import ZeroShotRequest, ZeroShotResult, ZeroShotTask

TASKS: dict[str, type[Task]] = {
    task.name: task for task in (SentimentTask, GenerationTask, ZeroShotTask, FillMaskTask, TokenizeTask)
}

__all__ = [
    "TASKS", "Failure", "Request", "Task",
    "SentimentRequest", "SentimentResult", "GenerationRequest", "GenerationResult",
    "ZeroShotRequest", "ZeroShotResult", "FillMaskRequest", "FillMaskResult",
    "TokenizeRequest", "TokenizeResult",
]
