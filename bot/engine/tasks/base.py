"""What every worker-side task shares: the transformers pipeline split
(preprocess -> forward -> postprocess) and length-sorted forward passes.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ..requests.base import Request

if TYPE_CHECKING:
    from ..registry import LoadedModel, ModelRegistry

# Called by a task while it runs: (request index, sequence index, text delta).
Emit = Callable[[int, int, str], None]


class JobSink(Protocol):
    """Where a streaming task sends a job's text deltas and, once, its outcome."""

    def chunk(self, job_id: int, sequence: int, text: str) -> None: ...

    def done(self, job_id: int, outcome: Any) -> None: ...


FORWARD_TOKENS = 8192  # padded tokens in one forward pass; bounds activation memory
MAX_PADDING = 0.25  # a longer text starts a new pass rather than pad the pass past this share


def padded_chunks(lengths: Sequence[int], max_tokens: int, max_rows: int) -> list[list[int]]:
    """Group indices sorted by length into forward passes of at most `max_rows` rows,
    `max_tokens` padded tokens and MAX_PADDING padding. Sorting first means each pass pads little.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    chunks: list[list[int]] = []
    current: list[int] = []
    real = 0
    for index in order:
        # Sorted ascending, so this length is the chunk's padded width.
        padded = (len(current) + 1) * lengths[index]
        if current and (len(current) >= max_rows or padded > max_tokens or padded > (1 + MAX_PADDING) * (real + lengths[index])):
            chunks.append(current)
            current, real = [], 0
        current.append(index)
        real += lengths[index]
    if current:
        chunks.append(current)
    return chunks


def padded_forward(loaded: LoadedModel, encoded: Sequence[list[int]], run: Callable[[dict[str, Any]], Sequence[Any]]) -> list[Any]:
    """The one tokenize -> chunk -> pad -> forward loop of every task: pads length-sorted chunks of
    token ids, moves each to the model's device and calls `run` on it (one forward pass each).
    Returns run's per-row outputs in input order."""
    outputs: list[Any] = [None] * len(encoded)
    for chunk in padded_chunks([len(ids) for ids in encoded], FORWARD_TOKENS, loaded.forward_rows):
        batch = loaded.tokenizer.pad({"input_ids": [encoded[i] for i in chunk]}, return_tensors="pt")
        rows = run({name: tensor.to(loaded.device) for name, tensor in batch.items()})
        for index, row in zip(chunk, rows):
            outputs[index] = row
    return outputs


class Task(ABC):
    """Worker-side half of a task: owns no model itself, asks the registry for it.

    The worker answers a unit of requests with `run`: one forward pass, give or take a split
    for padding. (Generation is not a Task: its requests stream for many steps; see GenerationTask.)
    """

    name: ClassVar[str]
    request_type: ClassVar[type[Request]]

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

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
