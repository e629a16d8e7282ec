"""What every worker-side task shares: the transformers pipeline split (preprocess -> forward -> postprocess)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ..requests.base import Request

if TYPE_CHECKING:
    from ..registry import ModelRegistry

# Called by a task while it runs: (request index, sequence index, text delta).
Emit = Callable[[int, int, str], None]


class JobSink(Protocol):
    """Where a streaming task sends a job's text deltas and, once, its outcome."""

    def chunk(self, job_id: int, sequence: int, text: str) -> None: ...

    def done(self, job_id: int, outcome: Any) -> None: ...


class Task(ABC):
    """Worker-side half of a task: owns no model itself, asks the registry for it.

    There is one instance per task and chosen model, so per-model caches live on the instance.
    The worker answers a unit of requests with `run`: one forward pass, give or take a split
    for padding. (Generation is not a Task: its requests stream for many steps; see GenerationTask.)
    """

    name: ClassVar[str]
    request_type: ClassVar[type[Request]]

    def __init__(self, registry: ModelRegistry, model: str = "") -> None:
        self.registry = registry
        self.model = model  # the model id its requests chose ("": the role's default); see TaskSet

    def run(self, requests: list[Request], emit: Emit) -> list[Any]:
        """Answer a batch; each slot holds a result dataclass or a Failure."""
        inputs = self.preprocess(requests)
        outputs = self.forward(inputs, emit)
        return self.postprocess(outputs, requests)

    @abstractmethod
    def preprocess(self, requests: list[Request]) -> Any: ...

    @abstractmethod
    def forward(self, inputs: Any, emit: Emit) -> Any: ...

    @abstractmethod
    def postprocess(self, outputs: Any, requests: list[Request]) -> list[Any]: ...
