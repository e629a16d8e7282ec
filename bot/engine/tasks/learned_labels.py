"""Learned labels in the worker: label messages with a server's head (zero-shot for the labels it has
not learned), fit heads, and cross-validate them on a server's examples.

The head is softmax regression on the embedding model's L2-normalised sentence embeddings, fitted
with L-BFGS in a fraction of a second on a CPU. Nothing is kept between requests: each request
carries its head or its examples (the bot's SQLite is the source of truth).
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Hashable, Sequence
from typing import Any

import torch

from ...specs.learned_labels import (
    LEARNED,
    NONE_OF_THESE,
    CompareEncodersRequest,
    EvaluateLabelsRequest,
    Example,
    FineTuned,
    FineTuneProgress,
    FineTuneRequest,
    LabelEvaluation,
    LabelMessageRequest,
    LabelMessageResult,
    LinearHead,
    TrainedLabels,
    TrainLabelsRequest,
)
from ...specs.zero_shot import EMBEDDING
from .. import finetune
from ..embeddings import Embedder
from ..errors import InvalidInput
from .base import Emit, Task
from .zero_shot import ZeroShotTask

L2 = 1e-4  # weight decay: enough to keep a few examples per label from being fitted to the last decimal
MAX_ITERATIONS = 200
SEED = 0  # fold assignment: the same examples give the same report


# --- tensors <-> bytes ---------------------------------------------------------------------


def to_bytes(tensor: torch.Tensor) -> bytes:
    return tensor.detach().to(torch.float32).contiguous().cpu().numpy().tobytes()


def from_bytes(data: bytes, dim: int) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.float32).view(-1, dim)


# --- the head ------------------------------------------------------------------------------


def fit_head(
    vectors: torch.Tensor, targets: torch.Tensor, positive: torch.Tensor, classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax regression. A positive row pulls its target class up (cross-entropy); a negative one
    ("not this label") pushes its class down (-log(1 - p)). Classes are weighted by their number of
    positives, so a label tagged ten times as often does not drown the others."""
    counts = torch.bincount(targets[positive], minlength=classes).clamp(min=1).to(torch.float32)
    weight = torch.where(positive, (len(targets) / (classes * counts))[targets], torch.ones(len(targets)))
    weights = torch.zeros(classes, vectors.shape[1], requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weights, bias], max_iter=MAX_ITERATIONS, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        log_p = torch.log_softmax(vectors @ weights.T + bias, dim=-1).gather(1, targets[:, None]).squeeze(1)
        # log(1 - p) = log(-expm1(log p)), stable for p near 1
        per_row = torch.where(positive, -log_p, -torch.log(-torch.expm1(log_p.clamp(max=-1e-6))))
        value = (weight * per_row).sum() / weight.sum() + L2 * weights.pow(2).sum()
        value.backward()
        return value

    with torch.enable_grad():
        optimizer.step(loss)
    return weights.detach(), bias.detach()


def train(
    labels: Sequence[str], examples: Sequence[Example], vectors: torch.Tensor, min_examples: int, model: str
) -> tuple[LinearHead | None, dict[str, int], int, str | None]:
    """(head, positives per label, rows trained on, why there is no head). `vectors` row i belongs to examples[i]."""
    counts = {label: 0 for label in labels}
    for example in examples:
        if example.positive and example.label in counts:
            counts[example.label] += 1
    learned = [label for label in labels if counts[label] >= min_examples]
    nones = any(e.positive and e.label == NONE_OF_THESE for e in examples)
    classes = learned + [NONE_OF_THESE] * nones
    if not learned:
        return None, counts, 0, f"no label has {min_examples} examples yet"
    if len(classes) < 2:
        return (
            None,
            counts,
            0,
            (
                "only one label has enough examples and nothing says what is not it: "
                "tag examples of a second label, or answer “None of these”"
            ),
        )
    index = {label: i for i, label in enumerate(classes)}
    rows = [i for i, e in enumerate(examples) if e.label in index]
    targets = torch.tensor([index[examples[i].label] for i in rows])
    positive = torch.tensor([examples[i].positive for i in rows])
    weights, bias = fit_head(vectors[rows], targets, positive, len(classes))
    return (
        LinearHead(tuple(classes), to_bytes(weights), to_bytes(bias), vectors.shape[1], model),
        counts,
        len(rows),
        None,
    )


