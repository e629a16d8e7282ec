"""Learned labels without Discord: a server's training request built from its moderators' answers, keeping
what was trained, and the policy of when a background retraining is due. /labelset train (cogs/labelsets.py)
and the background retraining (cogs/learning.py) both train through here."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from .engine import Engine
from .engine.errors import InvalidInput
from .moderation import identical_labels, training_examples
from .policies import calibrate, evaluation, held_out_points, recalibrated
from .settings import Settings
from .specs.learned_labels import (
    NONE_OF_THESE,
    CompareEncodersRequest,
    Example,
    FineTuneRequest,
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
