"""Text generation: continue a prompt, or chat through the tokenizer's chat template."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidInput
from .base import Request, check_choice, check_number, check_text, estimate_tokens

MAX_NEW_TOKENS = 256  # ~1000 characters: what fits a chat message
MAX_RETURN_SEQUENCES = 4
MAX_TEMPERATURE = 2.0
MAX_SEED = 2**32 - 1
MODES = ("complete", "chat")
SPEAKERS = ("user", "assistant")  # the roles of a conversation's earlier turns
MAX_TURNS = 40  # earlier turns sent with one chat request; the worker trims them further to the context
MAX_TURN_CHARS = 4096  # an earlier answer is at most one embed description
DEFAULT_MAX_NEW_TOKENS = 64
DEFAULT_CHAT_MAX_NEW_TOKENS = 200  # a conversation's answers: a few sentences, well within one message
DEFAULT_TEMPERATURE = 0.7
DEFAULT_TOP_P = 0.95


@dataclass(frozen=True)
class GenerationRequest(Request):
    task = "generation"
    streams = True
    prompt: str
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    num_return_sequences: int = 1
    temperature: float = DEFAULT_TEMPERATURE  # 0 means greedy decoding
    top_p: float = DEFAULT_TOP_P
    seed: int | None = None
    mode: str = "complete"
    # Chat mode only: the conversation so far, oldest first, as (speaker, text); `prompt` is the newest
    # user message. The worker leaves out the oldest turns that do not fit the model's context.
    history: tuple[tuple[str, str], ...] = ()
    system: str | None = None  # chat mode: the server's system prompt
    # Chat mode: the assistant's unfinished answer to `prompt`; the model goes on writing it (Continue).
    continue_answer: str | None = None
    model: str = ""  # one of GENERATION_MODELS; "": the default

    def validate(self) -> None:
        check_text(self.prompt, "prompt")
        check_number(self.max_new_tokens, "max_new_tokens", 1, MAX_NEW_TOKENS, integer=True)
        check_number(self.num_return_sequences, "num_return_sequences", 1, MAX_RETURN_SEQUENCES, integer=True)
        check_number(self.temperature, "temperature", 0, MAX_TEMPERATURE)
        check_number(self.top_p, "top_p", 0.01, 1)
        if self.seed is not None:
            check_number(self.seed, "seed", 0, MAX_SEED, integer=True)
        check_choice(self.mode, "mode", MODES)
        if (self.history or self.system or self.continue_answer) and self.mode != "chat":
            raise InvalidInput("A conversation needs mode: chat.")
        if len(self.history) > MAX_TURNS:
            raise InvalidInput(
                f"That conversation has {len(self.history)} earlier messages; I read at most {MAX_TURNS}."
            )
        for speaker, text in self.history:
            check_choice(speaker, "speaker", SPEAKERS)
            check_text(text, "earlier message", MAX_TURN_CHARS)
        if self.system is not None:
            check_text(self.system, "system prompt")
        if self.continue_answer is not None:
            check_text(self.continue_answer, "answer so far", MAX_TURN_CHARS)

    @property
    def sampling(self) -> bool:
        return self.temperature > 0

    def cost(self) -> int:
        context = (
            sum(estimate_tokens(text) for _, text in self.history)
            + estimate_tokens(self.system or "")
            + estimate_tokens(self.continue_answer or "")
        )
        return (context + estimate_tokens(self.prompt) + self.max_new_tokens) * self.num_return_sequences

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
    turns_seen: int = 0  # earlier turns of the conversation the model read
    dropped_turns: int = 0  # earlier turns left out to fit the context (the oldest)
