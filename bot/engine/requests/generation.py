"""Text generation: continue a prompt, or chat through the tokenizer's chat template."""
from __future__ import annotations

from dataclasses import dataclass

from .base import Request, check_choice, check_number, check_text, estimate_tokens

MAX_NEW_TOKENS = 256  # ~1000 characters: what fits a chat message
MAX_RETURN_SEQUENCES = 4
MAX_TEMPERATURE = 2.0
MAX_SEED = 2**32 - 1
MODES = ("complete", "chat")


@dataclass(frozen=True)
class GenerationRequest(Request):
    task = "generation"
    prompt: str
    max_new_tokens: int = 64
    num_return_sequences: int = 1
    temperature: float = 0.7  # 0 means greedy decoding
    top_p: float = 0.95
    seed: int | None = None
    mode: str = "complete"

    def validate(self) -> None:
        check_text(self.prompt, "prompt")
        check_number(self.max_new_tokens, "max_new_tokens", 1, MAX_NEW_TOKENS, integer=True)
        check_number(self.num_return_sequences, "num_return_sequences", 1, MAX_RETURN_SEQUENCES, integer=True)
        check_number(self.temperature, "temperature", 0, MAX_TEMPERATURE)
        check_number(self.top_p, "top_p", 0.01, 1)
        if self.seed is not None:
            check_number(self.seed, "seed", 0, MAX_SEED, integer=True)
        check_choice(self.mode, "mode", MODES)

    @property
    def sampling(self) -> bool:
        return self.temperature > 0

    def cost(self) -> int:
        return (estimate_tokens(self.prompt) + self.max_new_tokens) * self.num_return_sequences

    def batch_key(self) -> tuple[Any, ...]:
        # One generate() call samples with one temperature/top_p and one RNG seed.
        sampling = (self.temperature, self.top_p, self.seed) if self.sampling else ()
        if self.sampling and self.seed is not None:
            # Rows of one call share the random draws, so a seed only gives the same text every
            # time when its request is sampled alone: never batch a seeded request with another.
            sampling += (id(self),)
        return (self.task, self.model_role(), self.sampling, *sampling)


@dataclass(frozen=True)
class GenerationResult:
    prompt: str
    texts: list[str]  # one per returned sequence, without the prompt
    new_tokens: list[int]
    finish_reasons: list[str]  # "stop" (end of text) or "length" (max_new_tokens reached)
    mode: str
    model: str
