"""Learned labels: a server's own linear head on sentence embeddings, trained from its moderators'
confirmed tags, with zero-shot for the labels that have too few examples.

Vectors and head weights travel as float32 bytes: compact to pickle and to store in SQLite.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..engine.errors import InvalidInput
from ..engine.request import Request, check_number, check_text, estimate_tokens
from . import TaskSpec, register
from .zero_shot import EMBEDDING, MAX_LABELS, ZeroShotRequest

NONE_OF_THESE = ""  # the class of "None of these" answers: a message that has none of the labels
LEARNED = "learned"  # the method named in results for labels scored by the head
MAX_EXAMPLES_PER_LABEL = 256  # the bot sends each label's newest: bounded work, and it follows drift
MAX_EXAMPLES = MAX_EXAMPLES_PER_LABEL * (MAX_LABELS + 1)  # per request; + 1: "None of these"
MAX_FOLDS = 10


@dataclass(frozen=True)
class LinearHead:
    """Softmax regression on one embedding model's sentence embeddings."""

    classes: tuple[str, ...]  # label names, plus NONE_OF_THESE when trained with such answers
    weights: bytes  # float32, len(classes) x dim, row-major
    bias: bytes  # float32, len(classes)
    dim: int
    model: str  # the embedding model whose vectors it reads

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(c for c in self.classes if c != NONE_OF_THESE)


@dataclass(frozen=True)
class Example:
    """One moderator's answer about one message: `label` is, or (positive=False) is not, right."""

    label: str  # NONE_OF_THESE: "None of these" (positive)
    positive: bool
    text: str | None = None  # only where the server stores text
    vector: bytes | None = None  # float32 embedding, when it was kept
    vector_model: str | None = None  # the model that made `vector`


def _check_labels(labels: tuple[str, ...], prompts: tuple[str, ...], method: str, hypothesis_template: str) -> None:
    if len(prompts) != len(labels):
        raise InvalidInput("Each label needs one prompt.")
    ZeroShotRequest("x", prompts, method=method, hypothesis_template=hypothesis_template).validate()


@dataclass(frozen=True)
class LabelMessageRequest(Request):
    """Rank a server's labels for one message: the head for the labels it learned, zero-shot for the rest."""

    task = "label_message"
    worker = "bot.engine.tasks.learned_labels:LabelMessageTask"
    text: str
    labels: tuple[str, ...]  # names, as results report them
    prompts: tuple[str, ...]  # what zero-shot compares with, one per label
    method: str = "embedding"  # zero-shot method for labels the head doesn't cover
    hypothesis_template: str = "{}"
    head: LinearHead | None = None
    encoder: bytes | None = None  # the server's fine-tuned adapter (FineTuned.adapter): the head reads its vectors

    def validate(self) -> None:
        check_text(self.text)
        _check_labels(self.labels, self.prompts, self.method, self.hypothesis_template)

    def zero_shot(self) -> ZeroShotRequest | None:
        """The zero-shot part, over every label (its mass on the unlearned ones gates the head); None when all
        are learned."""
        learned = set(self.head.labels) if self.head else set()
        if all(label in learned for label in self.labels):
            return None
        return self.zero_shot_of_all()

    def zero_shot_of_all(self) -> ZeroShotRequest:
        return ZeroShotRequest(
            self.text, self.prompts, method=self.method, hypothesis_template=self.hypothesis_template
        )

    def model_role(self) -> str:
        return EMBEDDING.name

    def cost(self) -> int:
        zero_shot = self.zero_shot()
        return zero_shot.cost() if zero_shot else estimate_tokens(self.text)

    def batch_key(self) -> tuple[Any, ...]:
        return (self.task, self.method)


@dataclass(frozen=True)
class LabelMessageResult:
    text: str
    labels: list[str]  # best first
    scores: list[float]  # learned and zero-shot scores share one scale: they add up to at most 1
    methods: list[str]  # per label: LEARNED or the zero-shot method
    model: str  # the embedding model
    vector: bytes  # the message's embedding: what a confirmed example keeps instead of its text
    # Zero-shot's top label where the head scored some labels and zero-shot was run too (always with the embedding
    # method: it costs one product with the cached label vectors). "Help me learn" asks where the two disagree.
    zero_shot_label: str | None = None


@dataclass(frozen=True)
class TrainLabelsRequest(Request):
    """Fit a head on a server's examples; labels with fewer than `min_examples` positives are left to zero-shot."""

    task = "train_labels"
    worker = "bot.engine.tasks.learned_labels:TrainLabelsTask"
    labels: tuple[str, ...]
    examples: tuple[Example, ...]
    min_examples: int

    def validate(self) -> None:
        check_number(self.min_examples, "min_examples", 1, 10_000, integer=True)
        if len(self.examples) > MAX_EXAMPLES:
            raise InvalidInput(f"That is {len(self.examples)} examples; one training takes at most {MAX_EXAMPLES}.")

    def model_role(self) -> str:
        return EMBEDDING.name

    def cost(self) -> int:
        return sum(estimate_tokens(e.text or "") for e in self.examples if e.vector is None) + 2

    def batch_key(self) -> tuple[Any, ...]:
        return (self.task, id(self))  # one server's training per batch


