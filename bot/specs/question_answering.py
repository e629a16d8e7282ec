"""Extractive question answering: the span of a context that answers a question, from the model's start
and end logits, read in overlapping windows when the context is longer than one (as transformers'
question-answering pipeline did); "no answer" when the model's null score beats every span."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..engine.request import MAX_TEXT_CHARS, Option, Request, check_text, estimate_tokens
from ..reply import Reply, bar, clip, quote
from . import DETAILS, MODEL, TEXT, Command, Role, TaskSpec, register

# The pipeline's defaults: a window reads at most 384 tokens (fewer if the model reads fewer), and
# consecutive windows of a long context overlap by up to 128 tokens, so an answer cut by one is whole in the next.
WINDOW_TOKENS = 384
DOC_STRIDE = 128

QUESTION = Option("question", str, "What to ask about the context", low=1, high=MAX_TEXT_CHARS)
CONTEXT = replace(TEXT, name="context", description="The text that holds the answer")
TOP_K = Option("top_k", int, "How many of the best spans to show", 1, low=1, high=5)
MAX_ANSWER_LEN = Option("max_answer_len", int, "The longest answer, in tokens", 15, low=1, high=100)


@dataclass(frozen=True)
class QuestionAnsweringRequest(Request):
    task = "question_answering"
    worker = "bot.engine.tasks.question_answering:QuestionAnsweringTask"
    question: str
    context: str
    top_k: int = TOP_K.default
    max_answer_len: int = MAX_ANSWER_LEN.default
    details: bool = False  # also show each span's start and end logits
    model: str = ""  # one of QUESTION_ANSWERING_MODELS; "": the default

    def validate(self) -> None:
        check_text(self.question, "question")
        check_text(self.context, "context")
        TOP_K.check(self.top_k)
        MAX_ANSWER_LEN.check(self.max_answer_len)

    def cost(self) -> int:
        return self.rows() * estimate_tokens(self.question) + estimate_tokens(self.context)

    def rows(self) -> int:
        """The windows its context is read in (an estimate: the worker splits by the tokenizer)."""
        beyond = max(0, estimate_tokens(self.context) - WINDOW_TOKENS)
        return 1 + -(-beyond // (WINDOW_TOKENS - DOC_STRIDE))


@dataclass(frozen=True)
class Span:
    text: str  # as it stands in the context
    score: float  # P(start) x P(end), softmax over the window's context tokens (the pipeline's score)
    start: int  # character offsets into the context
    end: int
    start_logit: float
    end_logit: float
    window: int  # which window of the context it was read in (0: the first)


@dataclass(frozen=True)
class QuestionAnsweringResult:
    question: str
    context: str
    spans: list[Span]  # best first, at most top_k
    null_score: float  # P(start) x P(end) at [CLS], the model's "no answer" (the lowest over windows)
    no_answer: bool  # the null score beats the best span
    windows: int  # how many windows the context was read in
    max_answer_len: int
    model: str
    details: bool = False
    null_logits: tuple[float, float] | None = None  # details: the start and end logits at [CLS] (its window)


def highlighted(context: str, span: Span, around: int = 300) -> str:
    """The context near the span, with the span in bold."""
    before, after = context[max(0, span.start - around) : span.start], context[span.end : span.end + around]
    dots = ("…" if span.start > around else "", "…" if span.end + around < len(context) else "")
    return f"{dots[0]}{before}**{context[span.start : span.end]}**{after}{dots[1]}"


def render(r: QuestionAnsweringResult) -> Reply:
    lines = [f"**Q:** {quote(r.question, 300)}"]
    if r.no_answer or not r.spans:
        best = f", the best span scores {r.spans[0].score:.2f}" if r.spans else ""
        lines.append(f"**No answer found** in the context (the model's no-answer score is {r.null_score:.2f}{best}).")
    else:
        best = r.spans[0]
        lines += [
            f"**A:** {quote(best.text, 300)}  `{bar(best.score)}` {best.score:.2f}",
            "",
            highlighted(r.context, best),
        ]
    others = r.spans[1:] if not r.no_answer else r.spans
    if others:
        heading = "Best spans anyway:" if r.no_answer else "Next best:"
        lines += ["", heading, *(f"`{bar(s.score)}` {s.score:.2f} — {quote(s.text, 120)}" for s in others)]
    fields = []
    if r.details:
        rows = [
            f"{quote(s.text, 60)}: start {s.start_logit:+.2f}, end {s.end_logit:+.2f} → {s.score:.3f}"
            f" (window {s.window + 1})"
            for s in r.spans
        ]
        if r.null_logits:
            start, end = r.null_logits
            rows.append(f"no answer ([CLS]): start {start:+.2f}, end {end:+.2f} → {r.null_score:.3f}")
        fields.append(("Spans: start and end logits → P(start) × P(end)", clip("\n".join(rows), 1024)))
    windows = f" · read in {r.windows} overlapping windows" if r.windows > 1 else ""
    footer = f"{r.model} · answers up to {r.max_answer_len} tokens{windows}"
    return Reply("Answer", [clip("\n".join(lines), 3800)], fields=fields, footer=footer)


ROLE = Role(
    "question_answering",
    online="distilbert/distilbert-base-cased-distilled-squad",
    description="an extractive question-answering model (start/end logits, SQuAD-style); the offline profile has none",
)

register(
    TaskSpec(
        QuestionAnsweringRequest,
        QuestionAnsweringResult,
        render,
        roles=(ROLE,),
        commands=(
            Command(
                "ask",
                "Ask a question about a text: the model points at the words that answer it.",
                (
                    QUESTION,
                    CONTEXT,
                    TOP_K,
                    MAX_ANSWER_LEN,
                    replace(DETAILS, description="Show the best spans' start and end logits"),
                    MODEL,
                ),
                lambda settings, o: QuestionAnsweringRequest(
                    o["question"], o["context"], o["top_k"], o["max_answer_len"], o["details"], model=o["model"]
                ),
                role=ROLE.name,
                compare="context",
                example={
                    "question": "Who wrote the first program?",
                    "context": "Ada Lovelace wrote the first program for Charles Babbage's Analytical Engine in 1843.",
                },
            ),
        ),
    )
)
