"""Learned labels without Discord: a server's training request built from its moderators' answers, keeping
what was trained, and the policy of when a background retraining is due. /labelset train (cogs/labelsets.py)
and the background retraining (cogs/learning.py) both train through here."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from .moderation import identical_labels, training_examples
from .settings import Settings
from .specs.learned_labels import Example, TrainedLabels, TrainLabelsRequest
from .specs.zero_shot import EMBEDDING
from .storage import GuildConfig, LabelModel, ModerationStore


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
