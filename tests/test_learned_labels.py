"""Learned labels in the worker: the head's fit and scores (plain torch, in this process), and the
three tasks through the real worker process on the tiny embedding model."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
import torch

from bot.engine import Engine, InvalidInput
from bot.engine.tasks.learned_labels import combine, head_probabilities, stratified_folds, train
from bot.specs.learned_labels import (
    LEARNED,
    MAX_EXAMPLES,
    NONE_OF_THESE,
    EvaluateLabelsRequest,
    Example,
    LabelMessageRequest,
    TrainLabelsRequest,
)

TIMEOUT = 120.0
LABELS = ("spam", "question", "bug")


def clusters(per_label: int, dim: int = 8) -> tuple[list[Example], torch.Tensor]:
    """Unit vectors around one axis per label: an easy, known problem."""
    generator = torch.Generator().manual_seed(0)
    rows, examples = [], []
    for k, label in enumerate(LABELS):
        for _ in range(per_label):
            rows.append(
                torch.nn.functional.one_hot(torch.tensor(k), dim).float() + 0.2 * torch.randn(dim, generator=generator)
            )
            examples.append(Example(label, True))
    return examples, torch.nn.functional.normalize(torch.stack(rows), dim=-1)


def test_the_head_learns_separable_labels_and_leaves_the_rest_to_zero_shot() -> None:
    examples, vectors = clusters(6)
    head, counts, used, reason = train(LABELS + ("off-topic",), examples, vectors, 5, "m")
    assert (
        reason is None
        and head.labels == LABELS
        and counts == {"spam": 6, "question": 6, "bug": 6, "off-topic": 0}
        and used == 18
    )
    predicted = head_probabilities(head, vectors).argmax(-1)
    assert predicted.tolist() == [k for k in range(3) for _ in range(6)]

    row = head_probabilities(head, vectors[:1])[0]
    scores, methods = combine(LABELS + ("off-topic",), head, row, [0.1, 0.2, 0.3, 0.4], "embedding")
    assert methods == [LEARNED] * 3 + ["embedding"]
    assert scores[3] == pytest.approx(0.4)  # zero-shot keeps its share for the label it scores ...
    assert sum(scores[:3]) == pytest.approx(0.6, abs=1e-5) and scores[0] > 0.5  # ... the head divides the rest
    assert combine(LABELS, head, row, None, "embedding")[0] == pytest.approx(
        row.tolist()
    )  # all learned: the head's probabilities


def test_not_this_and_none_of_these_push_scores_down() -> None:
    examples, vectors = clusters(6)
    doubtful = torch.nn.functional.normalize(vectors[0] + vectors[6], dim=0)  # between spam and question
    plain, *_ = train(LABELS, examples, vectors, 5, "m")
    taught, *_ = train(LABELS, [*examples, Example("spam", False)], torch.cat([vectors, doubtful[None]]), 5, "m")
    spam = LABELS.index("spam")
    assert (
        head_probabilities(taught, doubtful[None])[0, spam] < head_probabilities(plain, doubtful[None])[0, spam] - 0.1
    )

    nones, *_ = train(LABELS, [*examples, Example(NONE_OF_THESE, True)], torch.cat([vectors, doubtful[None]]), 5, "m")
    assert nones.classes == (*LABELS, NONE_OF_THESE)
    row = head_probabilities(nones, doubtful[None])[0]
    scores, _ = combine(LABELS, nones, row, None, "embedding")
    assert (
        sum(scores) == pytest.approx(1 - float(row[-1]), abs=1e-5) and float(row[-1]) > 0.5
    )  # mostly "none": no label wins


def test_nothing_to_learn_says_why() -> None:
    examples, vectors = clusters(6)
    assert train(LABELS, examples[:4], vectors[:4], 5, "m")[3] == "no label has 5 examples yet"
    assert "only one label has enough examples" in train(LABELS, examples[:6], vectors[:6], 5, "m")[3]
    head, *_ = train(LABELS, [*examples[:6], Example(NONE_OF_THESE, True)], vectors[:7], 5, "m")
    assert head.classes == ("spam", NONE_OF_THESE)  # one label and what is not it: enough


def test_folds_are_stratified_and_seeded() -> None:
    labels = ["a"] * 7 + ["b"] * 3
    folds = stratified_folds(labels, 3)
    assert folds == stratified_folds(labels, 3)
    assert sorted(folds[:7]) == [0, 0, 0, 1, 1, 2, 2] and sorted(folds[7:]) == [0, 1, 2]


def test_requests_refuse_bad_input() -> None:
    with pytest.raises(InvalidInput, match="one prompt"):
        LabelMessageRequest("hi", ("a", "b"), ("a",)).validate()
    with pytest.raises(InvalidInput, match="given twice"):
        LabelMessageRequest("hi", ("a", "b"), ("same", "same")).validate()
    with pytest.raises(InvalidInput, match="at most"):
        TrainLabelsRequest(("a",), (Example("a", True, "x"),) * (MAX_EXAMPLES + 1), 5).validate()
    with pytest.raises(InvalidInput, match="folds"):
        EvaluateLabelsRequest(("a", "b"), ("a", "b"), (), 5, folds=1).validate()


# --- through the worker ---------------------------------------------------------------------------


async def submit(engine: Engine, request: object) -> object:
    return await asyncio.wait_for(engine.submit(request, user="learned-labels-test"), TIMEOUT)


async def test_train_label_and_evaluate_in_the_worker(tiny_engine: Engine, tiny_models: dict[str, Path]) -> None:
    model = str(tiny_models["embedding"])
    zero_shot = await submit(tiny_engine, LabelMessageRequest("free nitro here", LABELS, LABELS))
    assert zero_shot.methods == ["embedding"] * 3 and len(zero_shot.vector) == 4 * 64 and zero_shot.model == model

    texts = {
        "spam": ["free nitro here", "claim your prize now"],
        "question": ["how do I log in?", "where are the rules?"],
    }
    examples = [Example(label, True, text) for label, group in texts.items() for text in group]
    # An example kept as a vector only (store_text off) is used as it is; one of another model without text is skipped.
    examples += [
        Example("bug", True, None, zero_shot.vector, model),
        Example("bug", True, None, zero_shot.vector, "other-model"),
        Example("bug", True, "the app crashes"),
    ]
    trained = await submit(tiny_engine, TrainLabelsRequest(LABELS, tuple(examples), 2))
    assert trained.head.labels == LABELS and trained.used == 6 and trained.skipped == 1 and trained.head.model == model

    learned = await submit(tiny_engine, LabelMessageRequest("free nitro here", LABELS, LABELS, head=trained.head))
    assert (
        learned.methods == [LEARNED] * 3
        and learned.labels[0] == "spam"
        and sum(learned.scores) == pytest.approx(1, abs=1e-5)
    )
    # Zero-shot is still run beside a head that learned every label: "Help me learn" asks where they disagree.
    assert zero_shot.zero_shot_label is None and learned.zero_shot_label == zero_shot.labels[0]
    other = dataclasses.replace(trained.head, model="other-model")
    stale = await submit(tiny_engine, LabelMessageRequest("free nitro here", LABELS, LABELS, head=other))
    assert stale.methods == ["embedding"] * 3  # a head for another embedding model is not used

    evaluation = await submit(tiny_engine, EvaluateLabelsRequest(LABELS, LABELS, tuple(examples), 1, folds=2))
    assert evaluation.counts == [2, 2, 2] and evaluation.evaluated == 6 and evaluation.skipped == 1
    assert sum(map(sum, evaluation.confusion)) == 6 and 0 <= evaluation.learned_accuracy <= 1
    # Every example is scored once by a head that did not see it (bot/policies.py calibrates on them); skipped: None.
    held_out = [scores is not None for scores in evaluation.held_out]
    assert held_out == [example.text is not None or example.vector_model == model for example in examples]
    assert all(len(scores) == 3 and sum(scores) <= 1 + 1e-5 for scores in evaluation.held_out if scores)
