"""Text generation with causal LMs (gpt2, SmolLM2) and seq2seq models (flan-t5),
picked from the model's config. Continuation, or chat through the tokenizer's chat template.

Each request decodes alongside the others and finishes on its own; a request that
arrives while others stream starts at the next step. Two ways to run it:

- continuous: transformers' continuous batching (`init_continuous_batching`). A manager
  holds its running rows in a paged KV cache; a new row joins at the next step, a
  finished or cancelled one leaves at once, each row with its own max_new_tokens. A
  manager samples with one setting (its per-request processors cost 5-10x per token on
  a CPU in our measurements), so there is one manager per model and setting in use —
  greedy, and each sampling setting in use (the member's values over the model's generation_config)
  — at most MAX_MANAGERS at once.
- static: one `generate` call per request, in a thread of its own, for what continuous
  batching cannot do: seq2seq models, seeded sampling (a manager has one random
  generator), and a sampling setting when MAX_MANAGERS others are busy. Rows stop at
  their own limit or when cancelled (a stopping criterion).

Both only ever run a forward pass while holding the device turn (see turns.py), so
classification passes and decode steps alternate. `auto` picks continuous where it can.

Other text-to-text tasks (translation, summarization) subclass GenerationTask: `decoding` turns their
request into the generation request that decodes it, and `result` their finished job into their result.
"""

from __future__ import annotations

import logging
import random
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    PretrainedConfig,
    StoppingCriteria,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)
from transformers.generation import ContinuousBatchingConfig
from transformers.generation.streamers import BaseStreamer

from ...specs.generation import MAX_NEW_TOKENS, GenerationRequest, GenerationResult, Sampling
from ..errors import FAILED, EngineError, InvalidInput, ResourceExhausted
from ..registry import LoadedModel, ModelRegistry
from ..request import failure
from .base import JobSink, StreamingTask

log = logging.getLogger(__name__)

SEQ2SEQ_MAX_INPUT = 512  # T5-style models have no position limit; keep inputs sane
KV_PAGE_TOKENS = 64  # continuous batching's KV cache page; small pages waste little on short chats
KV_TOKENS_PER_ROW = 512  # cache sized for this many tokens a row on average (a long row takes more pages)
MAX_MANAGERS = 2  # continuous batching managers (sampling settings) alive at once; each holds a KV cache
PREFILL_TOKENS = 256  # prompt tokens per continuous step: a long prompt is prefilled over several steps


def generation_class(config: PretrainedConfig) -> type:
    return AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM


def model_sampling(generation: GenerationConfig) -> Sampling:
    """A model's own sampling, from its generation_config: what generate() and the pipeline use when the
    caller gives nothing (a field the model leaves unset takes generate()'s global default)."""
    defaults = GenerationConfig._get_default_generation_params()

    def value(name: str) -> Any:
        given = getattr(generation, name, None)
        return defaults[name] if given is None else given

    return Sampling(
        value("temperature") if value("do_sample") else 0.0,
        value("top_p"),
        value("top_k"),
        value("repetition_penalty"),
    )


def chat_prompt_ids(tokenizer: Any, request: GenerationRequest, max_input: int) -> tuple[list[int], int]:
    """The conversation through the tokenizer's chat template, within `max_input` tokens.

    The oldest turns go first (a whole exchange at a time, so the kept history still starts
    with the user, as strict templates require); the system prompt and the newest message stay.
    Returns the ids and how many earlier turns were left out.
    """
    if not tokenizer.chat_template:
        raise InvalidInput("This model has no chat template, so it cannot chat. Use mode: complete instead.")
    system = [{"role": "system", "content": request.system}] if request.system else []
    # Continue: the unfinished answer is the last message, left open for the model to go on.
    unfinished = [{"role": "assistant", "content": request.continue_answer}] if request.continue_answer else []
    history = list(request.history)
    while True:
        messages = [
            *system,
            *({"role": speaker, "content": text} for speaker, text in history),
            {"role": "user", "content": request.prompt},
            *unfinished,
        ]
        # The template already writes the special tokens the model expects.
        try:
            text = tokenizer.apply_chat_template(
                messages, add_generation_prompt=not unfinished, continue_final_message=bool(unfinished), tokenize=False
            )
        except ValueError as error:  # a template that rewrites the last answer cannot leave it open
            raise InvalidInput(
                "This model's chat template can't go on from an unfinished answer. Use Regenerate instead."
            ) from error
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) <= max_input or not history:
            break
        history.pop(0)
        while history and history[0][0] != "user":
            history.pop(0)
    # Even the newest message alone is too long: keep its end, as for a long completion prompt.
    return ids[-max_input:], len(request.history) - len(history)


