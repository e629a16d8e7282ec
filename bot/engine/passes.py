"""Forward passes over length-sorted, padded chunks: the one tokenize -> chunk -> pad ->
forward loop every task and the embedder share."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .registry import LoadedModel

MAX_LENGTH = 512  # tokens of one text a classification pass reads (BERT-sized position tables)
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
    for chunk in padded_chunks([len(row["input_ids"]) for row in features], FORWARD_TOKENS, loaded.forward_rows):
        batch = loaded.tokenizer.pad([features[i] for i in chunk], return_tensors="pt")
        rows = run({name: tensor.to(loaded.device) for name, tensor in batch.items()})
        for index, row in zip(chunk, rows):
            outputs[index] = row
    return outputs
