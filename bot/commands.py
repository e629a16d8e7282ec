"""The command layer: each command's request building, validation and rendering,
written once and shared by the Discord cogs and the console.

A command turns its options into an engine request (validated again here even
though Discord enforces ranges: the console and direct API calls do not), and an
engine result into a neutral `Reply` that each front end draws its own way.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .engine import (
    ROLES,
    EngineError,
    EngineStatus,
    FillMaskRequest,
    FillMaskResult,
    GenerationRequest,
    GenerationResult,
    Job,
    SentimentRequest,
    SentimentResult,
    TokenizeRequest,
    TokenizeResult,
    ZeroShotRequest,
    ZeroShotResult,
)
from .engine.config import list_setting_name
from .engine.errors import Busy, DeadlineExceeded, InvalidInput, ModelUnavailable, WorkerCrashed
from .engine.requests.base import MAX_TEXT_CHARS, PipelineDetails, Request, check_choice, split_sentences
from .engine.requests.fill_mask import DEFAULT_TOP_K, MASKED, MAX_TOP_K
from .engine.requests.generation import (
    DEFAULT_MAX_NEW_TOKENS,
    DEFAULT_TEMPERATURE,
    DEFAULT_TOP_P,
    MAX_NEW_TOKENS,
    MAX_RETURN_SEQUENCES,
    MAX_SEED,
    MAX_TEMPERATURE,
    MODES,
)
from .engine.requests.tokenize import DEFAULT_ROLE
from .engine.requests.zero_shot import MAX_LABELS, METHODS
from .settings import Settings

# Re-exported for the cogs, which declare the same ranges to Discord.
__all__ = [
    "ROLES",
    "MAX_TEXT_CHARS",
    "MAX_TOP_K",
    "MAX_NEW_TOKENS",
    "MAX_RETURN_SEQUENCES",
    "MAX_TEMPERATURE",
    "MAX_SEED",
    "MAX_LABELS",
    "METHODS",
    "DEFAULT_ROLE",
    "DEFAULT_TOP_K",
    "DEFAULT_MAX_NEW_TOKENS",
    "DEFAULT_TEMPERATURE",
    "DEFAULT_TOP_P",
    "MODES",
    "MODEL_HELP",
    "Reply",
    "build_request",
    "render_result",
    "render_error",
    "render_partial",
    "render_waiting",
    "render_status",
    "COMMANDS",
]

DESCRIPTION_LIMIT = 4096  # Discord's embed description limit; the console uses it too
CHAT_TITLE = "Chat"  # the title of every chat answer: how the bot finds its turns in a thread or reply chain
DETAILED_SENTENCES = 4  # `details` for more would pass an embed's 6000 characters
MODEL_HELP = "Which model answers (the list shows this bot's; empty: the default)"
OPENING_FIELD = "Prompt"  # the field that holds the member's message on a conversation's first answer


@dataclass
class Reply:
    """A front-end-neutral answer: a title, body lines, named fields and a footer."""

    title: str
    lines: list[str] = field(default_factory=list)
    fields: list[tuple[str, str]] = field(default_factory=list)
    footer: str = ""
    tone: str = "ok"  # ok | error | busy | info: the front end picks a colour
    side_by_side: bool = False  # fields next to each other (/compare), not one under the other

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def bar(score: float, width: int = 10) -> str:
    filled = round(max(0.0, min(1.0, score)) * width)
    return "█" * filled + "░" * (width - filled)


def clip(text: str, limit: int) -> str:
    """Cut text to `limit` characters with a visible note, never mid-way silently."""
    if len(text) <= limit:
        return text
    note = "… [cut: {} more characters]"
    keep = limit - len(note.format(len(text)))  # the count never has more digits than the length
    return text[:keep] + note.format(len(text) - keep)


def quote(text: str, limit: int = 200) -> str:
    return "“" + clip(" ".join(text.split()), limit) + "”"


# --- options -> requests ---------------------------------------------------------------------


def parse_labels(labels: str) -> tuple[str, ...]:
    # Empty items stay in, so the engine can say "one of the labels is empty".
    parts = [part.strip() for part in labels.split(",")]
    return tuple(parts) if any(parts) else ()


# `model` options name one of the role's allowed models ("": its default); the engine checks the list.


def _sentiment(s: Settings, text: str, details: bool = False, model: str = "") -> Request:
    return SentimentRequest(tuple(split_sentences(text)), details, model=model)


def _generate(
    s: Settings,
    prompt: str,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    num_return_sequences: int = 1,
    temperature: float = DEFAULT_TEMPERATURE,
    top_p: float = DEFAULT_TOP_P,
    seed: int | None = None,
    mode: str = MODES[0],
    model: str = "",
) -> Request:
    return GenerationRequest(prompt, max_new_tokens, num_return_sequences, temperature, top_p, seed, mode, model=model)


def _chat(
    s: Settings, message: str, history: tuple[tuple[str, str], ...] = (), system: str | None = None, model: str = ""
) -> Request:
    """One turn of a conversation: `history` comes from the thread or reply chain, not from the member."""
    return GenerationRequest(message, s.chat_max_new_tokens, mode="chat", history=history, system=system, model=model)


def _label(
    s: Settings,
    text: str,
    labels: str,
    multi_label: bool = False,
    method: str | None = None,
    details: bool = False,
    model: str = "",
) -> Request:
    return ZeroShotRequest(
        text, parse_labels(labels), multi_label, method=method or s.label_method, details=details, model=model
    )


def _fill(s: Settings, text: str, top_k: int = DEFAULT_TOP_K, details: bool = False, model: str = "") -> Request:
    return FillMaskRequest(text, top_k, details, model=model)


def _tokens(s: Settings, text: str, model: str = DEFAULT_ROLE) -> Request:
    return TokenizeRequest(text, model)


# Command name -> request builder. /status needs no request (see render_status).
COMMANDS: dict[str, Callable[..., Request]] = {
    "sentiment": _sentiment,
    "generate": _generate,
    "chat": _chat,
    "label": _label,
    "fill": _fill,
    "tokens": _tokens,
}


def model_role(command: str, options: Mapping[str, Any], settings: Settings) -> str:
    """Whose list a command's `model:` option picks from (/label: the method's role)."""
    if command == "label":
        return "zero_shot" if (options.get("method") or settings.label_method) == "nli" else "embedding"
    return {"sentiment": "sentiment", "generate": "generation", "chat": "generation", "fill": "fill_mask"}[command]


def model_suggestions(settings: Settings, role: str, typed: str) -> list[str]:
    """The role's allowed models that contain what the member typed so far (Discord shows at most 25)."""
    return [model for model in settings.engine.allowed(role) if typed.casefold() in model.casefold()][:25]


