"""What every request shares: the contract checked in the bot process (torch-free)
and the small validation helpers the requests and the command layer use."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from .errors import EngineError, InvalidInput

MAX_TEXT_CHARS = 2000  # a Discord message is at most 2000 characters


@dataclass(frozen=True)
class Failure:
    """A per-request error as it crosses the process boundary (exceptions pickle badly)."""

    kind: str
    message: str


def failure(error: EngineError) -> Failure:
    return Failure(*error.to_wire())


@dataclass(frozen=True)
class Request:
    """Base of every task's request. Subclasses are frozen dataclasses of plain values."""

    task: ClassVar[str]
    # The worker-side class that answers it, as "module:Class": imported in the worker process only,
    # so the bot process never loads torch.
    worker: ClassVar[str]
    # Decodes over many steps (a text-to-text task): each request is its own unit and runs alongside
    # the others, instead of one forward pass answering the whole unit; its text arrives in chunks.
    streams: ClassVar[bool] = False

    def validate(self) -> None:
        """Raise InvalidInput with a chat-friendly message when the request is wrong."""

    def model_role(self) -> str:
        """Which configured model (a key of EngineConfig.models) runs this request."""
        return self.task

    def chosen_model(self) -> str:
        """The model the user picked from the role's list ("": the role's default); the engine checks it."""
        return getattr(self, "model", "")

    def cost(self) -> int:
        """Estimated tokens this request adds to a batch (the scheduler's budget unit)."""
        return estimate_tokens(getattr(self, "text", ""))

    def rows(self) -> int:
        """Sequences this request adds to a forward pass (or decode step)."""
        return 1

    def batch_key(self) -> tuple[Any, ...]:
        """Requests with equal keys may share a forward pass."""
        return (self.task, self.model_role(), self.chosen_model())


@dataclass(frozen=True)
class PipelineDetails:
    """What the pipeline did with one text: the seed's walk through a model's internals."""

    tokens: list[str]  # as the tokenizer split it, special tokens included
    logits: list[float]  # the model's raw scores, one per class, in id2label's order
    probabilities: list[float]  # softmax(logits)
    id2label: dict[int, str]  # class id -> label (for fill-mask: vocabulary id -> token)
    logits_are: str  # what the logits are, for this method


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


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()  # the default of an option the member must give


@dataclass(frozen=True)
class Option:
    """One option a member gives a command, declared once: the cogs build Discord's form from it, the
    console parses with it, and requests validate their fields with it."""

    name: str
    kind: type  # str, int, float or bool
    description: str
    default: Any = REQUIRED
    low: float | None = None  # numbers: the smallest value; text: the fewest characters
    high: float | None = None  # numbers: the largest value; text: the most characters
    choices: tuple[Any, ...] | Callable[[], tuple[Any, ...]] = ()  # a callable: known only once every task is
    models: bool = False  # names a model: suggested from the command's model list as the member types

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def values(self) -> tuple[Any, ...]:
        """The allowed values, for an option with choices."""
        return self.choices() if callable(self.choices) else self.choices

    def check(self, value: object, name: str | None = None) -> None:
        """Raise InvalidInput, in words a member understands, unless `value` is a valid value of this option."""
        name = name or self.name
        if value is None and self.default is None:
            return
        if self.choices:
            check_choice(value, name, self.values())
        elif self.kind is bool:
            if not isinstance(value, bool):
                raise InvalidInput(f"{name} must be true or false.")
        elif self.kind is str:
            if self.high is not None:
                check_text(value, name, int(self.high))
            elif not isinstance(value, str):
                raise InvalidInput(f"{name} must be text.")
        else:
            check_number(value, name, self.low, self.high, integer=self.kind is int)


def split_sentences(text: str) -> list[str]:
    """Several texts in one message: separated by new lines or `|`."""
    return [part.strip() for part in re.split(r"[\n|]", text) if part.strip()]
