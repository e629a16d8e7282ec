"""What every worker-side task shares: the transformers pipeline split
(preprocess -> forward -> postprocess) and length-sorted forward passes.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ..requests.base import Request

if TYPE_CHECKING:
    from ..registry import ModelRegistry

# Called by a task while it runs: (request index, sequence index, text delta).
Emit = Callable[[int, int, str], None]


FORWARD_TOKENS = 8192  # padded tokens in one forward pass; bounds activation memory
MAX_PADDING = 0.25  # a longer text starts a new pass rather than pad the pass past this share


def forward_rows(device: Any) -> int:
    """Rows per forward pass. A CPU gains little from wide batches and pays for their
    padding (measured in bench/: 8-row chunks beat 32-row ones); a GPU wants them wide."""
    return 8 if getattr(device, "type", device) == "cpu" else 64


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


class Task(ABC):
    """Worker-side half of a task: owns no model itself, asks the registry for it."""

    name: ClassVar[str]
    request_type: ClassVar[type[Request]]

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

    def chunks(self, lengths: Sequence[int]) -> list[list[int]]:
        """The forward passes for sequences of these token lengths (see padded_chunks)."""
        return padded_chunks(lengths, FORWARD_TOKENS, forward_rows(self.registry.device))

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
