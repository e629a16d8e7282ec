"""Fill-mask: the model's best guesses for one masked word.

Each model has its own mask token, so the user's placeholder is swapped for it here.
"""
from __future__ import annotations

import torch
from transformers import AutoModelForMaskedLM, PretrainedConfig

from ..errors import InvalidInput, ModelUnavailable
from ..requests.base import failure
from ..requests.fill_mask import MASK_PATTERN, FillCandidate, FillMaskRequest, FillMaskResult
from ..passes import padded_forward
from .base import Emit, Task

MAX_LENGTH = 512


def masked_lm_class(config: PretrainedConfig) -> type:
    return AutoModelForMaskedLM


class FillMaskTask(Task):
    name = "fill_mask"
    request_type = FillMaskRequest

    def preprocess(self, requests: list[FillMaskRequest]) -> list[str]:
        loaded = self.registry.get("fill_mask", masked_lm_class)
        if loaded.tokenizer.mask_token is None:
            raise ModelUnavailable(f"The model '{loaded.model_id}' has no mask token, so it cannot fill masks. Set FILL_MASK_MODEL to a masked language model.")
        # A function replacement keeps backslashes in the mask token literal.
        return [MASK_PATTERN.sub(lambda _: loaded.tokenizer.mask_token, r.text, count=1) for r in requests]

    @torch.inference_mode()
    def forward(self, texts: list[str], emit: Emit) -> list[torch.Tensor | None]:
        loaded = self.registry.get("fill_mask", masked_lm_class)
        tokenizer = loaded.tokenizer
        encoded = [tokenizer(t, truncation=True, max_length=MAX_LENGTH)["input_ids"] for t in texts]

        def mask_probabilities(batch: dict[str, torch.Tensor]) -> list[torch.Tensor | None]:
            logits = loaded.model(**batch).logits
            rows: list[torch.Tensor | None] = []
            for row, ids in enumerate(batch["input_ids"]):
                where = (ids == tokenizer.mask_token_id).nonzero()
                # None: truncation cut the mask off
                rows.append(torch.softmax(logits[row, where[0, 0]].float(), dim=-1).cpu() if len(where) else None)
            return rows

        return padded_forward(loaded, encoded, mask_probabilities)

    def postprocess(self, probs: list[torch.Tensor | None], requests: list[FillMaskRequest]) -> list:
        loaded = self.registry.get("fill_mask", masked_lm_class)
        tokenizer = loaded.tokenizer
        results: list = []
        for request, p in zip(requests, probs):
            if p is None:
                results.append(failure(InvalidInput("The mask is too far into a very long text; put it nearer the start.")))
                continue
            candidates = []
            # Ask for extra so special tokens can be skipped and top_k real words remain.
            scores, ids = p.topk(min(request.top_k + 8, p.numel()))
            for score, token_id in zip(scores.tolist(), ids.tolist()):
                if token_id in tokenizer.all_special_ids:
                    continue
                word = tokenizer.decode([token_id]).strip()
                if not word:
                    continue
                sequence = MASK_PATTERN.sub(lambda _: word, request.text, count=1)
                candidates.append(FillCandidate(word, score, sequence))
                if len(candidates) == request.top_k:
                    break
            results.append(FillMaskResult(request.text, candidates, loaded.model_id))
        return results
