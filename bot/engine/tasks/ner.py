"""Named entities: token classification passes batched across users; each text's entities grouped by
transformers' own TokenClassificationPipeline postprocessing (its aggregation strategies)."""

from __future__ import annotations

from typing import Any

import torch
from transformers import AutoModelForTokenClassification, PretrainedConfig, TokenClassificationPipeline
from transformers.pipelines.token_classification import AggregationStrategy

from ...specs.ner import Entity, NerRequest, NerResult, TokenTag
from ..passes import MAX_LENGTH, padded_forward
from ..registry import LoadedModel
from .base import Emit, Task


def ner_class(config: PretrainedConfig) -> type:
    return AutoModelForTokenClassification


class NerTask(Task):
    model_class = staticmethod(ner_class)

    def __init__(self, registry: Any, model: str = "") -> None:
        super().__init__(registry, model)
        self.pipelines: dict[int, TokenClassificationPipeline] = {}  # by id of the loaded model

    def preprocess(self, loaded: LoadedModel, requests: list[NerRequest]) -> list[dict[str, Any]]:
        return [
            loaded.tokenizer(
                r.text,
                truncation=True,
                max_length=MAX_LENGTH,
                return_offsets_mapping=True,
                return_special_tokens_mask=True,
                return_overflowing_tokens=True,
            )
            for r in requests
        ]

    def forward(
        self, loaded: LoadedModel, encodings: list[dict[str, Any]], emit: Emit
    ) -> list[tuple[dict[str, Any], torch.Tensor]]:
        """Each text's encoding with its tokens' logits."""
        ids = [encoding["input_ids"][0] for encoding in encodings]  # the first window: what the model reads
        rows = padded_forward(loaded, ids, lambda batch: loaded.model(**batch).logits.float().cpu())
        return [(encoding, row[: len(text_ids)]) for encoding, row, text_ids in zip(encodings, rows, ids)]

    def postprocess(
        self, loaded: LoadedModel, outputs: list[tuple[dict[str, Any], torch.Tensor]], requests: list[NerRequest]
    ) -> list[NerResult]:
        pipe = self._pipeline(loaded)
        id2label = loaded.config.id2label
        results = []
        for request, (encoding, row) in zip(requests, outputs):
            outputs = {
                "logits": row[None],
                "sentence": request.text,
                "input_ids": torch.tensor([encoding["input_ids"][0]]),
                "offset_mapping": torch.tensor([encoding["offset_mapping"][0]]),
                "special_tokens_mask": torch.tensor([encoding["special_tokens_mask"][0]]),
            }
            found = pipe.postprocess([outputs], aggregation_strategy=AggregationStrategy(request.aggregation))
            entities = [
                Entity(request.text[start:end], e.get("entity_group") or e["entity"], float(e["score"]), start, end)
                for e in found
                for start, end in [(int(e["start"]), int(e["end"]))]
            ]
            details = None
            if request.details:
                probabilities = torch.softmax(row, dim=-1)
                best = probabilities.argmax(dim=-1).tolist()
                tokens = loaded.tokenizer.convert_ids_to_tokens(encoding["input_ids"][0])
                details = [
                    TokenTag(token, id2label[tag], float(row[i, tag]), float(probabilities[i, tag]))
                    for i, (token, tag) in enumerate(zip(tokens, best))
                ]
            truncated = len(encoding["input_ids"]) > 1
            results.append(NerResult(request.text, entities, request.aggregation, loaded.model_id, truncated, details))
        return results

    def _pipeline(self, loaded: LoadedModel) -> TokenClassificationPipeline:
        """transformers' own pipeline around the loaded model, for its postprocessing (built once per model)."""
        key = id(loaded.model)
        if key not in self.pipelines:
            self.pipelines = {key: TokenClassificationPipeline(model=loaded.model, tokenizer=loaded.tokenizer)}
        return self.pipelines[key]