def head_probabilities(head: LinearHead, vectors: torch.Tensor) -> torch.Tensor:
    weights, bias = from_bytes(head.weights, head.dim), from_bytes(head.bias, len(head.classes))[0]
    return torch.softmax(vectors @ weights.T + bias, dim=-1)


def combine(
    labels: Sequence[str],
    head: LinearHead | None,
    head_row: torch.Tensor | None,
    zero_shot: Sequence[float] | None,
    zero_shot_method: str,
) -> tuple[list[float], list[str]]:
    """Scores per label on one scale. Zero-shot scores the labels the head has not learned, and the mass it
    gives them is theirs; the head shares the rest among its labels (its "None of these" share goes
    to no label). With every label learned, the head's probabilities are the scores."""
    index = {label: i for i, label in enumerate(head.classes)} if head is not None else {}
    unlearned = sum(p for label, p in zip(labels, zero_shot) if label not in index) if zero_shot is not None else 0.0
    scores, methods = [], []
    for k, label in enumerate(labels):
        if label in index:
            scores.append((1.0 - unlearned) * float(head_row[index[label]]))
            methods.append(LEARNED)
        else:
            scores.append(float(zero_shot[k]))
            methods.append(zero_shot_method)
    return scores, methods


# --- tasks -----------------------------------------------------------------------------------


class LabelMessageTask(Task):
    def __init__(self, registry: Any, model: str = "") -> None:
        super().__init__(registry, model)
        self.embedder = Embedder(registry, EMBEDDING.name)
        self.nli = ZeroShotTask(registry)

    def preprocess(self, loaded: None, requests: list[LabelMessageRequest]) -> list[str]:
        return [r.text for r in requests]

    def forward(self, loaded: None, texts: list[str], emit: Emit) -> torch.Tensor:
        return self.embedder.embed(texts)

    def postprocess(
        self, loaded: None, vectors: torch.Tensor, requests: list[LabelMessageRequest]
    ) -> list[LabelMessageResult]:
        model = self.embedder.loaded.model_id
        # A head for another model or size (the embedding model changed since training) is not used.
        requests = [
            r
            if r.head is None or (r.head.model, r.head.dim) == (model, vectors.shape[1])
            else dataclasses.replace(r, head=None, encoder=None)
            for r in requests
        ]
        zero_shot = self._zero_shot(requests, vectors)
        results = []
        for r, vector, zs in zip(requests, vectors, zero_shot):
            head_row = head_probabilities(r.head, self._head_vector(r, vector)[None])[0] if r.head is not None else None
            scores, methods = combine(r.labels, r.head, head_row, zs, r.method)
            order = sorted(range(len(scores)), key=lambda i: -scores[i])
            results.append(
                LabelMessageResult(
                    r.text,
                    [r.labels[i] for i in order],
                    [scores[i] for i in order],
                    [methods[i] for i in order],
                    model,
                    to_bytes(vector),
                    r.labels[max(range(len(zs)), key=zs.__getitem__)] if r.head is not None and zs else None,
                )
            )
        return results

    def _head_vector(self, request: LabelMessageRequest, vector: torch.Tensor) -> torch.Tensor:
        """What the head reads: the message through the server's fine-tuned adapter where it has one; the
        zero-shot part and the kept vector stay the base model's, which examples and prompts share."""
        if request.encoder is None:
            return vector
        adapter = finetune.adapter_from_bytes(request.encoder, self.embedder.loaded.model)
        return finetune.embed_all(self.embedder.loaded, [request.text], adapter)[0]

    def _zero_shot(self, requests: list[LabelMessageRequest], vectors: torch.Tensor) -> list[list[float] | None]:
        """Zero-shot scores in each request's label order (None where every label is learned, but with the
        embedding method: there it is one product with cached label vectors, and it tells a disagreeing head)."""
        if requests[0].method == "embedding":  # one method per batch (batch key): reuse the text vectors
            return [
                self.embedder.to_scores(
                    vector @ self.embedder.label_embeddings(r.zero_shot_of_all().hypotheses()).T, False
                ).tolist()
                for r, vector in zip(requests, vectors)
            ]
        parts = [r.zero_shot() for r in requests]
        wanted = [part for part in parts if part is not None]
        ranked = iter(self.nli.run(wanted, lambda *_: None) if wanted else [])
        out: list[list[float] | None] = []
        for part in parts:
            if part is None:
                out.append(None)
                continue
            result = next(ranked)
            by_prompt = dict(zip(result.labels, result.scores))
            out.append([by_prompt[prompt] for prompt in part.labels])
        return out


