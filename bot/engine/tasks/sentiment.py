"""Sentiment: text classification of one or several sentences per request.

With a classifier (e.g. distilbert-sst2) labels come from the model; with a plain
sentence-embedding model (offline profile) the texts are compared with a
positive and a negative description instead.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import AutoModel, AutoModelForSequenceClassification, PretrainedConfig

from ...specs.sentiment import ROLE, PipelineDetails, SentenceSentiment, SentimentRequest, SentimentResult
from ..embeddings import SIMILARITY_SCALE, Embedder
from ..passes import MAX_LENGTH, encode, padded_forward
from ..registry import LoadedModel
from .base import Emit, Task

EMBEDDING_LABELS = {"NEGATIVE": "a negative, unhappy, angry text", "POSITIVE": "a positive, happy, enthusiastic text"}


def is_classifier(config: PretrainedConfig) -> bool:
    return any(a.endswith("ForSequenceClassification") for a in (config.architectures or []))


def sentiment_class(config: PretrainedConfig) -> type:
    return AutoModelForSequenceClassification if is_classifier(config) else AutoModel


class SentimentTask(Task):
    model_class = staticmethod(sentiment_class)

    def __init__(self, registry: Any, model: str = "") -> None:
        super().__init__(registry, model)
        self.embedder = Embedder(registry, ROLE.name, model)

    def preprocess(self, loaded: LoadedModel, requests: list[SentimentRequest]) -> list[str]:
        return [text for request in requests for text in request.texts]  # flatten; regrouped later

    def forward(self, loaded: LoadedModel, texts: list[str], emit: Emit) -> torch.Tensor:
        """The logits: the classifier's, or the scaled cosine similarities to the two descriptions."""
        if not is_classifier(loaded.config):
            return (
                self.embedder.embed(texts)
                @ self.embedder.label_embeddings(list(EMBEDDING_LABELS.values())).T
                * SIMILARITY_SCALE
            )
        encoded = encode(loaded, texts, truncation=True, max_length=MAX_LENGTH)
        rows = padded_forward(loaded, encoded, lambda batch: loaded.model(**batch).logits.float().cpu())
        return torch.stack(rows)

    def postprocess(
        self, loaded: LoadedModel, logits: torch.Tensor, requests: list[SentimentRequest]
    ) -> list[SentimentResult]:
        probs = torch.softmax(logits, dim=-1)
        if is_classifier(loaded.config):
            names = [loaded.config.id2label[i] for i in range(probs.shape[1])]
            method, logits_are = "classifier", "the classifier head's outputs"
        else:
            names, method = list(EMBEDDING_LABELS), "embedding"
            logits_are = f"cosine similarity to each label's description × {SIMILARITY_SCALE:g}"
        results, row = [], 0
        for request in requests:
            sentences = []
            for text in request.texts:
                scores = {name: float(p) for name, p in zip(names, probs[row])}
                best = max(scores, key=scores.__getitem__)
                details = (
                    PipelineDetails(
                        loaded.tokenizer.convert_ids_to_tokens(
                            loaded.tokenizer(text, truncation=True, max_length=MAX_LENGTH)["input_ids"]
                        ),
                        logits[row].tolist(),
                        probs[row].tolist(),
                        dict(enumerate(names)),
                        logits_are,
                    )
                    if request.details
                    else None
                )
                sentences.append(SentenceSentiment(text, best, scores[best], scores, details))
                row += 1
            results.append(SentimentResult(sentences, loaded.model_id, method))
        return results
