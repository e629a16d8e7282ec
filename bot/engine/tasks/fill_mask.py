"""Fill-mask: the model's best guesses for one masked word.

A masked language model (BERT, RoBERTa) fills the mask in one pass: each model has its own mask
token, so the user's placeholder is swapped for it here. A causal LM (GPT-2, SmolLM2) has no mask
token; it fills by infilling instead (see `causal_fill`).
"""

from __future__ import annotations

import re
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, PretrainedConfig
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES

from ...specs.fill_mask import CAUSAL, MASK_PATTERN, ROLE, FillCandidate, FillMaskRequest, FillMaskResult, fill_in
from ..errors import InvalidInput, ModelUnavailable
from ..passes import MAX_LENGTH, encode, padded_forward
from ..registry import LoadedModel
from ..request import PipelineDetails, failure
from .base import Emit, Task

CANDIDATE_POOL = 40  # word starts kept from each source (the text before the mask; the fill-in-the-blank question)
SCANNED_TOKENS = 2000  # likeliest next tokens looked at to fill a pool with word starts
WORD_TOKENS = 4  # a candidate word is completed greedily up to this many tokens ("Shakespeare" takes 4)
RESCORE_ROWS = 16  # sentences per rescoring pass (each row holds a vocabulary-wide logits row per token)
WORD = re.compile(r"[^\W_]+(?:['-][^\W_]+)*")  # a whole word: letters or digits, with inner ' or -


def fill_mask_class(config: PretrainedConfig) -> type:
    causal = (
        config.model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
        and config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    )
    return AutoModelForCausalLM if causal else AutoModelForMaskedLM


def is_causal(loaded: LoadedModel) -> bool:
    return fill_mask_class(loaded.config) is AutoModelForCausalLM


class FillMaskTask(Task):
    model_class = staticmethod(fill_mask_class)

    def preprocess(self, loaded: LoadedModel, requests: list[FillMaskRequest]) -> list[str]:
        if is_causal(loaded):
            return [r.text for r in requests]
        if loaded.tokenizer.mask_token is None:
            raise ModelUnavailable(
                f"The model '{loaded.model_id}' has no mask token, so it cannot fill masks. "
                f"Set {ROLE.setting} to a masked language model."
            )
        # A function replacement keeps backslashes in the mask token literal.
        return [fill_in(r.text, loaded.tokenizer.mask_token) for r in requests]

    def forward(self, loaded: LoadedModel, texts: list[str], emit: Emit) -> list[Any]:
        if is_causal(loaded):
            return [causal_fill(loaded, text) for text in texts]
        tokenizer = loaded.tokenizer
        encoded = encode(loaded, texts, truncation=True, max_length=MAX_LENGTH)

        def mask_logits(batch: dict[str, torch.Tensor]) -> list[torch.Tensor | None]:
            logits = loaded.model(**batch).logits
            rows: list[torch.Tensor | None] = []
            for row, ids in enumerate(batch["input_ids"]):
                where = (ids == tokenizer.mask_token_id).nonzero()
                # None: truncation cut the mask off
                rows.append(logits[row, where[0, 0]].float().cpu() if len(where) else None)
            return rows

        return padded_forward(loaded, encoded, mask_logits)

    def postprocess(self, loaded: LoadedModel, outputs: list[Any], requests: list[FillMaskRequest]) -> list:
        if is_causal(loaded):
            return [self._causal_result(loaded, r, words[: r.top_k]) for r, words in zip(requests, outputs)]
        tokenizer = loaded.tokenizer
        results: list = []
        for request, logits in zip(requests, outputs):
            if logits is None:
                results.append(
                    failure(InvalidInput("The mask is too far into a very long text; put it nearer the start."))
                )
                continue
            p = torch.softmax(logits, dim=-1)
            candidates, kept = [], []
            # Ask for extra so special tokens can be skipped and top_k real words remain.
            scores, ids = p.topk(min(request.top_k + 8, p.numel()))
            for score, token_id in zip(scores.tolist(), ids.tolist()):
                if token_id in tokenizer.all_special_ids:
                    continue
                word = tokenizer.decode([token_id]).strip()
                if not word:
                    continue
                sequence = fill_in(request.text, word)
                candidates.append(FillCandidate(word, score, sequence))
                kept.append(token_id)
                if len(candidates) == request.top_k:
                    break
            details = None
            if request.details:
                masked = fill_in(request.text, tokenizer.mask_token)
                details = PipelineDetails(
                    tokenizer.convert_ids_to_tokens(
                        tokenizer(masked, truncation=True, max_length=MAX_LENGTH)["input_ids"]
                    ),
                    logits[kept].tolist(),
                    p[kept].tolist(),
                    {i: tokenizer.decode([i]) for i in kept},
                    "the LM head's score of each vocabulary id at the mask (the candidates' ids)",
                )
            results.append(FillMaskResult(request.text, candidates, loaded.model_id, details=details))
        return results

    @staticmethod
    def _causal_result(
        loaded: LoadedModel, request: FillMaskRequest, words: list[tuple[str, float, float]]
    ) -> FillMaskResult:
        candidates = [FillCandidate(word, share, fill_in(request.text, word)) for word, share, _ in words]
        details = None
        if request.details:
            before = request.text[: MASK_PATTERN.search(request.text).start()]
            details = PipelineDetails(
                loaded.tokenizer.tokenize(before),
                [total for *_, total in words],
                [share for _, share, _ in words],
                dict(enumerate(word for word, *_ in words)),
                "log-likelihood of the whole sentence with this word; tokens: the text before the mask",
            )
        return FillMaskResult(request.text, candidates, loaded.model_id, CAUSAL, details)