class _ExamplesTask(Task):
    """Tasks that read a server's examples: vectors kept for this model are used as they are, the others
    are embedded from their text; an example with neither is skipped."""

    trains = True

    def __init__(self, registry: Any, model: str = "") -> None:
        super().__init__(registry, model)
        self.embedder = Embedder(registry, EMBEDDING.name)

    def vectors(self, examples: Sequence[Example]) -> tuple[list[Example], torch.Tensor, int]:
        """(usable examples, their vectors, how many were skipped)."""
        model = self.embedder.loaded.model_id
        dim = self.embedder.loaded.config.hidden_size
        usable = [e for e in examples if usable_example(e, model)]
        texts = [e.text for e in usable if not (e.vector is not None and e.vector_model == model)]
        embedded = iter(self.embedder.embed(texts)) if texts else iter(())
        rows = [
            from_bytes(e.vector, dim)[0] if e.vector is not None and e.vector_model == model else next(embedded)
            for e in usable
        ]
        return usable, torch.stack(rows) if rows else torch.empty(0, dim), len(examples) - len(usable)

    def preprocess(self, loaded: None, requests: list[Any]) -> list[Any]:
        return requests

    def postprocess(self, loaded: None, outputs: list[Any], requests: list[Any]) -> list[Any]:
        return outputs


class TrainLabelsTask(_ExamplesTask):
    def forward(self, loaded: None, requests: list[TrainLabelsRequest], emit: Emit) -> list[TrainedLabels]:
        out = []
        for r in requests:
            started = time.perf_counter()
            examples, vectors, skipped = self.vectors(r.examples)
            head, counts, used, reason = train(
                r.labels, examples, vectors, r.min_examples, self.embedder.loaded.model_id
            )
            out.append(TrainedLabels(head, counts, used, skipped, time.perf_counter() - started, reason))
        return out


class EvaluateLabelsTask(_ExamplesTask):
    def forward(self, loaded: None, requests: list[EvaluateLabelsRequest], emit: Emit) -> list[LabelEvaluation]:
        return [self.evaluate(r) for r in requests]

    def evaluate(self, r: EvaluateLabelsRequest) -> LabelEvaluation:
        model = self.embedder.loaded.model_id
        examples, vectors, skipped = self.vectors(r.examples)
        zero_shot = self.embedder.to_scores(vectors @ self.embedder.label_embeddings(r.prompts).T, False)
        label_index = {label: i for i, label in enumerate(r.labels)}
        scored = [i for i, e in enumerate(examples) if e.positive and e.label in label_index]
        # Every example is held out once, answers that a message is not a label too: calibrated policies
        # (bot/policies.py) read the precision of each label's held-out scores from them.
        folds = stratified_folds([(e.label, e.positive) for e in examples], r.folds)
        held_out: list[list[float]] = [[] for _ in examples]
        learned_any = False
        for fold in range(r.folds):
            held = [i for i in range(len(examples)) if folds[i] == fold]
            if not held:
                continue
            keep = [i for i in range(len(examples)) if folds[i] != fold]
            head, _, _, _ = train(r.labels, [examples[i] for i in keep], vectors[keep], r.min_examples, model)
            for i in held:
                head_row = head_probabilities(head, vectors[i][None])[0] if head is not None else None
                held_out[i], methods = combine(r.labels, head, head_row, zero_shot[i].tolist(), "embedding")
                learned_any |= LEARNED in methods and examples[i].positive
        truth = [label_index[examples[i].label] for i in scored]
        learned_pred = [max(range(len(r.labels)), key=held_out[i].__getitem__) for i in scored]
        zero_shot_pred = [int(zero_shot[i].argmax()) for i in scored]
        confusion = [[0] * len(r.labels) for _ in r.labels]
        for t, p in zip(truth, learned_pred):
            confusion[t][p] += 1
        counts = [truth.count(i) for i in range(len(r.labels))]
        rows = iter(held_out)
        return LabelEvaluation(
            labels=list(r.labels),
            counts=counts,
            learned_accuracy=accuracy(truth, learned_pred) if learned_any else None,
            zero_shot_accuracy=accuracy(truth, zero_shot_pred),
            learned_recall=recall(truth, learned_pred, len(r.labels)),
            zero_shot_recall=recall(truth, zero_shot_pred, len(r.labels)),
            confusion=confusion,
            evaluated=len(scored),
            skipped=skipped,
            model=model,
            held_out=tuple(next(rows) if usable_example(e, model) else None for e in r.examples),
        )


