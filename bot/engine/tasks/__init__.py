"""Worker-side tasks (they import torch). Each request names its task's class (`Request.worker`)."""

from __future__ import annotations

import importlib

from ..registry import ModelRegistry
from ..request import Request
from .base import JobSink, StreamingTask, Task


def worker_class(request: Request) -> type:
    module, _, name = type(request).worker.partition(":")
    return getattr(importlib.import_module(module), name)


class TaskSet:
    """What a worker (or a Ray replica) runs: one instance per streaming task, which serves every model,
    and one per classification task and chosen model."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry
        self._tasks: dict[tuple[str, str], Task] = {}
        self._streaming: dict[str, StreamingTask] = {}

    def get(self, request: Request) -> Task:
        """The classification task for a unit (its requests share the task and the chosen model)."""
        key = (request.task, request.chosen_model())
        if key not in self._tasks:
            self._tasks[key] = worker_class(request)(self.registry, request.chosen_model())
        return self._tasks[key]

    def start(self, job_id: int, request: Request, sink: JobSink) -> None:
        """Begin decoding a streaming request."""
        if request.task not in self._streaming:
            task = self._streaming[request.task] = worker_class(request)(self.registry)
            self.registry.holders.append(task)  # its models stay while it decodes with them
        self._streaming[request.task].start(job_id, request, sink)

    def cancel(self, job_id: int) -> bool:
        """Stop a streaming job at its next step; True when one was running."""
        return any(task.cancel(job_id) for task in self._streaming.values())

    def close(self) -> None:
        for task in self._streaming.values():
            task.close()


__all__ = ["Task", "TaskSet", "StreamingTask", "worker_class"]
