"""Worker-side tasks (they import torch); TASKS maps a task name to its class."""

from __future__ import annotations

from ..registry import ModelRegistry
from .base import Task
from .fill_mask import FillMaskTask
from .generation import GenerationTask
from .learned_labels import EvaluateLabelsTask, LabelMessageTask, TrainLabelsTask
from .sentiment import SentimentTask
from .tokenize import TokenizeTask
from .zero_shot import ZeroShotTask

TASKS: dict[str, type[Task]] = {
    task.name: task
    for task in (
        SentimentTask,
        ZeroShotTask,
        FillMaskTask,
        TokenizeTask,
        LabelMessageTask,
        TrainLabelsTask,
        EvaluateLabelsTask,
    )
}


class TaskSet:
    """What a worker (or a Ray replica) runs: one generation task, which streams requests of any
    model, and one classification task per task name and chosen model."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry
        self.generation = GenerationTask(registry)
        registry.holders.append(self.generation)  # its models stay while it decodes with them
        self._tasks: dict[tuple[str, str], Task] = {}

    def get(self, name: str, model: str = "") -> Task:
        key = (name, model)
        if key not in self._tasks:
            self._tasks[key] = TASKS[name](self.registry, model)
        return self._tasks[key]


__all__ = ["TASKS", "Task", "TaskSet"]
