"""Sentence embeddings (mean pooling, like sentence-transformers) and label scoring.

The fast labeling lane: one forward per text, label embeddings cached per label set.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from transformers import AutoModel, PretrainedConfig

from .passes import padded_forward
from .registry import LoadedModel, ModelRegistry

# Cosine similarities of MiniLM-style models sit in a narrow band; scaling before the
# softmax spreads them into usable probabilities (as in contrastive training).
SIMILARITY_SCALE = 20.0
MAX_LENGTH = 256


def embedding_class(config: PretrainedConfig) -> type:
    return AutoModel


class Embedder:
    """Embeds with the role's model: `model` (one of the role's allowed models) or its default."""

    def __init__(self, registry: ModelRegistry, role: str, model: str = "") -> None:
        self.registry = registry
        self.role = role
        self.model = model
        self._label_cache: dict[tuple[str, ...], torch.Tensor] = {}

    @property
    def loaded(self) -> LoadedModel:
        return self.registry.get(self.role, embedding_class, self.model)

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text as the model reads it (cut to MAX_LENGTH tokens)."""
        tokenizer = self.loaded.tokenizer
        return [tokenizer(t, truncation=True, max_length=MAX_LENGTH)["input_ids"] for t in texts]

    @torch.inference_mode()
    def embed(self, texts: Sequence[str], normalize: bool = True) -> torch.Tensor:
        """Mean-pooled embeddings, one row per text, in input order; L2-normalised unless `normalize` is off."""
        loaded = self.loaded

        def pooled(batch: dict[str, torch.Tensor]) -> torch.Tensor:
            hidden = loaded.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            mean = ((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)).float()
            return (F.normalize(mean, dim=-1) if normalize else mean).cpu()

        return torch.stack(padded_forward(loaded, self.token_ids(texts), pooled))

    def label_embeddings(self, prompts: Sequence[str]) -> torch.Tensor:
        key = tuple(prompts)
        if key not in self._label_cache:
            if len(self._label_cache) > 512:  # label sets are few; bound it anyway
                self._label_cache.clear()
            self._label_cache[key] = self.embed(prompts)
        return self._label_cache[key]

    def score(self, texts: Sequence[str], prompts: Sequence[str], multi_label: bool) -> torch.Tensor:
        """Rows: texts, columns: labels."""
        return self.to_scores(self.embed(texts) @ self.label_embeddings(prompts).T, multi_label)

    @staticmethod
    def to_scores(similarity: torch.Tensor, multi_label: bool) -> torch.Tensor:
        """Softmax over labels, or each label on its own (cosine clipped to [0, 1]) when multi_label."""
        if multi_label:
            return similarity.clamp(min=0.0)
        return torch.softmax(similarity * SIMILARITY_SCALE, dim=-1)