class FineTuneTask(_ExamplesTask):
    def forward(self, loaded: None, requests: list[FineTuneRequest], emit: Emit) -> list[FineTuneProgress]:
        model = self.embedder.loaded
        out = []
        for r in requests:
            try:
                state = finetune.state_from_bytes(r.state, model.model) if r.state else None
            except ValueError:
                raise InvalidInput("The embedding model changed during fine-tuning: start it again.") from None
            trainer = finetune.Trainer(model, state or finetune.Trainer.initial(model, r.seed), r.step)
            for _ in range(r.steps):
                loss = trainer.train_step(r.texts, r.labels, r.seed)
            out.append(FineTuneProgress(finetune.adapter_bytes(trainer.state()), trainer.step, loss, model.model_id))
        return out


class CompareEncodersTask(_ExamplesTask):
    def forward(self, loaded: None, requests: list[CompareEncodersRequest], emit: Emit) -> list[FineTuned]:
        return [self.compare(r) for r in requests]

    def compare(self, r: CompareEncodersRequest) -> FineTuned:
        model = self.embedder.loaded
        try:
            state = finetune.state_from_bytes(r.state, model.model)
        except ValueError:
            raise InvalidInput("The embedding model changed during fine-tuning: start it again.") from None
        adapter = state[: len(state) // 3]
        classes = list(dict.fromkeys(r.labels))
        examples = [Example(label, True) for label in r.labels]
        fitted = [i for i, train_on in enumerate(r.train) if train_on]
        held = [i for i, train_on in enumerate(r.train) if not train_on]
        truth = [classes.index(r.labels[i]) for i in held]

        def held_out_accuracy(vectors: torch.Tensor) -> float:
            head, *_ = train(classes, [examples[i] for i in fitted], vectors[fitted], 1, model.model_id)
            predicted = head_probabilities(head, vectors[held]).argmax(-1).tolist() if head is not None else []
            return accuracy(truth, [classes.index(head.classes[p]) for p in predicted]) or 0.0

        base = finetune.embed_all(model, r.texts, None)
        tuned = finetune.embed_all(model, r.texts, adapter)
        head, *_ = train(classes, examples, tuned, 1, model.model_id)
        return FineTuned(
            finetune.adapter_bytes(adapter), head, held_out_accuracy(tuned), held_out_accuracy(base), len(held)
        )


def usable_example(example: Example, model: str) -> bool:
    """An example can be scored when it kept a vector of this model or its text."""
    return (example.vector is not None and example.vector_model == model) or bool(example.text)


def stratified_folds(labels: Sequence[Hashable], folds: int) -> list[int]:
    """A fold per item: each label's items dealt round-robin after a seeded shuffle."""
    out = [0] * len(labels)
    rng = random.Random(SEED)
    for label in dict.fromkeys(labels):
        members = [i for i, other in enumerate(labels) if other == label]
        rng.shuffle(members)
        for position, i in enumerate(members):
            out[i] = position % folds
    return out


def accuracy(truth: Sequence[int], predicted: Sequence[int]) -> float | None:
    return sum(t == p for t, p in zip(truth, predicted)) / len(truth) if truth else None


def recall(truth: Sequence[int], predicted: Sequence[int], classes: int) -> list[float | None]:
    return [
        accuracy([t for t in truth if t == c], [p for t, p in zip(truth, predicted) if t == c]) for c in range(classes)
    ]