def instructed(loaded: LoadedModel, instruction: str, task: str) -> str:
    """A text-to-text task's instruction for a chat model (its chat template says it): the prompt of a chat
    request. `task` names what a model for the task is ("translation"), for the refusal of any other model."""
    if not loaded.tokenizer.chat_template:
        raise InvalidInput(
            f"{loaded.model_id} is neither a {task} model nor a chat model, so it can't do this. Pick another model."
        )
    return instruction


class TextStream:
    """One row's tokens, decoded incrementally into text deltas."""

    def __init__(self, tokenizer: Any, stop_ids: set[int]) -> None:
        self.tokenizer = tokenizer
        self.stop_ids = stop_ids
        self.tokens: list[int] = []
        self.sent = ""
        self.stopped = False  # an end-of-text token came

    def extend(self, tokens: Sequence[int], limit: int) -> str:
        """Take new tokens (up to `limit` in all, none after a stop token); returns the new text."""
        for token in tokens:
            if self.stopped or len(self.tokens) >= limit:
                break
            if token in self.stop_ids:
                self.stopped = True
                break
            self.tokens.append(token)
        return self.delta(final=False)

    def delta(self, final: bool) -> str:
        text = self.text()
        if not final and text.endswith("\ufffd"):
            return ""  # half of a multi-byte character: wait for the next token
        if text.startswith(self.sent) and len(text) > len(self.sent):
            new, self.sent = text[len(self.sent) :], text
            return new
        return ""

    def text(self) -> str:
        return self.tokenizer.decode(self.tokens, skip_special_tokens=True)


@dataclass
class RunningJob:
    """A request being decoded: one TextStream per returned sequence, sent to the job's own sink."""

    job_id: int
    request: GenerationRequest  # how it decodes
    asked: Any  # the member's request (the same one, for /generate and /chat)
    sink: JobSink
    streams: list[TextStream]
    model: str
    result: Callable[[RunningJob], Any]  # its task's result, once every sequence is done
    sampling: Sampling  # the member's values over the model's own
    dropped_turns: int = 0  # earlier conversation turns left out to fit the context
    finished: set[int] = field(default_factory=set)  # sequence indices that are done
    cancelled: threading.Event = field(default_factory=threading.Event)

    def add(self, sequence: int, tokens: Sequence[int]) -> None:
        delta = self.streams[sequence].extend(tokens, self.request.max_new_tokens)
        if delta:
            self.sink.chunk(self.job_id, sequence, delta)

    def finish(self, sequence: int) -> bool:
        """Mark a sequence done; when all are, send the result. True when the job is complete."""
        delta = self.streams[sequence].delta(final=True)
        if delta:
            self.sink.chunk(self.job_id, sequence, delta)
        self.finished.add(sequence)
        if len(self.finished) < len(self.streams):
            return False
        self.sink.done(self.job_id, self.result(self))
        return True

    def texts(self) -> list[str]:
        return [s.text() for s in self.streams]

    def finish_reasons(self) -> list[str]:
        return ["stop" if s.stopped else "length" for s in self.streams]


class RowStops(StoppingCriteria):
    """Static decoding: each row stops at its own max_new_tokens, and every row when the job is cancelled."""

    def __init__(self, limit: int, start: int, cancelled: threading.Event) -> None:
        self.limit = limit
        self.start = start
        self.cancelled = cancelled

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        done = self.cancelled.is_set() or input_ids.shape[1] - self.start >= self.limit
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


class SeededSampler(LogitsProcessor):
    """Samples with a private random generator (the Gumbel-max trick): generate() then runs greedy,
    argmax(logits / T + Gumbel noise) is a draw from softmax(logits / T), and a seed gives the same
    text whatever else runs in the process at the same time."""

    def __init__(self, sampling: Sampling, seed: int) -> None:
        self.warpers = LogitsProcessorList(
            [
                TemperatureLogitsWarper(sampling.temperature),
                *([TopKLogitsWarper(sampling.top_k)] if sampling.top_k else []),
                TopPLogitsWarper(sampling.top_p),
            ]
        )
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = self.warpers(input_ids, scores.float())
        uniform = torch.rand(scores.shape, generator=self.generator).clamp_(1e-20, 1.0).to(scores.device)
        return scores - torch.log(-torch.log(uniform))


