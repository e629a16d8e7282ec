"""The fine-tuned encoder per server (bot/engine/finetune.py) through the real worker process on the tiny
embedding model and a real SQLite file: trained in background units that interactive requests overtake,
compared with the linear head on held-out examples, stored and read back, used only where it did better."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.engine import Engine, InvalidInput
from bot.learning import FineTuning, finetune, finetune_examples
from bot.moderation import label_request
from bot.specs.learned_labels import LEARNED, FineTuneRequest, LabelMessageRequest, LinearHead
from bot.storage import FineTunedEncoder, GuildConfig, Label, LabelModel, Storage

TIMEOUT = 120.0
GUILD = 5
TEXTS = {
    "spam": ["free nitro click here", "cheap followers buy now", "win a phone at this link", "claim your prize"] * 2,
    "question": ["how do I reset my password?", "where are the rules?", "can someone help me log in?", "why?"] * 2,
}
CONFIG = GuildConfig(labels=(Label("question"), Label("spam")), store_text=True)


def database_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'bot.db'}"


def plan() -> FineTuning:
    rows = [(text, label) for label, texts in TEXTS.items() for text in texts]
    texts, labels = finetune_examples(rows, 2)
    return FineTuning(CONFIG, texts, labels, tuple(i % 4 != 0 for i in range(len(texts))))


@pytest.fixture
async def store(tmp_path: Path) -> Storage:
    storage = Storage(database_url(tmp_path))
    await storage.open()
    yield storage
    await storage.close()


async def test_fine_tuning_runs_in_background_units_that_people_overtake(
    tiny_engine: Engine, tiny_models: dict[str, Path], store: Storage, tmp_path: Path
) -> None:
    model = str(tiny_models["embedding"])
    units = tiny_engine.scheduler.metrics.batch_sizes["finetune_labels"]  # one entry per unit
    units_before = len(units)
    training = asyncio.create_task(finetune(tiny_engine, store.moderation, GUILD, plan(), steps=60))
    while len(units) == units_before:
        await asyncio.sleep(0.01)
    # A person's request while fine-tuning runs is served between two of its units, long before it ends.
    served = await asyncio.wait_for(
        tiny_engine.submit(LabelMessageRequest("free nitro", ("spam", "question"), ("spam", "question")), user="p"),
        TIMEOUT,
    )
    assert served.labels and not training.done()
    encoder = await asyncio.wait_for(training, TIMEOUT)
    assert len(units) - units_before == 30  # 60 steps, 2 per unit

    # Stored, and read back from the SQLite file as it was kept.
    again = Storage(database_url(tmp_path))
    await again.open()
    try:
        assert await again.moderation.encoder(GUILD) == encoder
    finally:
        await again.close()
    assert encoder.head.model == model and set(encoder.head.labels) == {"spam", "question"}
    assert encoder.evaluated == 4 and 0 <= encoder.linear_accuracy <= 1 and 0 <= encoder.finetuned_accuracy <= 1
    assert len(encoder.adapter) == 2 * 2 * (4 * 64 + 64 * 4) * 4  # 2 layers x (query, value) x rank-4 A and B
    assert encoder.seconds > 0

    # The head on the adapter's vectors labels messages, the adapter changing what it reads.
    request = LabelMessageRequest(
        "free nitro", ("spam", "question"), ("spam", "question"), head=encoder.head, encoder=encoder.adapter
    )
    tuned = await asyncio.wait_for(tiny_engine.submit(request, user="p"), TIMEOUT)
    plain = await asyncio.wait_for(
        tiny_engine.submit(LabelMessageRequest(**{**request.__dict__, "encoder": None}), user="p"), TIMEOUT
    )
    assert tuned.methods == [LEARNED] * 2 and tuned.scores != plain.scores
    assert tuned.vector == plain.vector  # the kept vector is the base model's, as examples and prompts are


async def test_a_cancelled_fine_tuning_stops_and_keeps_nothing(tiny_engine: Engine, store: Storage) -> None:
    training = asyncio.create_task(finetune(tiny_engine, store.moderation, GUILD, plan(), steps=10_000))
    await asyncio.sleep(0.5)
    training.cancel()
    with pytest.raises(asyncio.CancelledError):
        await training
    assert await store.moderation.encoder(GUILD) is None
    # The worker is free again at once: the queued unit went with it.
    served = await asyncio.wait_for(
        tiny_engine.submit(LabelMessageRequest("hi", ("a", "b"), ("a", "b")), user="p"), TIMEOUT
    )
    assert served.labels


def test_the_fine_tuned_encoder_is_used_only_where_it_did_better() -> None:
    head = LinearHead(("question", "spam"), b"\0" * 32, b"\0" * 8, 4, "m")
    model = LabelModel(head, CONFIG.label_set, 8, 0.0, 0.0)
    tuned_head = LinearHead(("question", "spam"), b"\1" * 32, b"\0" * 8, 4, "m")
    better = FineTunedEncoder(b"adapter", tuned_head, CONFIG.label_set, 0.9, 0.8, 10, 1.0, 0.0)
    worse = FineTunedEncoder(b"adapter", tuned_head, CONFIG.label_set, 0.8, 0.8, 10, 1.0, 0.0)
    used = label_request("x", CONFIG, model, "m", better)
    assert used.head == tuned_head and used.encoder == b"adapter"
    for encoder in (worse, None, FineTunedEncoder(b"a", tuned_head, ("other",), 0.9, 0.1, 10, 1.0, 0.0)):
        plain = label_request("x", CONFIG, model, "m", encoder)
        assert plain.head == head and plain.encoder is None
    assert label_request("x", CONFIG, model, "another-model", better).encoder is None


def test_fine_tuning_refuses_what_it_cannot_learn() -> None:
    with pytest.raises(InvalidInput, match="at least two labels with 5 tagged messages"):
        finetune_examples([("a", "spam")] * 5 + [("b", "question")] * 4, 2)
    with pytest.raises(InvalidInput, match="at least two labels"):
        FineTuneRequest(("a", "b"), ("spam", "spam")).validate()
    with pytest.raises(InvalidInput, match="steps"):
        FineTuneRequest(("a", "b"), ("spam", "x"), steps=0).validate()
