"""Zero-shot labeling: by NLI entailment or by embedding similarity."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidInput
from .base import PipelineDetails, Request, check_choice, check_text, estimate_tokens

MAX_LABELS = 25  # a guild label set holds at most 25 (Discord's choice limit)
MAX_LABEL_CHARS = 100
DEFAULT_TEMPLATE = "This example is {}."
METHODS = ("nli", "embedding")


@dataclass(frozen=True)
class ZeroShotRequest(Request):
    task = "zero_shot"
    text: str
    labels: tuple[str, ...]
    multi_label: bool = False
    hypothesis_template: str = DEFAULT_TEMPLATE
    method: str = "nli"
    details: bool = False  # also return what the pipeline did (tokens, logits, softmax, id2label)
    model: str = ""  # one of ZERO_SHOT_MODELS (nli) or EMBEDDING_MODELS (embedding); "": the default

    def validate(self) -> None:
        check_text(self.text)
        check_choice(self.method, "method", METHODS)
        if not self.labels:
            raise InvalidInput("Give at least one label, separated by commas (e.g. `sports, politics`).")
        if len(self.labels) > MAX_LABELS:
            raise InvalidInput(f"That is {len(self.labels)} labels; the limit is {MAX_LABELS}.")
        seen: set[str] = set()
        for label in self.labels:
            if not label.strip():
                raise InvalidInput("One of the labels is empty; check for doubled commas.")
            if len(label) > MAX_LABEL_CHARS:
                raise InvalidInput(
                    f"The label '{label[:20]}…' is too long; labels are at most {MAX_LABEL_CHARS} characters."
                )
            if label.casefold() in seen:
                raise InvalidInput(f"The label '{label}' is given twice; each label once, please.")
            seen.add(label.casefold())
        if self.hypothesis_template.count("{}") != 1:
            raise InvalidInput(
                "The hypothesis template needs exactly one {} where the label goes, e.g. `This text is about {}.`"
            )

    def model_role(self) -> str:
        return "zero_shot" if self.method == "nli" else "embedding"

    def cost(self) -> int:
        if self.method == "embedding":
            return estimate_tokens(self.text)  # label embeddings are cached
        return sum(estimate_tokens(self.text + self.hypothesis_template.format(label)) for label in self.labels)

    def rows(self) -> int:
        return 1 if self.method == "embedding" else len(self.labels)

    def hypotheses(self) -> list[str]:
        return [self.hypothesis_template.format(label) for label in self.labels]


@dataclass(frozen=True)
class ZeroShotResult:
    text: str
    labels: list[str]  # best first
    scores: list[float]
    multi_label: bool
    method: str
    model: str
    details: PipelineDetails | None = None  # per label in the request's order, not ranked