class RowStreamer(BaseStreamer):
    """Static decoding: hands each step's tokens to the job's streams."""

    def __init__(self, job: RunningJob) -> None:
        self.job = job
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # the first call carries the prompt (or decoder start) ids
            self.prompt_seen = True
            return
        for sequence, token in enumerate(value.view(-1).tolist()):
            self.job.add(sequence, [token])

    def end(self) -> None:
        pass


@dataclass
class Decoding:
    """What every text-to-text task of a worker shares, so that a model's continuous batching manager
    (and its KV cache) serves /generate, /translate and /summarize alike: whichever task's thread
    collects a row finishes its job (the job knows its own result and sink)."""

    jobs: dict[int, RunningJob] = field(default_factory=dict)
    managers: dict[tuple[Any, ...], Any] = field(default_factory=dict)  # (model id, sampling) -> its manager
    rows: dict[str, tuple[int, int, Any]] = field(default_factory=dict)  # manager row id -> (job, sequence, manager)
    lock: threading.Lock = field(default_factory=threading.Lock)  # the worker and the decoding threads use them


_DECODING: weakref.WeakKeyDictionary[ModelRegistry, Decoding] = weakref.WeakKeyDictionary()  # per worker


class GenerationTask(StreamingTask):
    """A request is started, streams for many steps and finishes on its own."""

    def __init__(self, registry: ModelRegistry) -> None:
        super().__init__(registry)
        shared = _DECODING.setdefault(registry, Decoding())  # the same for every text-to-text task
        self.jobs, self.managers, self.rows, self.lock = shared.jobs, shared.managers, shared.rows, shared.lock

    # --- what a text-to-text task writes -------------------------------------------------
    def decoding(self, loaded: LoadedModel, request: Any) -> tuple[GenerationRequest, list[int], int]:
        """How `request` decodes: the generation request, its prompt's ids and the earlier turns left out."""
        return request, *self._prompt_ids(loaded, request)

    def result(self, job: RunningJob) -> Any:
        """A finished job's result."""
        request = job.request
        return GenerationResult(
            prompt=request.prompt,
            texts=job.texts(),
            new_tokens=[len(s.tokens) for s in job.streams],
            finish_reasons=job.finish_reasons(),
            mode=request.mode,
            model=job.model,
            turns_seen=len(request.history) - job.dropped_turns,
            dropped_turns=job.dropped_turns,
            sampling=job.sampling,
        )

    # --- the worker's interface ----------------------------------------------------------
    def start(self, job_id: int, request: Any, sink: JobSink) -> None:
        """Begin decoding a request; chunks and the result go to `sink` as they come."""
        try:
            loaded = self.registry.get(request.model_role(), generation_class, request.model)
            job, prompt_ids = self._job(job_id, loaded, request, sink)
        except EngineError as error:
            sink.done(job_id, failure(error))
            return
        manager = self._manager(loaded, job)
        if manager is not None:
            self._start_continuous(manager, job, prompt_ids)
        else:
            threading.Thread(
                target=self._decode_static, args=(loaded, job, prompt_ids), daemon=True, name=f"generate-{job_id}"
            ).start()

    def cancel(self, job_id: int) -> bool:
        """Stop a job at the next step; True when it was running here."""
        job, rows = self._forget(job_id)
        if job is None:
            return False
        job.cancelled.set()  # static decoding stops at its next step
        for rid, manager in rows:
            manager.cancel_request(rid)
        return True

    def close(self) -> None:
        while self.managers:  # shared: the first task to close stops them all
            self.managers.popitem()[1].stop(block=True, timeout=5)

    # --- the registry's ModelHolder interface ----------------------------------------------
    def holds(self, loaded: LoadedModel) -> bool:
        with self.lock:
            return any(job.model == loaded.model_id for job in self.jobs.values())

    def release(self, loaded: LoadedModel) -> None:
        """The model is being unloaded: stop its managers (they hold its KV caches)."""
        for key in [key for key in self.managers if key[0] == loaded.model_id]:
            self.managers.pop(key).stop(block=True, timeout=5)

    def _job(self, job_id: int, loaded: LoadedModel, request: Any, sink: JobSink) -> tuple[RunningJob, list[int]]:
        """A job for `request`, registered as running, and its prompt's ids."""
        decoding, prompt_ids, dropped = self.decoding(loaded, request)
        positions = getattr(loaded.config, "max_position_embeddings", None)
        if loaded.config.is_encoder_decoder and positions:  # a decoder with learned positions writes no further
            decoding = replace(decoding, max_new_tokens=min(decoding.max_new_tokens, positions - 1))
        stop_ids = self._stop_ids(loaded)
        job = RunningJob(
            job_id,
            decoding,
            request,
            sink,
            [TextStream(loaded.tokenizer, stop_ids) for _ in range(decoding.num_return_sequences)],
            loaded.model_id,
            self.result,
            decoding.sampling(model_sampling(loaded.model.generation_config)),
            dropped,
        )
        with self.lock:
            self.jobs[job_id] = job
        return job, prompt_ids

    # --- continuous batching -------------------------------------------------------------
    def _manager(self, loaded: LoadedModel, job: RunningJob) -> Any | None:
        """The continuous batching manager for this job's sampling setting, or None: static decoding."""
        sampling = job.sampling
        seeded = sampling.samples and job.request.seed is not None
        if (
            self.registry.config.streaming_batching() != "continuous"
            or loaded.config.is_encoder_decoder
            or seeded
            or sampling.repetition_penalty != 1.0  # continuous batching drops this processor
        ):
            return None
        setting = (loaded.model_id, sampling)
        manager = self.managers.get(setting)
        if manager is not None and manager.is_running():
            return manager
        with self.lock:
            busy = {id(owner) for _, _, owner in self.rows.values()}
        for old, idle in list(self.managers.items()):  # make room: stop managers with nothing running
            if len(self.managers) >= MAX_MANAGERS and (id(idle) not in busy or not idle.is_running()):
                idle.stop(block=True, timeout=5)
                del self.managers[old]
        if len(self.managers) >= MAX_MANAGERS:
            return None
        self.managers[setting] = manager = self._make_manager(loaded, sampling)
        threading.Thread(target=self._collect, args=(manager,), daemon=True, name="generate-results").start()
        return manager

    def _start_continuous(self, manager: Any, job: RunningJob, prompt_ids: list[int]) -> None:
        for sequence in range(job.request.num_return_sequences):
            rid = f"{job.job_id}:{sequence}"
            with self.lock:
                self.rows[rid] = (job.job_id, sequence, manager)
            manager.add_request(prompt_ids, request_id=rid, max_new_tokens=job.request.max_new_tokens, streaming=True)

    def _make_manager(self, loaded: LoadedModel, sampling: Sampling) -> Any:
        stop_ids = sorted(self._stop_ids(loaded))
        rows = self.registry.config.max_batch_size
        settings = (
            {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": sampling.top_k}
            if sampling.samples
            else {"do_sample": False}
        )
        generation = GenerationConfig(
            max_new_tokens=MAX_NEW_TOKENS,
            eos_token_id=stop_ids or -1,
            pad_token_id=loaded.tokenizer.pad_token_id,
            **settings,
        )
        # Sized from our limits, not from free memory (the default would take most of the RAM on a CPU).
        pages = rows * KV_TOKENS_PER_ROW // KV_PAGE_TOKENS
        config = ContinuousBatchingConfig(
            page_size=KV_PAGE_TOKENS,
            num_blocks=pages,
            max_batch_tokens=PREFILL_TOKENS + rows,
            max_requests_per_batch=rows,
            allow_block_sharing=False,
        )
        manager = loaded.model.init_continuous_batching(generation_config=generation, continuous_batching_config=config)
        manager.start()
        log.info(
            "Continuous batching started (%s): %d rows, %d KV pages of %d tokens",
            sampling.describe(),
            rows,
            pages,
            KV_PAGE_TOKENS,
        )
        return manager

    def _collect(self, manager: Any) -> None:
        """Thread: route the manager's streamed outputs to their jobs until it stops."""
        while manager.is_running() or not manager.output_router.output_queue.empty():
            output = manager.get_result(timeout=0.2)
            if output is not None:
                self._on_output(output)
        with self.lock:
            orphans = {owner for owner, _, used in self.rows.values() if used is manager}
        if orphans:  # the manager died under them
            log.error(
                "Continuous batching stopped (%s); failing %d job(s)",
                manager.background_thread_status.fatal_error,
                len(orphans),
            )
        for job_id in orphans:
            self._fail(job_id, EngineError(FAILED))

    def _on_output(self, output: Any) -> None:
        with self.lock:
            owner = self.rows.get(output.request_id)
            job = self.jobs.get(owner[0]) if owner else None
            if owner and output.is_finished():
                del self.rows[output.request_id]
        if job is None:
            return  # cancelled
        sequence = owner[1]  # (job id, sequence, manager)
        if output.error:
            log.error("Generation row %s failed: %s", output.request_id, output.error)
            self._fail(job.job_id, EngineError(FAILED))
            return
        stream = job.streams[sequence]
        job.add(sequence, output.generated_tokens[len(stream.tokens) + stream.stopped :])
        if output.is_finished() and job.finish(sequence):
            with self.lock:
                self.jobs.pop(job.job_id, None)

    # --- static decoding -----------------------------------------------------------------
    @torch.inference_mode()
    def _decode_static(self, loaded: LoadedModel, job: RunningJob, prompt_ids: list[int]) -> None:
        request, tokenizer, sampling = job.request, loaded.tokenizer, job.sampling
        try:
            inputs = torch.tensor([prompt_ids] * request.num_return_sequences, device=loaded.device)
            start = 1 if loaded.config.is_encoder_decoder else inputs.shape[1]
            seed = request.seed if request.seed is not None else random.getrandbits(63)
            sampler = [SeededSampler(sampling, seed)] if sampling.samples else []
            loaded.model.generate(
                input_ids=inputs,
                attention_mask=torch.ones_like(inputs),
                max_new_tokens=request.max_new_tokens,
                do_sample=False,
                num_beams=1,  # a streamer can't follow beam search (summarizers and opus-mt default to 4 beams)
                temperature=None,
                top_p=None,
                top_k=None,  # sampling, if any, is the SeededSampler's
                repetition_penalty=sampling.repetition_penalty,
                logits_processor=LogitsProcessorList(sampler),
                stopping_criteria=[RowStops(request.max_new_tokens, start, job.cancelled)],
                pad_token_id=tokenizer.pad_token_id,
                streamer=RowStreamer(job),
            )
        except torch.OutOfMemoryError:
            self._fail(
                job.job_id,
                ResourceExhausted(
                    "This request needs more memory than the device has. Try fewer tokens or fewer answers."
                ),
            )
            return
        except Exception:
            log.exception("Static generation failed")
            self._fail(job.job_id, EngineError(FAILED))
            return
        with self.lock:
            if self.jobs.pop(job.job_id, None) is None:
                return  # cancelled meanwhile
        for sequence in range(request.num_return_sequences):
            job.finish(sequence)

    # --- shared --------------------------------------------------------------------------
    def _forget(self, job_id: int) -> tuple[RunningJob | None, list[tuple[str, Any]]]:
        """Drop a job and its continuous rows; returns them as (row id, manager)."""
        with self.lock:
            job = self.jobs.pop(job_id, None)
            rows = [(rid, manager) for rid, (owner, _, manager) in self.rows.items() if owner == job_id]
            for rid, _ in rows:
                del self.rows[rid]
        return job, rows

    def _fail(self, job_id: int, error: EngineError) -> None:
        job, _ = self._forget(job_id)
        if job is not None:
            job.sink.done(job_id, failure(error))

    def _prompt_ids(self, loaded: LoadedModel, request: GenerationRequest) -> tuple[list[int], int]:
        """The prompt's token ids, and how many earlier conversation turns were left out to fit."""
        tokenizer = loaded.tokenizer
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token  # gpt2 has no pad token
        # Decoder-only models continue from the right edge, so long prompts lose their start.
        tokenizer.truncation_side = "right" if loaded.config.is_encoder_decoder else "left"
        max_input = self.input_limit(loaded.config, request.max_new_tokens)
        if request.mode == "chat":
            return chat_prompt_ids(tokenizer, request, max_input)
        return tokenizer(request.prompt, truncation=True, max_length=max_input)["input_ids"], 0

    @classmethod
    def input_limit(cls, config: PretrainedConfig, max_new_tokens: int) -> int:
        """The most prompt tokens a model reads: a decoder's context less the answer, an encoder's positions
        (SEQ2SEQ_MAX_INPUT where it has no limit)."""
        if config.is_encoder_decoder:
            return getattr(config, "max_position_embeddings", None) or SEQ2SEQ_MAX_INPUT
        return cls._max_positions(config) - max_new_tokens

    @staticmethod
    def _max_positions(config: PretrainedConfig) -> int:
        return getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None) or 2048

    @staticmethod
    def _stop_ids(loaded: LoadedModel) -> set[int]:
        stop = loaded.model.generation_config.eos_token_id
        ids: Sequence[int] = stop if isinstance(stop, (list, tuple)) else [stop] if stop is not None else []
        return {*ids, *([loaded.tokenizer.eos_token_id] if loaded.tokenizer.eos_token_id is not None else [])}
