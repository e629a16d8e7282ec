"""Learned labels without Discord: a server's training request built from its moderators' answers, keeping
what was trained, and the policy of when a background retraining is due. /labelset train (cogs/labelsets.py)
and the background retraining (cogs/learning.py) both train through here."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .engine import Engine, Request
from .engine.errors import InvalidInput
from .moderation import identical_labels, label_prompt, require_labels, training_examples
from .policies import calibrate, evaluation, held_out_points, recalibrated
from .reply import bar
from .settings import Settings
from .specs.learned_labels import (
    NONE_OF_THESE,
    CompareEncodersRequest,
    EvaluateLabelsRequest,
    Example,
    FineTuneRequest,
    LabelEvaluation,
    TrainedLabels,
    TrainLabelsRequest,
)
from .specs.zero_shot import EMBEDDING
from .storage import FineTunedEncoder, GuildConfig, LabelModel, ModerationStore, Policy, PolicyStore

FINETUNE_STEPS = 48  # optimizer steps of 16 pairs (bench/finetune.py measures accuracy and time)
STEPS_PER_UNIT = 2  # a background unit: an interactive request waits for at most this many steps
HELD_OUT_EVERY = 5  # each label's every 5th example is held out of fine-tuning, to compare the encoders on
NEEDS_TEXT = (
    "Fine-tuning learns from the text of tagged messages, and this server does not store it "
    "(/labelset store_text). Learned labels still work from the kept embeddings."
)


@dataclass(frozen=True)
class Training:
    """A server's training request, with what it was built from."""

    guild_id: int
    config: GuildConfig
    pairs: Sequence[tuple[int, Example]]  # (message id, example) as read
    until: float  # examples created up to this time were read
    request: TrainLabelsRequest

    @property
    def identical(self) -> list[tuple[str, str]]:
        return identical_labels(self.pairs, self.config)


async def prepare(store: ModerationStore, guild_id: int, min_examples: int) -> Training:
    config = await store.config(guild_id)
    until = time.time()
    pairs = await store.examples(guild_id)
    request = TrainLabelsRequest(
        tuple(label.name for label in config.labels), training_examples(pairs, config), min_examples
    )
    return Training(guild_id, config, pairs, until, request)


async def keep(store: ModerationStore, training: Training, trained: TrainedLabels) -> None:
    """Store the trained head with the label set it was trained on (the embedding model is in the head)."""
    if trained.head is not None:
        model = LabelModel(trained.head, training.config.label_set, trained.used, training.until, time.time())
        await store.save_model(training.guild_id, model)


async def recalibrate(
    engine: Engine, store: ModerationStore, policies: PolicyStore, guild_id: int, min_examples: int
) -> list[tuple[Policy, Policy]]:
    """After a retraining, each policy's threshold derived again at its asked precision on the server's examples
    now (bot/policies.py, as /policy set does); a policy whose precision can't be met is paused (log only) until a
    retraining meets it again. The policies changed, (before, after); a policy of a removed label is left as is."""
    current = await policies.policies(guild_id)
    if not current:
        return []  # no cross-validation to pay for
    config = await store.config(guild_id)
    pairs, request = evaluation(await store.examples(guild_id), config, min_examples)
    result = await engine.submit(request, user=f"guild:{guild_id}", background=True)
    changed = []
    for before in current:
        if config.label(before.label) is None:
            continue
        points = held_out_points(pairs, result.held_out, result.labels, before.label)
        after = recalibrated(before, calibrate(points, before.target_precision))
        if after != before and await policies.recalibrate(before, after):
            changed.append((before, after))
    return changed


async def due(store: ModerationStore, guild_id: int, settings: Settings) -> bool:
    """Due when the label set or the embedding model changed since the last training, when a label has just
    reached enough examples to be learned, or after RETRAIN_EVERY new answers."""
    config, model = await store.config(guild_id), await store.label_model(guild_id)
    counts = await store.example_counts(guild_id)
    learnable = {
        label.name.casefold()
        for label in config.labels
        if counts.get(label.name.casefold(), 0) >= settings.min_examples
    }
    if model is None or not model.fits(config, settings.engine.models[EMBEDDING.name]):
        return bool(learnable)
    if not learnable <= {label.casefold() for label in model.head.labels}:
        return True
    return await store.new_examples(guild_id, model.examples_until) >= settings.retrain_every


