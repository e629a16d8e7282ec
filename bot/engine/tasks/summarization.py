"""Summarization on the generation machinery (GenerationTask), greedy.

A text the model reads at once decodes like any generation. A longer one is split between lines (the
messages of a channel) into parts that fit; a thread summarizes the parts one after the other, each in
at most its share of what the model reads, then their summaries together in one last pass. Every pass
streams into the job's one text under its heading ("Part 1/3", "Summary"), so Stop keeps what was
written, and a cancel stops the pass in progress and starts no other.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field, replace
from typing import Any

from ...specs.generation import GenerationRequest
from ...specs.summarization import SUMMARY_TOKENS, SummarizationRequest, SummarizationResult
from ..errors import EngineError
from ..registry import LoadedModel
from ..request import Failure, failure
from .base import JobSink
from .generation import GenerationTask, RunningJob, generation_class, instructed

PROMPT_MARGIN = 8  # tokens: a part counted line by line can come out a little longer once joined


def instruction(text: str) -> str:
    """What a chat model is asked."""
    return f"Summarize the following text in a few sentences. Answer with the summary only.\n\n{text}"


def split_to_fit(tokenizer: Any, text: str, room: int) -> list[str]:
    """The text in parts of at most `room` tokens, cut between lines (a line longer than a part is cut)."""
    parts: list[str] = []
    lines: list[str] = []
    used = 0
    for line in filter(str.strip, text.splitlines()):
        ids = tokenizer(line, add_special_tokens=False, verbose=False)["input_ids"]  # a long line is expected here
        pieces = [line] if len(ids) <= room else [tokenizer.decode(ids[i : i + room]) for i in range(0, len(ids), room)]
        for piece in pieces:
            size = min(room, len(ids)) + 1  # and its line break
            if lines and used + size > room:
                parts.append("\n".join(lines))
                lines, used = [], 0
            lines.append(piece)
            used += size
    return [*parts, "\n".join(lines)] if lines else [text]


class Relay:
    """The sink of one pass of a job summarized in parts: its text goes to the job's stream after a heading,
    its outcome is kept for the thread that runs the passes."""

    def __init__(self, sink: JobSink, job_id: int, heading: str) -> None:
        self.sink, self.job_id, self.heading = sink, job_id, heading
        self.outcome: Any = None  # stays None when the pass was cancelled

    def chunk(self, job_id: int, sequence: int, text: str) -> None:
        self.sink.chunk(self.job_id, 0, self.heading + text)
        self.heading = ""

    def done(self, job_id: int, outcome: Any) -> None:
        self.outcome = outcome


@dataclass
class InParts:
    """A job summarized in parts: the pass running now, and whether it was cancelled."""

    sink: JobSink
    current: int = 0  # the running pass's job id
    cancelled: threading.Event = field(default_factory=threading.Event)


class SummarizationTask(GenerationTask):
    def __init__(self, registry: Any) -> None:
        super().__init__(registry)
        self.in_parts: dict[int, InParts] = {}
        self.pass_ids = itertools.count(-1, -1)  # the passes' own job ids: never a scheduler's

    def decoding(self, loaded: LoadedModel, request: SummarizationRequest) -> tuple[GenerationRequest, list[int], int]:
        config = loaded.config
        if config.model_type == "t5":
            prompt, mode = f"summarize: {request.text}", "complete"
        elif config.is_encoder_decoder:
            prompt, mode = request.text, "complete"
        else:
            prompt, mode = instructed(loaded, instruction(request.text), "summarization"), "chat"
        generation = GenerationRequest(prompt, request.max_new_tokens, temperature=0.0, mode=mode, model=request.model)
        return generation, *self._prompt_ids(loaded, generation)

    def result(self, job: RunningJob) -> SummarizationResult:
        asked: SummarizationRequest = job.asked
        return SummarizationResult(
            asked.text, job.texts(), job.finish_reasons(), job.model, job.request.mode == "chat", asked.origin
        )

    def start(self, job_id: int, request: SummarizationRequest, sink: JobSink) -> None:
        try:
            loaded = self.registry.get(request.model_role(), generation_class, request.model)
            room = self._room(loaded, request)
            parts = split_to_fit(loaded.tokenizer, request.text, room)
        except EngineError as error:
            sink.done(job_id, failure(error))
            return
        if len(parts) == 1:
            super().start(job_id, request, sink)
            return
        chain = InParts(sink)
        with self.lock:
            self.in_parts[job_id] = chain
        threading.Thread(
            target=self._summarize_in_parts,
            args=(chain, job_id, request, parts, room),
            daemon=True,
            name=f"summarize-{job_id}",
        ).start()

    def cancel(self, job_id: int) -> bool:
        with self.lock:
            chain = self.in_parts.pop(job_id, None)
        if chain is None:
            return super().cancel(job_id)
        chain.cancelled.set()
        super().cancel(chain.current)
        return True

    def _room(self, loaded: LoadedModel, request: SummarizationRequest) -> int:
        """Tokens of text a pass reads: the model's input less the instruction around the text."""
        _, around, _ = self.decoding(loaded, replace(request, text=""))
        return self.input_limit(loaded.config, SUMMARY_TOKENS) - len(around) - PROMPT_MARGIN

    def _summarize_in_parts(
        self, chain: InParts, job_id: int, request: SummarizationRequest, parts: list[str], room: int
    ) -> None:
        """Thread: the parts one after the other, their summaries together, then the job's result."""
        share = max(
            1, min(SUMMARY_TOKENS, room // len(parts) - 1)
        )  # the summaries fit the last pass (and a line break)
        summaries = []
        try:
            for number, part in enumerate(parts, 1):
                heading = ("\n\n" if summaries else "") + f"**Part {number}/{len(parts)}** "
                outcome = self._pass(chain, job_id, replace(request, text=part, max_new_tokens=share), heading)
                if outcome is None:
                    return
                summaries.append(outcome.texts[0].strip())
            final = self._pass(chain, job_id, replace(request, text="\n".join(summaries)), "\n\n**Summary** ")
            if final is not None:
                chain.sink.done(job_id, replace(final, prompt=request.text, parts=len(parts)))
        except EngineError as error:
            chain.sink.done(job_id, failure(error))
        finally:
            with self.lock:
                self.in_parts.pop(job_id, None)

    def _pass(self, chain: InParts, job_id: int, request: SummarizationRequest, heading: str) -> Any | None:
        """One pass, decoded in this thread; its result, or None when the job was cancelled or failed (then
        the job's failure is sent)."""
        loaded = self.registry.get(request.model_role(), generation_class, request.model)
        relay = Relay(chain.sink, job_id, heading)
        pass_id = next(self.pass_ids)
        job, prompt_ids = self._job(pass_id, loaded, request, relay)
        chain.current = pass_id
        if chain.cancelled.is_set():  # cancelled between two passes
            super().cancel(pass_id)
            return None
        self._decode_static(loaded, job, prompt_ids)
        if isinstance(relay.outcome, Failure):
            chain.sink.done(job_id, relay.outcome)
            return None
        return relay.outcome
