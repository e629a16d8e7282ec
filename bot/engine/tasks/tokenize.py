"""Tokenize: how a model's tokenizer splits a text (tokens, ids, special tokens). Needs no model weights."""

from __future__ import annotations

from ...specs.tokenize import TokenizeRequest, TokenizeResult
from .base import Emit, Task


class TokenizeTask(Task):
    def preprocess(self, loaded: None, requests: list[TokenizeRequest]) -> list[TokenizeRequest]:
        return requests

    def forward(self, loaded: None, requests: list[TokenizeRequest], emit: Emit) -> list[TokenizeResult]:
        role = requests[0].model_role()  # part of the batch key
        tokenizer = self.registry.tokenizer(role, self.model)
        results = []
        for r in requests:
            encoding = tokenizer(r.text)
            ids = encoding["input_ids"]
            mask = tokenizer.get_special_tokens_mask(ids, already_has_special_tokens=True)
            results.append(
                TokenizeResult(
                    text=r.text,
                    tokens=tokenizer.convert_ids_to_tokens(ids),
                    ids=ids,
                    special=[bool(m) for m in mask],
                    decoded=tokenizer.decode(ids),
                    model=self.model or self.registry.model_id(role),
                )
            )
        return results

    def postprocess(
        self, loaded: None, results: list[TokenizeResult], requests: list[TokenizeRequest]
    ) -> list[TokenizeResult]:
        return results