@dataclass(frozen=True)
class FineTuning:
    """A server's fine-tuning: its examples with text, and which of them it trains on (the rest are held out)."""

    config: GuildConfig
    texts: tuple[str, ...]
    labels: tuple[str, ...]
    train: tuple[bool, ...]


async def plan_finetune(store: ModerationStore, guild_id: int, min_examples: int) -> FineTuning:
    """Raises InvalidInput, saying what is missing, when the server cannot fine-tune."""
    config = await store.config(guild_id)
    if not config.store_text:
        raise InvalidInput(NEEDS_TEXT)
    names = {label.name for label in config.labels}
    rows = [
        (e.text, e.label)
        for _, e in await store.examples(guild_id)
        if e.positive and e.text and e.label in names and e.label != NONE_OF_THESE
    ]
    texts, labels = finetune_examples(rows, min_examples)
    seen: dict[str, int] = {}
    train = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        train.append(seen[label] % HELD_OUT_EVERY != 0)
    return FineTuning(config, texts, labels, tuple(train))


async def finetune(
    engine: Engine, store: ModerationStore, guild_id: int, plan: FineTuning, steps: int = FINETUNE_STEPS
) -> FineTunedEncoder:
    """Fine-tune the embedding model on the plan's training examples in background units of STEPS_PER_UNIT
    steps, then compare it with the frozen encoder on the held-out ones, and keep it."""
    fitted = [i for i, keep in enumerate(plan.train) if keep]
    user = f"guild:{guild_id}"
    started = time.perf_counter()
    state, step = b"", 0
    while step < steps:
        request = FineTuneRequest(
            tuple(plan.texts[i] for i in fitted),
            tuple(plan.labels[i] for i in fitted),
            state,
            step,
            min(STEPS_PER_UNIT, steps - step),
        )
        progress = await engine.submit(request, user=user, background=True)
        state, step = progress.state, progress.step
    compare = CompareEncodersRequest(plan.texts, plan.labels, plan.train, state)
    tuned = await engine.submit(compare, user=user, background=True)
    encoder = FineTunedEncoder(
        tuned.adapter,
        tuned.head,
        plan.config.label_set,
        tuned.finetuned_accuracy,
        tuned.linear_accuracy,
        tuned.evaluated,
        time.perf_counter() - started,
        time.time(),
    )
    await store.save_encoder(guild_id, encoder)
    return encoder


