"""Extractive question answering: every window of every request in one classification pass, then per
window transformers' own `select_starts_ends` (softmax over the context's tokens, the null score at
[CLS], spans no longer than `max_answer_len`), merged over a request's windows as the question-answering
pipeline did (transformers 5 dropped that pipeline but kept these helpers for document QA)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForQuestionAnswering, BatchEncoding, PretrainedConfig
from transformers.pipelines.document_question_answering import select_starts_ends

from ...specs.question_answering import (
    DOC_STRIDE,
    WINDOW_TOKENS,
    QuestionAnsweringRequest,
    QuestionAnsweringResult,
    Span,
)
from ..errors import InvalidInput
from ..passes import padded_forward
from ..registry import LoadedModel
from ..request import Failure, failure
from .base import Emit, Task


def qa_class(config: PretrainedConfig) -> type:
    return AutoModelForQuestionAnswering


@dataclass
class Windows:
    """A request's question and context as the model reads them: one encoding per window."""

    encoding: BatchEncoding  # with overflowing tokens: row i is window i
    context_index: int  # which sequence of the pair is the context (1: the question comes first)
    p_masks: list[np.ndarray]  # per window: 1 where a token can't be part of an answer ([CLS] can: the null)

    def features(self, names: list[str]) -> list[dict[str, list[int]]]:
        return [{name: self.encoding[name][i] for name in names} for i in range(len(self.p_masks))]


def windows(tokenizer: Any, request: QuestionAnsweringRequest) -> Windows | Failure:
    """Question and context in overlapping windows, as the pipeline's preprocessing did (its defaults:
    384 tokens, a stride of 128); a Failure when the question leaves no room for the context."""
    length = min(tokenizer.model_max_length, WINDOW_TOKENS)
    stride = min(length // 2, DOC_STRIDE)
    question_first = tokenizer.padding_side == "right"  # e.g. XLNet pads left and reads the context first
    question_tokens = len(tokenizer(request.question, add_special_tokens=False)["input_ids"])
    room = length - question_tokens - tokenizer.num_special_tokens_to_add(pair=True)
    if room <= stride:
        most = length - tokenizer.num_special_tokens_to_add(pair=True) - stride - 1
        return failure(
            InvalidInput(
                f"The question is too long ({question_tokens} tokens): this model reads {length} tokens of question "
                f"and context together, so keep the question under {most} tokens."
            )
        )
    pair = (request.question, request.context) if question_first else (request.context, request.question)
    encoding = tokenizer(
        *pair,
        truncation="only_second" if question_first else "only_first",
        max_length=length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    context_index = 1 if question_first else 0
    p_masks = []
    for i, ids in enumerate(encoding["input_ids"]):
        p_mask = np.array([sequence != context_index for sequence in encoding.sequence_ids(i)], dtype=int)
        p_mask[np.array(ids) == tokenizer.cls_token_id] = 0  # [CLS] stays: its score is the null answer's
        p_masks.append(p_mask)
    return Windows(encoding, context_index, p_masks)


class QuestionAnsweringTask(Task):
    model_class = staticmethod(qa_class)

    def preprocess(self, loaded: LoadedModel, requests: list[QuestionAnsweringRequest]) -> list[Windows | Failure]:
        return [windows(loaded.tokenizer, request) for request in requests]

    def forward(
        self, loaded: LoadedModel, read: list[Windows | Failure], emit: Emit
    ) -> list[tuple[Windows, list[torch.Tensor]] | Failure]:
        """Each request's windows with their (tokens, 2) start and end logits: all windows in one pass."""
        names = [name for name in loaded.tokenizer.model_input_names if name != "attention_mask"]
        features = [row for w in read if isinstance(w, Windows) for row in w.features(names)]

        def logits(batch: dict[str, Any]) -> torch.Tensor:
            out = loaded.model(**batch)
            return torch.stack([out.start_logits, out.end_logits], dim=-1).float().cpu()

        rows = iter(padded_forward(loaded, features, logits))
        return [
            w if isinstance(w, Failure) else (w, [next(rows)[: len(f["input_ids"])] for f in w.features(["input_ids"])])
            for w in read
        ]

    def postprocess(
        self,
        loaded: LoadedModel,
        outputs: list[tuple[Windows, list[torch.Tensor]] | Failure],
        requests: list[QuestionAnsweringRequest],
    ) -> list[QuestionAnsweringResult | Failure]:
        return [
            output if isinstance(output, Failure) else answer(request, *output, loaded.model_id)
            for request, output in zip(requests, outputs)
        ]


def answer(
    request: QuestionAnsweringRequest, read: Windows, logits: list[torch.Tensor], model: str
) -> QuestionAnsweringResult:
    """The best spans over every window (a span seen in two overlapping windows counts once, at its best),
    and whether the null score beats them (the pipeline's handle_impossible_answer)."""
    best: dict[tuple[int, int], Span] = {}
    null_score, null_logits = 1e6, None  # select_starts_ends keeps the lowest null score seen
    for window, (row, p_mask) in enumerate(zip(logits, read.p_masks)):
        start, end = row[:, 0].numpy(), row[:, 1].numpy()
        starts, ends, scores, lowest = select_starts_ends(
            start[None], end[None], p_mask, None, null_score, request.top_k, True, request.max_answer_len
        )
        if lowest < null_score:
            null_score, null_logits = lowest, (float(start[0]), float(end[0]))
        for s, e, score in zip(starts, ends, scores):
            first, last = characters(read, window, int(s), int(e))
            span = Span(request.context[first:last], float(score), first, last, float(start[s]), float(end[e]), window)
            known = best.get((first, last))
            if span.text and (known is None or span.score > known.score):
                best[(first, last)] = span
    spans = sorted(best.values(), key=lambda s: -s.score)[: request.top_k]
    return QuestionAnsweringResult(
        request.question,
        request.context,
        spans,
        null_score,
        not spans or null_score > spans[0].score,
        len(logits),
        request.max_answer_len,
        model,
        request.details,
        null_logits if request.details else None,
    )


def characters(read: Windows, window: int, start: int, end: int) -> tuple[int, int]:
    """A span's tokens as character offsets into the context, widened to whole words (the pipeline's
    align_to_words); by the tokens' own offsets where the tokenizer knows no words."""
    encoding = read.encoding.encodings[window]
    first, last = encoding.token_to_word(start), encoding.token_to_word(end)
    if first is None or last is None:
        return read.encoding["offset_mapping"][window][start][0], read.encoding["offset_mapping"][window][end][1]
    return (
        encoding.word_to_chars(first, sequence_index=read.context_index)[0],
        encoding.word_to_chars(last, sequence_index=read.context_index)[1],
    )
