"""Zero-shot labeling, by NLI entailment (like transformers' zero-shot-classification)
or by embedding similarity (one forward per text; the fast lane for moderators).

NLI builds one (text, hypothesis) pair per label; pairs from every request in the
batch share the forward passes and are regrouped per request before the softmax.
"""
from __future__ import annotations

from typing import Any

import torch
from transformers import AutoModelForSequenceClassification, PretrainedConfig

from ..embeddings import Embedder
from ..errors import ModelUnavailable
from ..requests.zero_shot import ZeroShotRequest, ZeroShotResult
from ..passes import padded_forward
from .base import Emit, Task

MAX_LENGTH = 512


def nli_class(config: PretrainedConfig) -> type:
    return AutoModelForSequenceClassification


def label_id(config: PretrainedConfig, prefix: str) -> int:
    for name, index in config.label2id.items():
        if name.lower().startswith(prefix):
            return int(index)
    raise ModelUnavailable(
        f"The zero-shot model has no '{prefix}…' label, so it is not an NLI model. "
        "Set ZERO_SHOT_MODEL to an NLI model (e.g. valhalla/distilbart-mnli-12-1) or use method: embedding."
    )


class ZeroShotTask(Task):
    name = "zero_shot"
    request_type = ZeroShotRequest

    def __init__(self, registry: Any, model: str = "") -> None:
        super().__init__(registry, model)
        self.embedder = Embedder(registry, "embedding", model)

    def preprocess(self, requests: list[ZeroShotRequest]) -> list[tuple[str, str]]:
        # One batch holds one method (it is part of the batch key).
        if requests[0].method == "embedding":
            return []
        return [(r.text, h) for r in requests for h in r.hypotheses()]

    @torch.inference_mode()
    def forward(self, pairs: list[tuple[str, str]], emit: Emit) -> torch.Tensor:
        loaded = self.registry.get("zero_shot", nli_class, self.model)
        tokenizer = loaded.tokenizer
        encoded = [tokenizer(t, h, truncation="only_first", max_length=MAX_LENGTH)["input_ids"] for t, h in pairs]
        entail, contra = label_id(loaded.config, "entail"), label_id(loaded.config, "contradict")
        # Keep only the two logits the scores need: [contradiction, entailment].
        rows = padded_forward(loaded, encoded, lambda batch: loaded.model(**batch).logits.float().cpu()[:, [contra, entail]])
        return torch.stack(rows)

    def run(self, requests: list[ZeroShotRequest], emit: Emit) -> list[ZeroShotResult]:
        if requests[0].method == "embedding":
            return self._run_embedding(requests)
        return super().run(requests, emit)

    def postprocess(self, logits: torch.Tensor, requests: list[ZeroShotRequest]) -> list[ZeroShotResult]:
        model = self.registry.get("zero_shot", nli_class, self.model).model_id
        results, row = [], 0
        for r in requests:
            own = logits[row:row + len(r.labels)]
            row += len(r.labels)
            if r.multi_label:  # each label alone: entailment vs contradiction
                scores = torch.softmax(own, dim=-1)[:, 1]
            else:  # labels compete: softmax of entailment across this request's labels only
                scores = torch.softmax(own[:, 1], dim=0)
            results.append(self._ranked(r, scores.tolist(), "nli", model))
        return results

    def _run_embedding(self, requests: list[ZeroShotRequest]) -> list[ZeroShotResult]:
        model = self.embedder.loaded.model_id
        results = []
        # Requests with the same label set share one matrix product; texts embed in one pass.
        text_vectors = self.embedder.embed([r.text for r in requests])
        for r, vector in zip(requests, text_vectors):
            sims = vector @ self.embedder.label_embeddings(r.hypotheses()).T
            scores = self.embedder.to_scores(sims, r.multi_label)
            results.append(self._ranked(r, scores.tolist(), "embedding", model))
        return results

    @staticmethod
    def _ranked(r: ZeroShotRequest, scores: list[float], method: str, model: str) -> ZeroShotResult:
        order = sorted(range(len(scores)), key=lambda i: -scores[i])
        return ZeroShotResult(r.text, [r.labels[i] for i in order], [scores[i] for i in order], r.multi_label, method, model)