def finetune_examples(rows: Sequence[tuple[str, str]], min_examples: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(texts, labels) of the labels with at least `min_examples` texts; InvalidInput when fewer than two have."""
    counts: dict[str, int] = {}
    for _, label in rows:
        counts[label] = counts.get(label, 0) + 1
    learnable = {label for label, n in counts.items() if n >= max(min_examples, HELD_OUT_EVERY)}
    if len(learnable) < 2:
        raise InvalidInput(
            f"Fine-tuning needs at least two labels with {max(min_examples, HELD_OUT_EVERY)} tagged messages "
            "whose text was stored; tag more messages, then try again."
        )
    kept = [(text, label) for text, label in rows if label in learnable]
    return tuple(text for text, _ in kept), tuple(label for _, label in kept)


# --- the report and the learning curve ---------------------------------------------------------

CURVE_FOLDS = 5  # as the report's cross-validation; fewer where a point has fewer examples per label
CURVE_START = 2  # the fewest examples per label a cross-validated head can be measured on (one held out)
TOO_FEW_FOR_CURVE = (
    f"too few examples for a learning curve: it needs two labels with at least {CURVE_START} tagged messages each"
)


def report_request(
    config: GuildConfig, pairs: Sequence[tuple[int, Example]], min_examples: int
) -> EvaluateLabelsRequest:
    """/labelset report's cross-validation of learned labels against zero-shot; InvalidInput says what is missing."""
    if len(require_labels(config)) < 2:
        raise InvalidInput("The report compares labels with each other: add at least two labels with /labelset add.")
    examples = training_examples(pairs, config)
    if not any(e.positive and e.label != NONE_OF_THESE for e in examples):
        raise InvalidInput(
            "There are no examples yet. Tag messages with “Tag message” (or answer reviews), then ask again."
        )
    return EvaluateLabelsRequest(
        tuple(label.name for label in config.labels),
        tuple(label_prompt(label) for label in config.labels),
        examples,
        min_examples,
    )


@dataclass(frozen=True)
class CurvePoint:
    per_label: int  # each label's newest examples, this many
    labels: int  # the labels that have that many (the others sit this point out)
    accuracy: float | None  # the linear head's top-1, cross-validated on these examples
    zero_shot: float | None  # zero-shot's top-1 on the same examples
    evaluated: int  # examples scored (those without a vector of the model nor text are skipped)


@dataclass(frozen=True)
class LearningCurve:
    points: tuple[CurvePoint, ...]  # empty: too few examples
    examples: int  # moderators' tags of the label set
    from_questions: int  # of them, answers to "Help me learn" questions still on record (the last 24 hours)


def curve_sizes(counts: Sequence[int]) -> list[int]:
    """Examples per label: 2, 4, 8, … while at least two labels have that many, then the most two labels have."""
    most = sorted(counts)[-2] if len(counts) >= 2 else 0
    sizes = []
    size = CURVE_START
    while size <= most:
        sizes.append(size)
        size *= 2
    if sizes and sizes[-1] != most:
        sizes.append(most)
    return sizes


def curve_requests(
    config: GuildConfig, pairs: Sequence[tuple[int, Example]]
) -> list[tuple[int, EvaluateLabelsRequest]]:
    """One cross-validation per point of the curve, on each label's newest examples (as /labelset report
    evaluates, with a head wherever a label has an example to train on)."""
    by_label: dict[str, list[Example]] = {}
    for e in training_examples(pairs, config):  # newest first, as stored
        if e.positive and e.label != NONE_OF_THESE:
            by_label.setdefault(e.label, []).append(e)
    prompts = {label.name: label_prompt(label) for label in config.labels}
    requests = []
    for size in curve_sizes([len(examples) for examples in by_label.values()]):
        names = tuple(name for name in prompts if len(by_label.get(name, ())) >= size)
        requests.append(
            (
                size,
                EvaluateLabelsRequest(
                    names,
                    tuple(prompts[name] for name in names),
                    tuple(e for name in names for e in by_label[name][:size]),
                    1,
                    min(CURVE_FOLDS, size),
                ),
            )
        )
    return requests


async def learning_curve(
    submit: Callable[[Request], Awaitable[Any]],
    config: GuildConfig,
    pairs: Sequence[tuple[int, Example]],
    asked: set[int],
) -> LearningCurve:
    """Accuracy at increasing examples per label; `submit` runs a request on the engine, `asked` are the
    messages "Help me learn" asked about (ModerationStore.asked_messages)."""
    points = []
    for size, request in curve_requests(config, pairs):  # one at a time: a member's queue holds few requests
        evaluation: LabelEvaluation = await submit(request)
        points.append(
            CurvePoint(
                size,
                len(request.labels),
                evaluation.learned_accuracy,
                evaluation.zero_shot_accuracy,
                evaluation.evaluated,
            )
        )
    names = {label.name.casefold() for label in config.labels}
    tagged = [(m, e) for m, e in pairs if e.positive and e.label.casefold() in names]
    return LearningCurve(tuple(points), len(tagged), sum(m in asked for m, _ in tagged))


def percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def render_curve(curve: LearningCurve) -> str:
    """The curve as a few lines (a field of /labelset report; the console's /learning)."""
    if not curve.points:
        return TOO_FEW_FOR_CURVE[0].upper() + TOO_FEW_FOR_CURVE[1:] + "."
    width = len(str(curve.points[-1].per_label))
    most = max(point.labels for point in curve.points)
    lines = [
        f"`{str(p.per_label).rjust(width)} per label {bar(p.accuracy or 0.0)}` **{percent(p.accuracy)}**"
        f" · zero-shot {percent(p.zero_shot)}" + (f" · {p.labels} labels" if p.labels < most else "")
        for p in curve.points
    ]
    lines.append(
        f"{curve.from_questions} of {curve.examples} examples answer “Help me learn” questions of the last 24 hours."
    )
    return "\n".join(lines)