def causal_fill(loaded: LoadedModel, text: str) -> list[tuple[str, float, float]]:
    """Causal-LM infilling: whole words that may stand at the mask, best first, with their share of
    the candidates' probability and the sentence's log-likelihood with them.

    1. Candidates: the likeliest word starts after the text before the mask, and after the same text
       as the start of the answer to "fill in the blank: <the sentence>", which has seen the text
       after the mask ("The ___ barked" reaches "dog", past 1500th after "The" alone); each completed
       greedily into a whole word in the sentence.
    2. Rescoring: each candidate is put in the sentence and the whole sentence's log-likelihood decides.
    """
    tokenizer, model, device = loaded.tokenizer, loaded.model, loaded.device
    mask = MASK_PATTERN.search(text)
    before, after = text[: mask.start()], text[mask.end() :]
    spaced = before[-1:].isspace()  # the word stands alone, so its first token starts with a space
    start = [_document_start(tokenizer)]
    stem = tokenizer(before.rstrip() if spaced else before, add_special_tokens=False)["input_ids"][-MAX_LENGTH:]
    prefix = start + stem
    # The question shows the whole sentence; its answer, begun with the text before the mask, goes on at the mask.
    starts = _word_starts(model, prefix, tokenizer, spaced, device) + _word_starts(
        model, _cloze_prompt(tokenizer, text, start) + stem, tokenizer, spaced, device
    )
    words = list(dict.fromkeys(starts))
    if not words:
        return []
    rows = [prefix + tokenizer((" " if spaced else "") + word, add_special_tokens=False)["input_ids"] for word in words]
    open_rows = list(range(len(rows)))
    for _ in range(WORD_TOKENS - 1):
        by_length: dict[int, list[int]] = {}
        for i in open_rows:  # rows of one length need no padding
            by_length.setdefault(len(rows[i]), []).append(i)
        open_rows = []
        for group in by_length.values():
            logits = model(torch.tensor([rows[i] for i in group], device=device), logits_to_keep=1).logits[:, -1]
            for i, token in zip(group, logits.argmax(-1).tolist()):
                piece = tokenizer.decode([token])
                if not piece.startswith(" ") and WORD.fullmatch(words[i] + piece):  # the same word goes on
                    words[i] += piece
                    rows[i].append(token)
                    open_rows.append(i)

    unique = list(dict.fromkeys(words))
    sentences = [
        start + tokenizer(before + word + after, add_special_tokens=False)["input_ids"][-MAX_LENGTH:] for word in unique
    ]
    totals = torch.cat(
        [
            _log_likelihoods(model, sentences[i : i + RESCORE_ROWS], device)
            for i in range(0, len(sentences), RESCORE_ROWS)
        ]
    )
    shares = totals.softmax(0)
    return [(unique[i], shares[i].item(), totals[i].item()) for i in shares.argsort(descending=True).tolist()]


def _document_start(tokenizer: Any) -> int:
    """The token a training document starts after: GPT-2 style `<|endoftext|>` where the vocabulary has it
    (an instruct model's BOS, e.g. SmolLM2's `<|im_start|>`, expects a chat role next)."""
    separator = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    if isinstance(separator, int) and separator != tokenizer.unk_token_id:
        return separator
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def _cloze_prompt(tokenizer: Any, text: str, start: list[int]) -> list[int]:
    question = f'Fill in the blank with one word: "{MASK_PATTERN.sub("___", text)}"'
    if tokenizer.chat_template:
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=False
        )
        return tokenizer(prompt, add_special_tokens=False)["input_ids"][-MAX_LENGTH:]
    return start + tokenizer(question + "\nAnswer:", add_special_tokens=False)["input_ids"][-MAX_LENGTH:]


def _word_starts(model: Any, ids: list[int], tokenizer: Any, spaced: bool, device: torch.device) -> list[str]:
    """The likeliest next tokens that start a whole word (with a leading space when `spaced`), as words."""
    logits = model(torch.tensor([ids], device=device), logits_to_keep=1).logits[0, -1].float()
    found: list[str] = []
    top = logits.topk(min(SCANNED_TOKENS, logits.numel())).indices.tolist()
    for piece in tokenizer.batch_decode([[token] for token in top]):  # one call: decoding token by token is slow
        if piece.startswith(" ") == spaced and WORD.fullmatch(piece.strip()) and piece.strip() == piece.lstrip():
            found.append(piece.strip())
            if len(found) == CANDIDATE_POOL:
                break
    return found


def _log_likelihoods(model: Any, sentences: list[list[int]], device: torch.device) -> torch.Tensor:
    """Each token sequence's total log-probability under the model (right-padded, padding masked out)."""
    width = max(len(ids) for ids in sentences)
    ids = torch.zeros((len(sentences), width), dtype=torch.long)
    attention = torch.zeros_like(ids)
    for row, sentence in enumerate(sentences):
        ids[row, : len(sentence)] = torch.tensor(sentence)
        attention[row, : len(sentence)] = 1
    ids, attention = ids.to(device), attention.to(device)
    logits = model(input_ids=ids, attention_mask=attention).logits.float()
    token_logprobs = logits[:, :-1].log_softmax(-1).gather(2, ids[:, 1:, None])[..., 0]
    return (token_logprobs * attention[:, 1:]).sum(1).cpu()
