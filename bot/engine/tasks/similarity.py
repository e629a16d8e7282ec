"""Sentence similarity: the texts of every request embedded in one pass, then each request's own matrix;
and a message's nearest stored vectors (the moderators' "similar tagged messages")."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ...specs.similarity import EmbeddingDetails, NearestRequest, NearestResult, SimilarityRequest, SimilarityResult
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
        return self.embedder.embed(texts, normalize=False)  # the norms are details; normalised after

    def postprocess(
        self, loaded: None, pooled: torch.Tensor, requests: list[SimilarityRequest]
    ) -> list[SimilarityResult]:
        model = self.embedder.loaded.model_id
        results = []
        for request, rows in zip(requests, pooled.split([len(request.texts) for request in requests])):
            v = F.normalize(rows, dim=-1)  # a dot product is the cosine
            details = None
            if request.details:
                tokens = self.embedder.token_ids(request.texts)
                details = [
                    EmbeddingDetails(len(ids), float(norm), rows.shape[-1])
                    for ids, norm in zip(tokens, rows.norm(dim=-1))
                ]
            results.append(SimilarityResult(list(request.texts), (v @ v.T).clamp(-1.0, 1.0).tolist(), model, details))
        return results


class NearestTask(Task):
    def __init__(self, registry: Any, model: str = "") -> None:
        super().__init__(registry, model)
        self.embedder = Embedder(registry, EMBEDDING.name, model)

    def preprocess(self, loaded: None, requests: list[NearestRequest]) -> list[str]:
        return [request.text for request in requests]

    def forward(self, loaded: None, texts: list[str], emit: Emit) -> torch.Tensor:
        return self.embedder.embed(texts)

    def postprocess(self, loaded: None, vectors: torch.Tensor, requests: list[NearestRequest]) -> list[NearestResult]:
        model = self.embedder.loaded.model_id
        results = []
        for request, vector in zip(requests, vectors):
            # Only vectors this model made are comparable (a stored one may come from an earlier EMBEDDING_MODEL).
            mine = [i for i, (data, made_by) in enumerate(request.vectors) if made_by == model]
            found: list[tuple[int, float]] = []
            if mine:
                stored = torch.stack(
                    [torch.frombuffer(bytearray(request.vectors[i][0]), dtype=torch.float32) for i in mine]
                )
                cosine = F.normalize(stored, dim=-1) @ vector
                top = cosine.topk(min(request.top_k, len(mine)))
                found = [(mine[i], float(c)) for c, i in zip(top.values.tolist(), top.indices.tolist())]
            results.append(NearestResult(found, len(mine), model))
        return results
