"""Text generation with causal LMs (gpt2, SmolLM2) and seq2seq models (flan-t5),
picked from the model's config. Continuation, or chat through the tokenizer's
chat template. Requests with the same sampling settings share one `generate`
call; each row keeps its own token limit and streams its own text.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, PretrainedConfig, StoppingCriteria
from transformers.generation.streamers import BaseStreamer

from ..errors import InvalidInput
from ..requests.base import Failure, failure
from ..requests.generation import GenerationRequest, GenerationResult
from .base import Emit, Task

SEQ2SEQ_MAX_INPUT = 512  # T5-style models have no position limit; keep inputs sane


def generation_class(config: PretrainedConfig) -> type:
    return AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM


class RowLimits(StoppingCriteria):
    """Per-row max_new_tokens, so requests with different limits can share a batch."""

    def __init__(self, limits: torch.Tensor, start: int) -> None:
        self.limits = limits
        self.start = start

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        return (input_ids.shape[1] - self.start) >= self.limits.to(input_ids.device)


class RowStreamer(BaseStreamer):
    """Collects each row's tokens as `generate` produces them and emits text deltas."""

    def __init__(self, tokenizer: Any, rows: list[tuple[int, int]], limits: list[int], stop_ids: set[int], emit: Emit) -> None:
        self.tokenizer = tokenizer
        self.rows = rows  # (request index, sequence index) per batch row
        self.limits = limits
        self.stop_ids = stop_ids
        self.emit = emit
        self.tokens: list[list[int]] = [[] for _ in rows]
        self.stopped = [False] * len(rows)
        self.sent = [""] * len(rows)
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # the first call carries the prompt (or decoder start) ids
            self.prompt_seen = True
            return
        for row, token in enumerate(value.view(-1).tolist()):
            if self.stopped[row] or len(self.tokens[row]) >= self.limits[row]:
                continue
            if token in self.stop_ids:
                self.stopped[row] = True
                continue
            self.tokens[row].append(token)
            self._flush(row, final=False)

    def end(self) -> None:
        for row in range(len(self.rows)):
            self._flush(row, final=True)

    def text(self, row: int) -> str:
        return self.tokenizer.decode(self.tokens[row], skip_special_tokens=True)

    def _flush(self, row: int, final: bool) -> None:
        text = self.text(row)
        if not final and text.endswith("\ufffd"):
            return  # half of a multi-byte character: wait for the next token
        if text.startswith(self.sent[row]) and len(text) > len(self.sent[row]):
            self.emit(*self.rows[row], text[len(self.sent[row]):])
            self.sent[row] = text


class GenerationTask(Task):
    name = "generation"
    request_type = GenerationRequest

    def preprocess(self, requests: list[GenerationRequest]) -> dict[str, Any]:
        loaded = self.registry.get("generation", generation_class)
        tokenizer = loaded.tokenizer
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token  # gpt2 has no pad token
        encoder_decoder = loaded.config.is_encoder_decoder
        # Decoder-only models continue from the right edge, so pad and truncate on the left.
        tokenizer.padding_side = tokenizer.truncation_side = "right" if encoder_decoder else "left"
        max_input = SEQ2SEQ_MAX_INPUT if encoder_decoder else self._max_positions(loaded.config) - max(r.max_new_tokens for r in requests)
        rows: list[tuple[int, int]] = []
        ids: list[list[int]] = []
        limits: list[int] = []
        failures: dict[int, Failure] = {}
        for index, request in enumerate(requests):
            try:
                text, special = self._prompt(tokenizer, request)
            except InvalidInput as error:
                failures[index] = failure(error)
                continue
            prompt_ids = tokenizer(text, add_special_tokens=special, truncation=True, max_length=max_input)["input_ids"]
            for sequence in range(request.num_return_sequences):  # expanded here so n may differ per request
                rows.append((index, sequence))
                ids.append(prompt_ids)
                limits.append(request.max_new_tokens)
        return {"loaded": loaded, "rows": rows, "ids": ids, "limits": limits, "failures": failures, "requests": requests}

    @torch.inference_mode()
    def forward(self, inputs: dict[str, Any], emit: Emit) -> tuple[RowStreamer | None, dict[int, Failure]]:
        if not inputs["rows"]:
            return None, inputs["failures"]
        loaded, requests = inputs["loaded"], inputs["requests"]
        tokenizer, model = loaded.tokenizer, loaded.model
        batch = tokenizer.pad({"input_ids": inputs["ids"]}, return_tensors="pt").to(loaded.device)
        limits = torch.tensor(inputs["limits"])
        streamer = RowStreamer(tokenizer, inputs["rows"], inputs["limits"], self._stop_ids(loaded), emit)
        first = requests[0]  # every request in the batch shares these (see batch_key)
        sampling: dict[str, Any] = {"do_sample": first.sampling}
        if first.sampling:
            sampling.update(temperature=first.temperature, top_p=first.top_p)
            if first.seed is not None:
                torch.manual_seed(first.seed)
        else:
            sampling.update(temperature=None, top_p=None, top_k=None)  # silence sampling defaults
        start = 1 if loaded.config.is_encoder_decoder else batch["input_ids"].shape[1]
        model.generate(
            **batch,
            max_new_tokens=int(limits.max()),
            pad_token_id=tokenizer.pad_token_id,
            stopping_criteria=[RowLimits(limits, start)],
            streamer=streamer,
            **sampling,
        )
        return streamer, inputs["failures"]

    def postprocess(self, generated: tuple[RowStreamer | None, dict[int, Failure]], requests: list[GenerationRequest]) -> list[Any]:
        streamer, failures = generated
        outputs: list[Any] = [failures.get(index) for index in range(len(requests))]
        model_id = self.registry.model_id("generation")
        if streamer is not None:
            for row, (index, _) in enumerate(streamer.rows):
                if outputs[index] is None:
                    outputs[index] = GenerationResult(requests[index].prompt, [], [], [], requests[index].mode, model_id)
                result = outputs[index]
                result.texts.append(streamer.text(row))
                result.new_tokens.append(len(streamer.tokens[row]))
                result.finish_reasons.append("stop" if streamer.stopped[row] else "length")
        return outputs

    @staticmethod
    def _prompt(tokenizer: Any, request: GenerationRequest) -> tuple[str, bool]:
        """The text to tokenize and whether the tokenizer should add its special tokens."""
        if request.mode == "complete":
            return request.prompt, True
        if not tokenizer.chat_template:
            raise InvalidInput("This model has no chat template, so it cannot chat. Use mode: complete instead.")
        messages = [{"role": "user", "content": request.prompt}]
        # The template already writes the special tokens the model expects.
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False), False

    @staticmethod
    def _max_positions(config: PretrainedConfig) -> int:
        return getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None) or 2048

    @staticmethod
    def _stop_ids(loaded: Any) -> set[int]:
        stop = loaded.model.generation_config.eos_token_id
        ids: Sequence[int] = stop if isinstance(stop, (list, tuple)) else [stop] if stop is not None else []
        return {*ids, *([loaded.tokenizer.eos_token_id] if loaded.tokenizer.eos_token_id is not None else [])}
