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
    streams = True
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

    def rows(self) -> int:
        return self.num_return_sequences


@dataclass(frozen=True)
class GenerationResult:
    prompt: str
    texts: list[str]  # one per returned sequence, without the prompt
    new_tokens: list[int]
    finish_reasons: list[str]  # "stop" (end of text) or "length" (max_new_tokens reached)
    mode: str
    model: str