def build_request(command: str, options: dict[str, Any], settings: Settings) -> Request:
    """Options as the user gave them -> a validated engine request (raises InvalidInput)."""
    check_usage(command, COMMANDS[command], options)
    request = COMMANDS[command](settings, **options)
    request.validate()
    return request


def check_usage(command: str, builder: Callable[..., Any], options: Mapping[str, Any]) -> None:
    """Every required option of `builder(settings, ...)` given, and no unknown one (the console has no form to enforce it)."""
    parameters = list(inspect.signature(builder).parameters.values())[1:]
    unknown = sorted(set(options) - {p.name for p in parameters})
    missing = [p.name for p in parameters if p.default is p.empty and p.name not in options]
    if unknown or missing:
        usage = " ".join(f"{p.name}:" if p.default is p.empty else f"[{p.name}:]" for p in parameters)
        problem = f"unknown option {', '.join(unknown)}" if unknown else f"missing {', '.join(missing)}"
        raise InvalidInput(f"/{command}: {problem}. Usage: /{command} {usage}")


# --- /compare: one input, two models -----------------------------------------------------------

COMPARED = {"sentiment": "text", "label": "text", "fill": "text", "generate": "prompt"}  # command -> its text option
Answer = tuple[str, Any, float | None]  # (model, result or EngineError, seconds it ran)


