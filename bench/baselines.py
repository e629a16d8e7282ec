"""The two in-process references the engine is compared with.

- naive: one transformers `pipeline()` call per request (the pipeline object is built
  once; each request is one call with one input), for generation one `model.generate`
  per request. Served one at a time from a single thread.
- ceiling: the same request set pre-tokenized (tokenization not timed), sorted by
  length, run as batched forward passes in this process at the engine's dtype: no
  queue, no IPC, least padding. Its throughput is the upper bound for the engine.
- static batching (generation, in load.py): whatever waits runs as one `generate`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from .models import bench_device

# Rows per forward pass; the ceiling is the best of these. 32 is the engine's default
# max_batch_size (and with max_batch_tokens 8192 the engine runs such a batch as ONE
# padded forward); on a 2-core CPU smaller length-sorted chunks can be faster.
CEILING_ROWS = (8, 32)


@dataclass
class Ceiling:
    seconds: float  # timed forward passes, best row count
    tokenize_seconds: float  # not part of `seconds`; shown for the engine comparison
    rows: int  # sequences run (zero-shot: request x label pairs)
    padded_tokens: int  # tokens fed including padding
    real_tokens: int
    rows_per_forward: int = 0  # the best row count
    seconds_by_rows: dict[int, float] | None = None  # every row count tried


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so a timer read after it counts it (a GPU runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _chunks(lengths: Sequence[int], rows: int) -> list[list[int]]:
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i : i + rows] for i in range(0, len(order), rows)]


Encoded = list[list[int]] | list[dict[str, list[int]]]  # token ids, or features (a pair's token_type_ids too)


def _features(encoded: Encoded) -> list[dict[str, list[int]]]:
    return [row if isinstance(row, dict) else {"input_ids": row} for row in encoded]


def _run_chunks(
    model: Any,
    tokenizer: Any,
    encoded: Encoded,
    after: Callable[[Any, dict, list[int]], None],  # (the model's output, the batch, its rows' indices)
    rows: int,
) -> tuple[float, int]:
    features = _features(encoded)
    chunks = _chunks([len(row["input_ids"]) for row in features], rows)
    batches = [tokenizer.pad([features[i] for i in chunk], return_tensors="pt").to(model.device) for chunk in chunks]
    padded = sum(b["input_ids"].numel() for b in batches)
    with torch.inference_mode():
        model(**batches[len(batches) // 2])  # warm-up (one-off allocator / oneDNN setup)
        synchronize(model.device)
        started = time.perf_counter()
        for chunk, batch in zip(chunks, batches):
            after(model(**batch), batch, chunk)
        synchronize(model.device)
        return time.perf_counter() - started, padded


def _best(model: Any, tokenizer: Any, encoded: Encoded, after: Callable, tokenize: float) -> Ceiling:
    by_rows, padded_by_rows = {}, {}
    for rows in CEILING_ROWS:
        by_rows[rows], padded_by_rows[rows] = _run_chunks(model, tokenizer, encoded, after, rows)
    best = min(by_rows, key=by_rows.__getitem__)
    return Ceiling(
        by_rows[best],
        tokenize,
        len(encoded),
        padded_by_rows[best],
        sum(len(row["input_ids"]) for row in _features(encoded)),
        rows_per_forward=best,
        seconds_by_rows=by_rows,
    )


# --- classification-style tasks ----------------------------------------------------------


def naive_sentiment(path: Path) -> tuple[Callable[[str], Any], Any]:
    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(path), device=bench_device())
    return (lambda text: pipe(text)), pipe


def naive_zero_shot(path: Path, labels: Sequence[str], template: str) -> tuple[Callable[[str], Any], Any]:
    from transformers import pipeline

    pipe = pipeline("zero-shot-classification", model=str(path), device=bench_device())
    return (lambda text: pipe(text, candidate_labels=list(labels), hypothesis_template=template)), pipe


def naive_fill_mask(path: Path) -> tuple[Callable[[str], Any], Any]:
    from transformers import pipeline

    pipe = pipeline("fill-mask", model=str(path), device=bench_device())
    return (lambda text: pipe(text, top_k=5)), pipe


def ceiling_sentiment(pipe: Any, texts: Sequence[str]) -> Ceiling:
    tok, model = pipe.tokenizer, pipe.model.eval()
    t = time.perf_counter()
    encoded = [tok(text, truncation=True, max_length=512)["input_ids"] for text in texts]
    tokenize = time.perf_counter() - t

    def after(output: Any, batch: dict, chunk: list[int]) -> None:
        torch.softmax(output.logits.float(), dim=-1)

    return _best(model, tok, encoded, after, tokenize)


def ceiling_zero_shot(pipe: Any, texts: Sequence[str], labels: Sequence[str], template: str) -> Ceiling:
    tok, model = pipe.tokenizer, pipe.model.eval()
    pairs = [(text, template.format(label)) for text in texts for label in labels]
    t = time.perf_counter()
    encoded = [tok(a, b, truncation="only_first", max_length=512)["input_ids"] for a, b in pairs]
    tokenize = time.perf_counter() - t
    label2id = {k.lower(): v for k, v in model.config.label2id.items()}
    keep = [label2id["contradiction"], label2id["entailment"]]
    out = torch.empty(len(pairs), 2, device=model.device)

    def after(output: Any, batch: dict, chunk: list[int]) -> None:
        out[chunk] = output.logits.float()[:, keep]

    ceiling = _best(model, tok, encoded, after, tokenize)
    t = time.perf_counter()
    torch.softmax(out[:, 1].view(len(texts), len(labels)), dim=-1)  # per-request scores
    ceiling.seconds += time.perf_counter() - t
    return ceiling


def ceiling_fill_mask(pipe: Any, texts: Sequence[str]) -> Ceiling:
    tok, model = pipe.tokenizer, pipe.model.eval()
    t = time.perf_counter()
    encoded = [tok(text, truncation=True, max_length=512)["input_ids"] for text in texts]
    tokenize = time.perf_counter() - t

    def after(output: Any, batch: dict, chunk: list[int]) -> None:
        rows, cols = (batch["input_ids"] == tok.mask_token_id).nonzero(as_tuple=True)
        torch.softmax(output.logits[rows, cols].float(), dim=-1).topk(5)

    return _best(model, tok, encoded, after, tokenize)


def naive_ner(path: Path) -> tuple[Callable[[str], Any], Any]:
    from transformers import pipeline

    pipe = pipeline("token-classification", model=str(path), device=bench_device(), aggregation_strategy="simple")
    return (lambda text: pipe(text)), pipe


def ceiling_ner(pipe: Any, texts: Sequence[str]) -> Ceiling:
    return ceiling_sentiment(pipe, texts)  # one pass per text, a softmax per token: the same work, row-wise


def naive_question_answering(path: Path) -> tuple[Callable[[tuple[str, str]], Any], Any]:
    """transformers 5 has no question-answering pipeline: one request at a time through the worker's own
    windows and span selection, one unbatched forward pass each."""
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from bot.engine.tasks.question_answering import answer, windows
    from bot.specs.question_answering import QuestionAnsweringRequest

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForQuestionAnswering.from_pretrained(path).to(bench_device()).eval()
    names = [name for name in tokenizer.model_input_names if name != "attention_mask"]

    def call(pair: tuple[str, str]) -> Any:
        request = QuestionAnsweringRequest(*pair)
        read = windows(tokenizer, request)
        features = read.features(names)
        with torch.inference_mode():
            out = model(**tokenizer.pad(features, return_tensors="pt").to(model.device))
        logits = torch.stack([out.start_logits, out.end_logits], dim=-1).float()
        return answer(request, read, [row[: len(f["input_ids"])] for row, f in zip(logits, features)], "naive")

    return call, SimpleNamespace(model=model, tokenizer=tokenizer)


def ceiling_question_answering(pipe: Any, pairs: Sequence[tuple[str, str]]) -> Ceiling:
    tok, model = pipe.tokenizer, pipe.model.eval()
    names = [name for name in tok.model_input_names if name != "attention_mask"]
    t = time.perf_counter()
    encoded = [tok(q, c, truncation="only_second", max_length=384) for q, c in pairs]
    features = [{name: e[name] for name in names} for e in encoded]
    tokenize = time.perf_counter() - t

    def after(output: Any, batch: dict, chunk: list[int]) -> None:
        torch.softmax(output.start_logits.float(), dim=-1), torch.softmax(output.end_logits.float(), dim=-1)

    return _best(model, tok, features, after, tokenize)


def fill_mask_head_at_mask_only(pipe: Any, texts: Sequence[str], rows: int = 8) -> float:
    """Seconds for the same request set when the LM head runs only at the mask position
    (the encoder, then the vocab projection of one row per text) instead of at every token,
    as the naive pipeline, the engine and the ceiling all do. Informational: what the
    task could save; not used for any ratio."""
    tok, model = pipe.tokenizer, pipe.model.eval()
    base = getattr(model, model.base_model_prefix)
    encoded = [tok(text, truncation=True, max_length=512)["input_ids"] for text in texts]
    chunks = _chunks([len(ids) for ids in encoded], rows)
    batches = [
        tok.pad({"input_ids": [encoded[i] for i in chunk]}, return_tensors="pt").to(model.device) for chunk in chunks
    ]
    with torch.inference_mode():

        def run(batch: dict) -> None:
            hidden = base(**batch).last_hidden_state
            r, c = (batch["input_ids"] == tok.mask_token_id).nonzero(as_tuple=True)
            torch.softmax(model.lm_head(hidden[r, c]).float(), dim=-1).topk(5)

        run(batches[len(batches) // 2])
        synchronize(model.device)
        started = time.perf_counter()
        for batch in batches:
            run(batch)
        synchronize(model.device)
        return time.perf_counter() - started


# --- generation ------------------------------------------------------------------------


@dataclass
class Generator:
    """SmolLM2 in this process, greedy, the engine's stop tokens."""

    model: Any
    tokenizer: Any
    stop_ids: set[int]
    max_new_tokens: int

    @classmethod
    def load(cls, folder: Path, max_new_tokens: int) -> Generator:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(folder))
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).to(bench_device()).eval()
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        tok.padding_side = "left"  # decoder-only: continue from the right edge (as the engine does)
        stop = model.generation_config.eos_token_id
        ids = stop if isinstance(stop, (list, tuple)) else [stop] if stop is not None else []
        stops = {*ids, *([tok.eos_token_id] if tok.eos_token_id is not None else [])}
        return cls(model, tok, stops, max_new_tokens)

    def _count(self, new_ids: torch.Tensor) -> list[int]:
        counts = []
        for row in new_ids.tolist():
            n = 0
            for token in row:
                if token in self.stop_ids:
                    break
                n += 1
            counts.append(n)
        return counts

    @torch.inference_mode()
    def generate(self, prompts: Sequence[str], max_new_tokens: int | None = None) -> list[int]:
        """New tokens per prompt (stop token excluded, as the engine counts them)."""
        batch = self.tokenizer(list(prompts), return_tensors="pt", padding=len(prompts) > 1).to(self.model.device)
        out = self.model.generate(
            **batch,
            max_new_tokens=max_new_tokens or self.max_new_tokens,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        return self._count(out[:, batch["input_ids"].shape[1] :])

    def naive(self, prompt: str) -> int:
        return self.generate([prompt])[0]
