"""Worker-side tasks (they import torch); TASKS maps a task name to its class."""
from .base import Task
from .fill_mask import FillMaskTask
from .generation import GenerationTask
from .learned_labels import EvaluateLabelsTask, LabelMessageTask, TrainLabelsTask
from .sentiment import SentimentTask
from .tokenize import TokenizeTask
from .zero_shot import ZeroShotTask

TASKS: dict[str, type[Task] | type[GenerationTask]] = {
    task.name: task for task in (SentimentTask, GenerationTask, ZeroShotTask, FillMaskTask, TokenizeTask,
                                  LabelMessageTask, TrainLabelsTask, EvaluateLabelsTask)
}

__all__ = ["TASKS", "Task"]
