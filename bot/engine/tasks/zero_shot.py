"""Zero-shot labeling, by NLI entailment (like transformers' zero-shot-classification)
or by embedding similarity (one forward per text; the fast lane for moderators).

NLI builds one (text, hypothesis) pair per label; pairs from every request in the
batch share the forward passes and are regrouped per request before the softmax.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import AutoModelForSequenceClassification, PretrainedConfig

from ...specs.zero_shot import EMBEDDING, NLI, ZeroShotRequest, ZeroShotResult
from ..embeddings import MAX_LENGTH as EMBEDDING_MAX_LENGTH
from ..embeddings import SIMILARITY_SCALE, Embedder
from ..errors import ModelUnavailable
from ..passes import MAX_LENGTH, encode, padded_forward
from ..registry import LoadedModel
from ..request import PipelineDetails
from .base import Emit, Task


def nli_class(config: PretrainedConfig) -> type:
    return AutoModelForSequenceClassification


def label_id(config: PretrainedConfig, prefix: str) -> int:
    for name, index in config.label2id.items():
        if name.lower().startswith(prefix):
            return int(index)
    raise ModelUnavailable(
        f"The zero-shot model has no '{prefix}…' label, so it is not an NLI model. "
        f"Set {NLI.setting} to an NLI model (e.g. valhalla/distilbart-mnli-12-1) or use method: embedding."
    )


class ZeroShotTask(Task):
    """NLI through the base's preprocess -> forward -> postprocess; the embedding method by the Embedder."""

    model_class = staticmethod(nli_class)

    def __init__(self, registry: Any, model: str = "") -> None:
        super().__init__(registry, model)
        self.embedder = Embedder(registry, EMBEDDING.name, model)

    def preprocess(self, loaded: LoadedModel, requests: list[ZeroShotRequest]) -> list[tuple[str, str]]:
        return [(r.text, h) for r in requests for h in r.hypotheses()]

    def forward(self, loaded: LoadedModel, pairs: list[tuple[str, str]], emit: Emit) -> torch.Tensor:
        texts, hypotheses = zip(*pairs)
        encoded = encode(loaded, texts, hypotheses, truncation="only_first", max_length=MAX_LENGTH)
        entail, contra = label_id(loaded.config, "entail"), label_id(loaded.config, "contradict")
        # Keep only the two logits the scores need: [contradiction, entailment].
        rows = padded_forward(
            loaded, encoded, lambda batch: loaded.model(**batch).logits.float().cpu()[:, [contra, entail]]
        )
        return torch.stack(rows)

    def run(self, requests: list[ZeroShotRequest], emit: Emit) -> list[ZeroShotResult]:
        if requests[0].method == "embedding":  # one method per batch (it is part of the batch key)
            return self._run_embedding(requests)
        return super().run(requests, emit)

    def postprocess(
        self, loaded: LoadedModel, logits: torch.Tensor, requests: list[ZeroShotRequest]
    ) -> list[ZeroShotResult]:
        results = []
        for r, own in zip(requests, logits.split([len(r.labels) for r in requests])):  # each request's own rows
            if r.multi_label:  # each label alone: entailment vs contradiction
                scores = torch.softmax(own, dim=-1)[:, 1]
            else:  # labels compete: softmax of entailment across this request's labels only
                scores = torch.softmax(own[:, 1], dim=0)
            details = self._nli_details(loaded, r, own, scores) if r.details else None
            results.append(self._ranked(r, scores.tolist(), "nli", loaded.model_id, details))
        return results

    @staticmethod
    def _nli_details(loaded: Any, r: ZeroShotRequest, own: torch.Tensor, scores: torch.Tensor) -> PipelineDetails:
        """The entailment logit of each label's hypothesis; tokens of the best label's (text, hypothesis) pair."""
        best = r.hypotheses()[int(scores.argmax())]
        ids = loaded.tokenizer(r.text, best, truncation="only_first", max_length=MAX_LENGTH)["input_ids"]
        classes = ", ".join(f"{i} {name}" for i, name in sorted(loaded.config.id2label.items()))
        logits_are = f"entailment logit of each hypothesis ‘{r.hypothesis_template}’ (model classes: {classes})"
        if r.multi_label:  # the contradiction logits too: each probability is the softmax of the pair
            contradiction = " ".join(f"{x:+.3f}" for x in own[:, 0].tolist())
            logits_are += (
                f"; multi_label: each probability is that label's entailment-vs-contradiction softmax "
                f"(contradiction logits: {contradiction}), not a softmax across labels"
            )
        return PipelineDetails(
            loaded.tokenizer.convert_ids_to_tokens(ids),
            own[:, 1].tolist(),
            scores.tolist(),
            dict(enumerate(r.labels)),
            logits_are,
        )

    def _run_embedding(self, requests: list[ZeroShotRequest]) -> list[ZeroShotResult]:
        model = self.embedder.loaded.model_id
        results = []
        # Requests with the same label set share one matrix product; texts embed in one pass.
        text_vectors = self.embedder.embed([r.text for r in requests])
        for r, vector in zip(requests, text_vectors):
            sims = vector @ self.embedder.label_embeddings(r.hypotheses()).T
            scores = self.embedder.to_scores(sims, r.multi_label)
            details = self._embedding_details(r, sims, scores) if r.details else None
            results.append(self._ranked(r, scores.tolist(), "embedding", model, details))
        return results

    def _embedding_details(self, r: ZeroShotRequest, sims: torch.Tensor, scores: torch.Tensor) -> PipelineDetails:
        tokenizer = self.embedder.loaded.tokenizer
        ids = tokenizer(r.text, truncation=True, max_length=EMBEDDING_MAX_LENGTH)["input_ids"]
        logits_are = f"cosine similarity to each label's hypothesis ‘{r.hypothesis_template}’ × {SIMILARITY_SCALE:g}"
        if r.multi_label:
            logits_are += "; multi_label: each probability is the cosine similarity clipped to [0, 1], not a softmax"
        return PipelineDetails(
            tokenizer.convert_ids_to_tokens(ids),
            (sims * SIMILARITY_SCALE).tolist(),
            scores.tolist(),
            dict(enumerate(r.labels)),
            logits_are,
        )

    @staticmethod
    def _ranked(
        r: ZeroShotRequest, scores: list[float], method: str, model: str, details: PipelineDetails | None
    ) -> ZeroShotResult:
        order = sorted(range(len(scores)), key=lambda i: -scores[i])
        return ZeroShotResult(
            r.text, [r.labels[i] for i in order], [scores[i] for i in order], r.multi_label, method, model, details
        )