def build_comparison(
    settings: Settings, task: str, text: str, model_a: str = "", model_b: str = "", labels: str | None = None
) -> tuple[Request, Request]:
    """Two validated requests, equal but for the model; left out, the models are the role's first two."""
    check_choice(task, "task", tuple(COMPARED))
    options: dict[str, Any] = {COMPARED[task]: text}
    if task == "label":
        if not labels:
            raise InvalidInput("Comparing labels needs labels: too, separated by commas (e.g. `sports, politics`).")
        options["labels"] = labels
    elif labels:
        raise InvalidInput(f"labels: is for task: label only; /compare task: {task} takes the text alone.")
    if task == "generate":
        options["temperature"] = 0.0  # greedy: what differs is the models, not the dice
    role = model_role(task, options, settings)
    allowed = settings.engine.allowed(role)
    first = model_a or next(iter(allowed), "")
    second = model_b or next((model for model in allowed if model != first), "")
    if not (first and second):
        raise InvalidInput(
            f"Comparing needs two {role.replace('_', '-')} models, and this bot has {len(allowed)} "
            f"({', '.join(allowed) or 'none'}). An operator can list more in {list_setting_name(role)}."
        )
    if first == second:
        raise InvalidInput(f"Both sides are '{first}'. Pick two different models to compare.")
    return build_request(task, {**options, "model": first}, settings), build_request(
        task, {**options, "model": second}, settings
    )


def submit_comparison(submit: Callable[[Request], Job], requests: tuple[Request, ...]) -> list[Job]:
    """Queue both, or neither: Busy or a model not in the list refuses the pair before anything runs."""
    jobs: list[Job] = []
    try:
        for request in requests:
            jobs.append(submit(request))
    except EngineError:
        for job in jobs:
            job.cancel()
        raise
    return jobs


