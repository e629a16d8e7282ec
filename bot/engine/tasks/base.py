"""What every worker-side task shares, like transformers' `Pipeline`: the base looks the model up once
per pass and runs the pass under `torch.inference_mode()`; a task writes preprocess -> forward ->
postprocess. A streaming task (text that decodes over many steps) is a `StreamingTask` instead."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from .. import profiling
from ..request import Request

if TYPE_CHECKING:
    from ..registry import ClassPicker, LoadedModel, ModelRegistry

# Called by a task while it runs: (request index, sequence index, text delta).
Emit = Callable[[int, int, str], None]


class JobSink(Protocol):
    """Where a streaming task sends a job's text deltas and, once, its outcome."""

    def chunk(self, job_id: int, sequence: int, text: str) -> None: ...

    def done(self, job_id: int, outcome: Any) -> None: ...


class Task(ABC):
    """Answers a unit of requests with `run`: one forward pass, give or take a split for padding.

    Owns no model itself: asks the registry for it. There is one instance per task and chosen model
    (`TaskSet`), so per-model caches live on the instance."""

    # How the task's model loads, from its config (e.g. AutoModelForMaskedLM); None: it needs none.
    model_class: ClassVar[ClassPicker | None] = None
    trains: ClassVar[bool] = False  # fits weights (learned labels): autograd stays on

    def __init__(self, registry: ModelRegistry, model: str = "") -> None:
        self.registry = registry
        self.model = model  # the model id its requests chose ("": the role's default)

    def run(self, requests: list[Request], emit: Emit) -> list[Any]:
        """Answer a batch; each slot holds a result dataclass or a Failure."""
        import torch

        with torch.inference_mode(not self.trains):
            loaded = self.load(requests)
            inputs = self.preprocess(loaded, requests)
            outputs = self.forward(loaded, inputs, emit)
            with profiling.phase("postprocess"):
                return self.postprocess(loaded, outputs, requests)

    def load(self, requests: list[Request]) -> LoadedModel | None:
        """The pass's model, looked up once (its role and choice are part of the batch key)."""
        if self.model_class is None:
            return None
        return self.registry.get(requests[0].model_role(), self.model_class, self.model)

    @abstractmethod
    def preprocess(self, loaded: Any, requests: list[Any]) -> Any: ...

    @abstractmethod
    def forward(self, loaded: Any, inputs: Any, emit: Emit) -> Any: ...

    @abstractmethod
    def postprocess(self, loaded: Any, outputs: Any, requests: list[Any]) -> list[Any]: ...


class StreamingTask(ABC):
    """A task whose requests each decode over many steps: started one by one, each streams its text to
    a sink and finishes on its own. One instance per task serves every model. The registry asks it
    before evicting a model (it is a `ModelHolder`)."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

    @abstractmethod
    def start(self, job_id: int, request: Any, sink: JobSink) -> None:
        """Begin decoding a request; chunks and the result go to `sink` as they come."""

    @abstractmethod
    def cancel(self, job_id: int) -> bool:
        """Stop a job at its next step; True when it was running here."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def holds(self, loaded: LoadedModel) -> bool:
        """Work is running on this model now."""

    @abstractmethod
    def release(self, loaded: LoadedModel) -> None:
        """Drop what was built on this model (e.g. KV caches); it is being evicted."""