@dataclass(frozen=True)
class TrainedLabels:
    head: LinearHead | None  # None: nothing to learn yet (see `reason`)
    counts: dict[str, int]  # usable positive examples per label
    used: int  # examples trained on
    skipped: int  # examples with neither a vector of this model nor text
    seconds: float
    reason: str | None = None


@dataclass(frozen=True)
class EvaluateLabelsRequest(Request):
    """Cross-validate learned labels against zero-shot (embedding) on a server's own examples."""

    task = "evaluate_labels"
    worker = "bot.engine.tasks.learned_labels:EvaluateLabelsTask"
    labels: tuple[str, ...]
    prompts: tuple[str, ...]
    examples: tuple[Example, ...]
    min_examples: int
    folds: int = 5

    def validate(self) -> None:
        check_number(self.min_examples, "min_examples", 1, 10_000, integer=True)
        check_number(self.folds, "folds", 2, MAX_FOLDS, integer=True)
        _check_labels(self.labels, self.prompts, "embedding", "{}")

    def model_role(self) -> str:
        return EMBEDDING.name

    def cost(self) -> int:
        return sum(estimate_tokens(e.text or "") for e in self.examples if e.vector is None) + 2

    def batch_key(self) -> tuple[Any, ...]:
        return (self.task, id(self))


@dataclass(frozen=True)
class LabelEvaluation:
    labels: list[str]
    counts: list[int]  # usable positive examples per label
    learned_accuracy: float | None  # top-1 over held-out folds; None when no fold had a label to learn
    zero_shot_accuracy: float | None
    learned_recall: list[float | None]  # per label
    zero_shot_recall: list[float | None]
    confusion: list[list[int]]  # [true][predicted], learned method, held-out
    evaluated: int  # positive examples scored
    skipped: int
    model: str
    # Per example of the request, in its order: each label's score by a head trained without it (None: skipped).
    held_out: tuple[list[float] | None, ...] = ()


@dataclass(frozen=True)
class FineTuneRequest(Request):
    """A few optimizer steps of contrastive fine-tuning (bot/engine/finetune.py) on examples with text: one
    background unit. `state` is the previous unit's (b"": start); the bot sends units until `total_steps`."""

    task = "finetune_labels"
    worker = "bot.engine.tasks.learned_labels:FineTuneTask"
    texts: tuple[str, ...]
    labels: tuple[str, ...]  # per text
    state: bytes = b""
    step: int = 0
    steps: int = 4  # this unit's
    seed: int = 0

    def validate(self) -> None:
        check_number(self.steps, "steps", 1, 64, integer=True)
        if len(self.texts) != len(self.labels) or len(self.texts) > MAX_EXAMPLES:
            raise InvalidInput(f"Fine-tuning takes one label per text, and at most {MAX_EXAMPLES} texts.")
        if len(set(self.labels)) < 2:
            raise InvalidInput("Fine-tuning needs examples of at least two labels.")

    def model_role(self) -> str:
        return EMBEDDING.name

    def cost(self) -> int:
        return 2 * 16 * 32  # a step's pairs, about 32 tokens each, forward and backward

    def batch_key(self) -> tuple[Any, ...]:
        return (self.task, id(self))


@dataclass(frozen=True)
class FineTuneProgress:
    state: bytes
    step: int
    loss: float
    model: str


@dataclass(frozen=True)
class CompareEncodersRequest(Request):
    """The fine-tuned encoder against the frozen one, each with a linear head fitted on `train`'s examples and
    scored on the others (held out from fine-tuning too); then the head on the adapter for every example."""

    task = "compare_encoders"
    worker = "bot.engine.tasks.learned_labels:CompareEncodersTask"
    texts: tuple[str, ...]
    labels: tuple[str, ...]
    train: tuple[bool, ...]  # per text: the adapter and the heads were fitted on it
    state: bytes

    def validate(self) -> None:
        if not len(self.texts) == len(self.labels) == len(self.train):
            raise InvalidInput("Each text needs a label and a split.")

    def model_role(self) -> str:
        return EMBEDDING.name

    def cost(self) -> int:
        return sum(estimate_tokens(t) for t in self.texts) * 2 + 2

    def batch_key(self) -> tuple[Any, ...]:
        return (self.task, id(self))


@dataclass(frozen=True)
class FineTuned:
    adapter: bytes  # float32 low-rank factors, the only per-server weights
    head: LinearHead  # on the adapter's embeddings, fitted on every example
    finetuned_accuracy: float  # top-1 on the held-out examples
    linear_accuracy: float  # the frozen encoder's head on the same held-out examples
    evaluated: int  # held-out examples


# No commands of their own: the moderators' cogs ask and show them. They run on the embedding role.
register(TaskSpec(LabelMessageRequest, LabelMessageResult))
register(TaskSpec(TrainLabelsRequest, TrainedLabels))
register(TaskSpec(EvaluateLabelsRequest, LabelEvaluation))
register(TaskSpec(FineTuneRequest, FineTuneProgress))
register(TaskSpec(CompareEncodersRequest, FineTuned))
