"""Sentence similarity: the texts of every request embedded in one pass, then each request's own matrix."""

from __future__ import annotations

from typing import Any

import torch

from ...specs.similarity import SimilarityRequest, SimilarityResult
from ...specs.zero_shot import EMBEDDING
from ..embeddings import Embedder
from .base import Emit, Task


class SimilarityTask(Task):
    def __init__(self, registry: Any, model: str = "") -> None:
        super().__init__(registry, model)
        self.embedder = Embedder(registry, EMBEDDING.name, model)

    def preprocess(self, loaded: None, requests: list[SimilarityRequest]) -> list[str]:
        return [text for request in requests for text in request.texts]  # flattened; regrouped after

    def forward(self, loaded: None, texts: list[str], emit: Emit) -> torch.Tensor:
        return self.embedder.embed(texts)  # L2-normalised: a dot product is the cosine

    def postprocess(
        self, loaded: None, vectors: torch.Tensor, requests: list[SimilarityRequest]
    ) -> list[SimilarityResult]:
        model = self.embedder.loaded.model_id
        own = vectors.split([len(request.texts) for request in requests])  # each request's own rows
        return [
            SimilarityResult(list(request.texts), (v @ v.T).clamp(-1.0, 1.0).tolist(), model)
            for request, v in zip(requests, own)
        ]
