"""Forward passes over length-sorted, padded chunks: the one tokenize -> chunk -> pad ->
forward loop every task and the embedder share, and how big a pass is on each device."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import profiling

if TYPE_CHECKING:
    from .registry import LoadedModel

MAX_LENGTH = 512  # tokens of one text a classification pass reads (BERT-sized position tables)
FORWARD_TOKENS = 8192  # padded tokens in one forward pass; bounds activation memory
MAX_PADDING = 0.25  # a longer text starts a new pass rather than pad the pass past this share


@dataclass(frozen=True)
class PassShape:
    """How big one classification forward pass is on a device: the scheduler forms units of at most
    `rows` rows and about `tokens` tokens; the worker pads each pass's width up to a multiple of
    `pad_multiple` (kernels built per shape are reused; 1: no rounding)."""

    rows: int
    tokens: int
    pad_multiple: int = 1


def pass_shape(device_type: str, bf16: bool = False, rows: int = 0, tokens: int = 0) -> PassShape:
    """The pass shape for a device (`rows`/`tokens` override it when set).

    - A CPU's matrix products gain from wide passes too (bench/profile.py: the ceiling's 32-row passes
      ran 1.2-2.4x its 8-row ones on 2 cores, float32), but every padded token costs as much as a real
      one, and a pass cannot be interrupted (about a second at 1024 tokens on 2 cores in float32): short
      texts fill up to 32 rows, long ones fewer. Lengths are rounded only where
      oneDNN builds a bf16 kernel per shape (`bf16`: encoders run in it); in float32 rounding is pure waste.
    - A GPU wants wide passes (its time barely grows with rows until it is full) and widths that are
      multiples of 8 (tensor-core tiles, fewer distinct kernels)."""
    if device_type == "cpu":
        shape = PassShape(32, 1024, 16 if bf16 else 1)
    else:
        shape = PassShape(64, FORWARD_TOKENS, 8)
    return PassShape(rows or shape.rows, tokens or shape.tokens, shape.pad_multiple)


def padded_width(length: int, multiple: int) -> int:
    return -(-length // multiple) * multiple


def padded_chunks(lengths: Sequence[int], max_tokens: int, max_rows: int, multiple: int = 1) -> list[list[int]]:
    """Group indices sorted by length into forward passes of at most `max_rows` rows,
    `max_tokens` padded tokens and MAX_PADDING padding. Sorting first means each pass pads little.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    chunks: list[list[int]] = []
    current: list[int] = []
    real = 0
    for index in order:
        # Sorted ascending, so this length (rounded) is the chunk's padded width.
        padded = (len(current) + 1) * padded_width(lengths[index], multiple)
        if current and (
            len(current) >= max_rows or padded > max_tokens or padded > (1 + MAX_PADDING) * (real + lengths[index])
        ):
            chunks.append(current)
            current, real = [], 0
        current.append(index)
        real += lengths[index]
    if current:
        chunks.append(current)
    return chunks


def padded_forward(
    loaded: LoadedModel,
    encoded: Sequence[list[int] | Mapping[str, list[int]]],
    run: Callable[[dict[str, Any]], Sequence[Any]],
) -> list[Any]:
    """The one tokenize -> chunk -> pad -> forward loop of every task: pads length-sorted chunks of
    token ids (or of features with `input_ids`, e.g. a pair's `token_type_ids` too), moves each to the
    model's device and calls `run` on it (one forward pass each). Returns run's per-row outputs in input order."""
    features = [row if isinstance(row, Mapping) else {"input_ids": row} for row in encoded]
    outputs: list[Any] = [None] * len(features)
    shape = loaded.passes
    lengths = [len(row["input_ids"]) for row in features]
    # The unit was sized by the scheduler's estimate; here only activation memory bounds a pass.
    for chunk in padded_chunks(lengths, FORWARD_TOKENS, shape.rows, shape.pad_multiple):
        with profiling.phase("collate"):
            multiple = shape.pad_multiple if shape.pad_multiple > 1 else None
            batch = loaded.tokenizer.pad([features[i] for i in chunk], pad_to_multiple_of=multiple, return_tensors="pt")
            batch = {name: tensor.to(loaded.device) for name, tensor in batch.items()}
        with profiling.phase("forward"):
            rows = run(batch)
        profiling.add("forward passes", 1)
        for index, row in zip(chunk, rows):
            outputs[index] = row
    return outputs


def encode(loaded: LoadedModel, texts: Sequence[str], pairs: Sequence[str] | None = None, **kwargs: Any) -> list[Any]:
    """Token ids of every text of a pass (with `pairs`: of each (text, pair) pair), in one tokenizer call:
    a fast tokenizer encodes a list in one go, a call per text costs its Python set-up each time."""
    with profiling.phase("tokenize"):
        return loaded.tokenizer(list(texts), list(pairs) if pairs is not None else None, **kwargs)["input_ids"]
