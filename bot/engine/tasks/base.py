"""What every task shares: the request contract (checked in the bot process) and
the worker-side pipeline split of transformers (preprocess -> forward -> postprocess).
"""
from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import EngineError, InvalidInput

if TYPE_CHECKING:
    from ..registry import ModelRegistry

MAX_TEXT_CHARS = 2000  # a Discord message is at most 2000 characters

# Called by a task while it runs: (request index, sequence index, text delta).
Emit = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Failure:
    """A per-request error as it crosses the process boundary (exceptions pickle badly)."""

    kind: str
    message: str


@dataclass(frozen=True)
class Request:
    """Base of every task's request. Subclasses are frozen dataclasses of plain values."""

    task: ClassVar[str]

    def validate(self) -> None:
        """Raise InvalidInput with a chat-friendly message when the request is wrong."""

    def model_role(self) -> str:
        """Which configured model (a key of EngineConfig.models) runs this request."""
        return self.task

    def cost(self) -> int:
        """Estimated tokens this request adds to a batch (the scheduler's budget unit)."""
        return estimate_tokens(getattr(self, "text", ""))

    def batch_key(self) -> tuple[Any, ...]:
        """Requests with equal keys may share a forward pass."""
        return (self.task, self.model_role())


def estimate_tokens(text: str) -> int:
    # About four characters per token for English BPE/WordPiece; +2 for special tokens.
    return len(text) // 4 + 2


def check_text(text: object, name: str = "text", max_chars: int = MAX_TEXT_CHARS) -> str:
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(f"The {name} is empty. Please give me some text to work with.")
    if len(text) > max_chars:
        raise InvalidInput(f"The {name} is too long ({len(text)} characters); the limit is {max_chars}.")
    return text


def check_number(value: object, name: str, low: float, high: float, *, integer: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(f"{name} must be a number.")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(f"{name} must be a real number, not {value}.")
    # A float such as 2.0 is refused too: tasks use these as counts (range(), topk()), where it would crash the batch.
    if integer and not isinstance(value, int):
        raise InvalidInput(f"{name} must be a whole number.")
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low:g} and {high:g} (got {value:g}).")


def check_choice(value: object, name: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise InvalidInput(f"{name} must be one of: {', '.join(choices)}.")


def split_sentences(text: str) -> list[str]:
    """Several texts in one message: separated by new lines or `|`."""
    return [part.strip() for part in re.split(r"[\n|]", text) if part.strip()]


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


def failure(error: EngineError) -> Failure:
    return Failure(*error.to_wire())
