"""Translation on the generation machinery (GenerationTask): a Marian or T5 model decodes the text (or
T5's "translate X to Y:" prompt) in a thread of its own, a chat model is asked through its chat template
and decodes with the other generations. Greedy: the likeliest translation."""

from __future__ import annotations

from dataclasses import replace

from ...specs.generation import GenerationRequest
from ...specs.translation import LANGUAGES, MAX_NEW_TOKENS, TranslationRequest, TranslationResult, named
from ..errors import InvalidInput
from ..registry import LoadedModel
from .generation import GenerationTask, RunningJob, instructed


def instruction(request: TranslationRequest) -> str:
    """What a chat model is asked."""
    source = f" from {LANGUAGES[request.source]}" if request.source else ""
    return (
        f"Translate the following text{source} into {LANGUAGES[request.target]}. "
        f"Answer with the translation only.\n\n{request.text}"
    )


class TranslationTask(GenerationTask):
    def decoding(self, loaded: LoadedModel, request: TranslationRequest) -> tuple[GenerationRequest, list[int], int]:
        config, tokenizer = loaded.config, loaded.tokenizer
        pair = (request.source, request.target)
        if config.model_type == "marian":
            own = (getattr(tokenizer, "source_lang", None), getattr(tokenizer, "target_lang", None))
            if all(own) and own != pair:
                raise InvalidInput(f"{loaded.model_id} translates {named(own)} only, not {named(pair)}.")
            prompt, mode = request.text, "complete"
        elif config.is_encoder_decoder:  # T5-style: the task is said in the text
            source = LANGUAGES[request.source or "en"]
            prompt, mode = f"translate {source} to {LANGUAGES[request.target]}: {request.text}", "complete"
        else:
            prompt, mode = instructed(loaded, instruction(request), "translation"), "chat"
        generation = GenerationRequest(prompt, MAX_NEW_TOKENS, temperature=0.0, mode=mode, model=request.model)
        ids, dropped = self._prompt_ids(loaded, generation)
        # About as many tokens as it reads (plus room for a language that needs more), not a fixed maximum.
        return replace(generation, max_new_tokens=min(MAX_NEW_TOKENS, 2 * len(ids) + 16)), ids, dropped

    def result(self, job: RunningJob) -> TranslationResult:
        asked: TranslationRequest = job.asked
        return TranslationResult(
            asked.text,
            job.texts(),
            job.finish_reasons(),
            asked.source,
            asked.target,
            job.model,
            prompted=job.request.mode == "chat",
        )