async def comparison_answers(requests: tuple[Request, ...], jobs: list[Job]) -> list[Answer]:
    """Wait for both; a model that fails answers with its error, in its own column."""
    outcomes = await asyncio.gather(*(job.result() for job in jobs), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and not isinstance(outcome, EngineError):
            raise outcome
    return [
        (request.chosen_model(), outcome, job.run_seconds()) for request, outcome, job in zip(requests, outcomes, jobs)
    ]


def render_comparison(task: str, text: str, answers: list[Answer]) -> Reply:
    fields = []
    for model, outcome, seconds in answers:
        reply = render_error(outcome) if isinstance(outcome, EngineError) else render_result(outcome)
        took = f" · {seconds:.2f} s" if seconds is not None else ""
        body = [line for line in reply.lines if line and line != quote(text)]
        fields.append((f"{model}{took}", "\n".join([*body, *(f"{name}: {value}" for name, value in reply.fields)])))
    return Reply(
        f"Compare: {task}",
        [quote(text)],
        fields=fields,
        side_by_side=True,
        footer="seconds: the model's own run, loading it included the first time"
        + (" · greedy decoding" if task == "generate" else ""),
    )


# --- results -> replies ----------------------------------------------------------------------


def render_result(result: Any) -> Reply:
    return _RENDERERS[type(result)](result)


def _render_sentiment(r: SentimentResult) -> Reply:
    lines = []
    for s in r.sentences:
        face = "🙂" if s.label.upper().startswith("POS") else "🙁" if s.label.upper().startswith("NEG") else "😐"
        lines.append(f"{face} **{s.label}** `{bar(s.score)}` {s.score:.2f} — {quote(s.text)}")
    detailed = [s for s in r.sentences if s.details]
    fields = [field for s in detailed[:DETAILED_SENTENCES] for field in _render_details(s.text, s.details)]
    more = f" · details of the first {DETAILED_SENTENCES} texts" if len(detailed) > DETAILED_SENTENCES else ""
    return Reply("Sentiment", lines, fields=fields, footer=f"{r.model} · {r.method}{more}")


def _render_details(text: str, d: PipelineDetails) -> list[tuple[str, str]]:
    """Tokens, then logits -> softmax per class id with its label: the pipeline on the user's own sentence."""
    classes = "\n".join(
        f"`{i}` {label}: logit {logit:+.3f} → {p:.3f}"
        for (i, label), logit, p in zip(d.id2label.items(), d.logits, d.probabilities)
    )
    return [
        (f"Tokens ({len(d.tokens)}) of {clip(text, 60)}", clip(" │ ".join(d.tokens), 300)),
        ("id2label: logits → softmax", clip(f"{classes}\nlogits: {d.logits_are}", 1024)),
    ]


def _render_zero_shot(r: ZeroShotResult) -> Reply:
    width = max(len(label) for label in r.labels)
    lines = [f"`{label.ljust(width)} {bar(score)}` {score:.2f}" for label, score in zip(r.labels, r.scores)]
    kind = "independent scores" if r.multi_label else "scores sum to 1"
    fields = _render_details(r.text, r.details) if r.details else []
    return Reply("Labels", [quote(r.text), "", *lines], fields=fields, footer=f"{r.model} · {r.method} · {kind}")


def _render_fill(r: FillMaskResult) -> Reply:
    lines = [
        f"{i}. **{c.token}** `{bar(c.score)}` {c.score:.2f} — {quote(c.sequence, 150)}"
        for i, c in enumerate(r.candidates, 1)
    ]
    footer = (
        r.model
        if r.method == MASKED
        else f"{r.model} · {r.method}: words from the text before the mask, rescored on the whole sentence"
    )
    fields = _render_details(r.text, r.details) if r.details else []
    return Reply("Fill the mask", lines or ["The model found no word for this mask."], fields=fields, footer=footer)


def _render_tokens(r: TokenizeResult) -> Reply:
    tokens = " │ ".join(f"**{t}**" if special else t for t, special in zip(r.tokens, r.special))
    specials = ", ".join(dict.fromkeys(t for t, special in zip(r.tokens, r.special) if special)) or "none"
    return Reply(
        f"Tokens ({len(r.ids)})",
        [quote(r.text)],
        fields=[
            ("Tokens", clip(tokens, 1024)),
            ("IDs", clip(" ".join(map(str, r.ids)), 1024)),
            ("Special tokens added", clip(specials, 1024)),
            ("Decoded back", clip(r.decoded, 1024)),
        ],
        footer=f"{r.model} tokenizer",
    )


def _render_generation(r: GenerationResult) -> Reply:
    budget = (DESCRIPTION_LIMIT - 200) // max(1, len(r.texts))  # room for the prompt line
    head = [] if r.mode == "chat" else [f"**{clip(r.prompt, 150)}**"]
    body = []
    for i, text in enumerate(r.texts, 1):
        text = clip(text.strip(), budget) if text.strip() else "*(the model produced no text)*"
        body.append(f"**{i}.** {text}" if len(r.texts) > 1 else text)
    cut = sum(reason == "length" for reason in r.finish_reasons)
    note = " · stopped at max_new_tokens" if cut else ""
    if r.dropped_turns:
        note += f" · {r.dropped_turns} earlier messages left out to fit the context"
    return Reply(
        CHAT_TITLE if r.mode == "chat" else "Generation",
        [*head, *body],
        footer=f"{r.model} · {sum(r.new_tokens)} tokens{note}",
    )


def render_conversation(r: GenerationResult, opening: bool, how_to_continue: str) -> Reply:
    return as_turn(_render_generation(r), r.prompt, opening, how_to_continue)


def as_turn(reply: Reply, prompt: str, opening: bool, how_to_continue: str) -> Reply:
    """A conversation's answer (being written, stopped or finished); the first one also keeps the member's
    message, so the thread or chain can be read back."""
    if opening:
        reply.fields.append((OPENING_FIELD, clip(prompt, 1024)))
    if reply.footer != WRITING:  # still being written: the footer marks it as no finished turn yet
        reply.footer += f" · {how_to_continue}"
    return reply


_RENDERERS: dict[type, Callable[[Any], Reply]] = {
    SentimentResult: _render_sentiment,
    ZeroShotResult: _render_zero_shot,
    FillMaskResult: _render_fill,
    TokenizeResult: _render_tokens,
    GenerationResult: _render_generation,
}


WRITING = "writing…"  # the footer of an answer still streaming (never read back as a finished turn)
NO_TEXT = "*(stopped before the first word)*"  # a stopped answer without text (not read back as a turn)


def render_partial(request: GenerationRequest, text: str, stopped: bool = False) -> Reply:
    """A generation still streaming, or stopped by its member (sequence 1 only; a finished reply has them all)."""
    head = [] if request.mode == "chat" else [f"**{clip(request.prompt, 150)}**"]
    body = clip(text, DESCRIPTION_LIMIT - 200) + ("" if stopped else " ▌")
    return Reply(
        CHAT_TITLE if request.mode == "chat" else "Generation",
        [*head, body or NO_TEXT],
        footer="stopped" if stopped else WRITING,
        tone="ok" if stopped else "info",
    )


def render_waiting(position: int, eta: float) -> str:
    ahead = "you are next" if position == 0 else f"{position} ahead of you"
    return f"⏳ In the queue: {ahead}, about {max(1, round(eta))} s."


_ERROR_TITLES = {
    InvalidInput: "That didn't work",
    Busy: "Busy",
    DeadlineExceeded: "Timed out",
    ModelUnavailable: "Model unavailable",
    WorkerCrashed: "Please try again",
}


def render_error(error: EngineError) -> Reply:
    title = next((t for cls, t in _ERROR_TITLES.items() if isinstance(error, cls)), "Sorry")
    return Reply(title, [str(error)], tone="busy" if isinstance(error, Busy) else "error")


def render_apology(error_id: str) -> Reply:
    return Reply(
        "Sorry", [f"Something went wrong on my side. It has been logged (error id `{error_id}`)."], tone="error"
    )


def render_status(status: EngineStatus, settings: Settings) -> Reply:
    def ms(seconds: float | None) -> str:
        return "–" if seconds is None else f"{seconds * 1000:.0f}"

    by_dtype: dict[str, list[str]] = {}  # roles that share a dtype are listed together
    for role, dtype in status.dtypes.items():
        by_dtype.setdefault(dtype, []).append(role)
    batching = f" · {status.generation_batching} batching" if status.generation_batching else ""
    lines = [
        f"**Device** {status.device} · profile {settings.profile}",
        "**Precision** " + " · ".join(f"{dtype}: {', '.join(roles)}" for dtype, roles in by_dtype.items()),
        f"**Worker** {status.worker_state} · restarts {status.worker_restarts}{batching}",
        f"**Queue** {status.queued} waiting · {status.running} running · {status.queued_background} background",
    ]
    if status.shed:
        lines.append(
            "**Refused or dropped** " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(status.shed.items()))
        )
    budget = f" of a {status.memory_budget_mb:,.0f} MB budget" if status.memory_budget_mb else ""
    models = (
        "\n".join(
            [
                f"{sum(m.megabytes for m in status.models):,.1f} MB in memory{budget}; most recently used first",
                *(
                    f"{m.model_id} · {', '.join(m.roles)} · {m.dtype}"
                    + (f" · {m.megabytes:,.1f} MB" if m.megabytes else "")
                    for m in status.models
                ),
            ]
        )
        if status.models
        else "none yet (each loads on first use)"
    )
    fields = [("Loaded models", models)]
    for task, t in status.tasks.items():
        fields.append(
            (
                task,
                f"served {t.served} · failed {t.failed}\nwait p50/p95 {ms(t.wait_p50)}/{ms(t.wait_p95)} ms\n"
                f"compute p50/p95 {ms(t.compute_p50)}/{ms(t.compute_p95)} ms\n"
                f"batch {t.mean_batch_size or 0:.1f} avg",
            )
        )
    return Reply("Status", lines, fields=fields[:25], tone="info")


def result_data(result: Any) -> dict[str, Any]:
    """A result as JSON-ready data (the console's --json output)."""
    return dataclasses.asdict(result)
