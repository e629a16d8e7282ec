"""Sentiment: text classification of one or several sentences per request.

With a classifier (e.g. distilbert-sst2) labels come from the model; with a plain
sentence-embedding model (offline profile) the texts are compared with a
positive and a negative description instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidInput
from .base import PipelineDetails, Request, check_text, estimate_tokens

MAX_SENTENCES = 10


@dataclass(frozen=True)
class SentimentRequest(Request):
    task = "sentiment"
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
