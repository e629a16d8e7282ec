"""The store against real databases, each test on both back-ends (the `backend` fixture: an SQLite file, a
database on a real PostgreSQL server): migrations, restart, guild isolation, purge, locking, several processes."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import socket
import sqlite3
import sys
import time
from pathlib import Path

import asyncpg
import pytest

from bot.__main__ import startup_error
from bot.engine.errors import InvalidInput
from bot.settings import Settings
from bot.specs.learned_labels import NONE_OF_THESE, Example, LinearHead
from bot.specs.zero_shot import MAX_LABELS
from bot.storage import (
    EVERY_CHANNEL,
    MIGRATIONS,
    Embedding,
    FineTunedEncoder,
    GuildConfig,
    Label,
    LabelModel,
    Policy,
    Rejection,
    Review,
    Scored,
    Storage,
    StoreBusy,
    StoreUnreachable,
    Tag,
    Watch,
)

from .databases import Backend, PostgresBackend, PostgresServer

GUILD_A, GUILD_B = 111, 222
REPO_ROOT = Path(__file__).resolve().parent.parent


def tag(
    guild: int = GUILD_A,
    message: int = 1,
    label: str = "spam",
    *,
    auto: bool = False,
    at: float = 1000.0,
    by: int = 42,
    score: float | None = 0.9,
    text: str | None = None,
) -> Tag:
    return Tag(guild, 10, message, 7, label, score, "embedding", by, auto, at, text)


@pytest.fixture
async def store(backend: Backend):
    async with Storage(backend.target) as opened:
        yield opened


async def test_migrates_an_empty_database(backend: Backend) -> None:
    async with Storage(backend.target) as store:
        assert await store.database.schema_version() == len(MIGRATIONS)
        moderation = store.moderation
        assert await moderation.config(GUILD_A) == await moderation.config(GUILD_B)  # defaults, no rows needed
    assert {"schema_version", "guild_settings", "labels", "watched_channels", "tags"} <= set(await backend.columns())


async def test_an_empty_sqlite_file_is_migrated_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "bot.sqlite3"
    path.touch()  # an empty file, as left by a first start that crashed
    async with Storage(path) as store:
        assert await store.database.schema_version() == len(MIGRATIONS)
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_forward_migration_keeps_data_and_runs_once(backend: Backend) -> None:
    async with Storage(backend.target) as store:
        await store.moderation.add_tags([tag()])
    newer = [*MIGRATIONS, ("ALTER TABLE tags ADD COLUMN note TEXT", "UPDATE tags SET note = 'migrated'")]
    for _ in range(2):  # the second open finds version 2 and applies nothing
        async with Storage(backend.target, migrations=newer) as store:
            assert await store.database.schema_version() == len(newer)
            assert [t.label for t in await store.moderation.recent(GUILD_A)] == ["spam"]
            assert await store.database.fetch("SELECT note FROM tags") == [("migrated",)]


async def test_a_failed_migration_changes_nothing(backend: Backend) -> None:
    async with Storage(backend.target) as store:
        await store.moderation.add_label(GUILD_A, "spam")
    broken = [*MIGRATIONS, ("CREATE TABLE extra (x INTEGER)", "THIS IS NOT SQL")]
    with pytest.raises((sqlite3.OperationalError, asyncpg.PostgresSyntaxError)):
        await Storage(backend.target, migrations=broken).open()
    async with Storage(backend.target) as store:  # still the old version, and no half-applied table
        assert await store.database.schema_version() == len(MIGRATIONS)
        assert (await store.moderation.config(GUILD_A)).labels == (Label("spam"),)
    assert "extra" not in await backend.columns()


async def test_refuses_a_database_from_a_newer_bot(backend: Backend) -> None:
    newer = [*MIGRATIONS, ("CREATE TABLE extra (x INTEGER)",)]
    async with Storage(backend.target, migrations=newer):
        pass
    with pytest.raises(RuntimeError, match="newer than this bot"):
        await Storage(backend.target).open()


async def test_reopen_keeps_everything(backend: Backend) -> None:
    async with Storage(backend.target) as store:
        await store.moderation.add_label(GUILD_A, "spam", "🚫")
        await store.moderation.add_label(GUILD_A, "question", None, "How do I change my settings?")
        await store.moderation.update_settings(GUILD_A, method="nli", threshold=0.3, store_text=True)
        await store.moderation.watch(GUILD_A, 10, 0.7, 99)
        await store.moderation.add_tags([tag(text="buy now"), tag(message=2, label="question", auto=True, at=2000.0)])
    async with Storage(backend.target) as store:
        config = await store.moderation.config(GUILD_A)
        assert config.labels == (Label("spam", "🚫"), Label("question", None, "How do I change my settings?"))
        assert (config.method, config.threshold, config.store_text) == ("nli", 0.3, True)
        assert await store.moderation.watches(GUILD_A) == [Watch(10, 0.7, 99)]
        assert await store.moderation.tags(GUILD_A) == [
            tag(text="buy now"),
            tag(message=2, label="question", auto=True, at=2000.0),
        ]


async def test_committed_tags_survive_a_crash(backend: Backend) -> None:
    """A write that returned is committed: another connection sees it while the first was never closed."""
    crashed = Storage(backend.target)
    await crashed.open()
    await crashed.moderation.add_tags([tag()])
    async with Storage(backend.target) as after_restart:
        assert await after_restart.moderation.tags(GUILD_A) == [tag()]
    await crashed.close()


async def test_guilds_never_see_each_other(store: Storage) -> None:
    await store.moderation.add_label(GUILD_A, "spam")
    await store.moderation.update_settings(GUILD_A, threshold=0.9)
    await store.moderation.watch(GUILD_A, 10, None, None)
    await store.moderation.add_tags([tag(GUILD_A, message=1), tag(GUILD_B, message=2, label="question")])

    assert (await store.moderation.config(GUILD_B)).labels == () and (
        await store.moderation.config(GUILD_B)
    ).threshold == 0.5
    assert await store.moderation.watches(GUILD_B) == [] and await store.moderation.watch_of(GUILD_B, 10) is None
    assert [t.message_id for t in await store.moderation.recent(GUILD_B)] == [2]
    assert await store.moderation.label_counts(GUILD_B, since=0) == [("question", 1)]
    assert [t.guild_id for t in await store.moderation.tags(GUILD_B)] == [GUILD_B]
    # Undo and label removal by another guild touch nothing of guild A, even with A's message id.
    assert await store.moderation.remove_tags(GUILD_B, 1) == []
    assert not await store.moderation.remove_label(GUILD_B, "spam")
    assert not await store.moderation.unwatch(GUILD_B, 10)
    assert [t.message_id for t in await store.moderation.recent(GUILD_A)] == [1]
    assert (await store.moderation.config(GUILD_A)).labels == (Label("spam"),)


async def test_purge_deletes_one_guild_only(store: Storage) -> None:
    for guild in (GUILD_A, GUILD_B):
        await store.moderation.add_label(guild, "spam")
        await store.moderation.update_settings(guild, store_text=True)
        await store.moderation.watch(guild, 10, None, None)
        await store.moderation.add_tags([tag(guild, message=guild), tag(guild, message=guild + 1)])
    deleted = await store.purge(GUILD_A)
    assert deleted == {
        "tags": 2,
        "labels": 1,
        "watched_channels": 1,
        "guild_settings": 1,
        "rejections": 0,
        "label_models": 0,
        "reviews": 0,
        "asks": 0,
        "finetuned_encoders": 0,
        "system_prompts": 0,
        "answers": 0,
        "policies": 0,
        "scored_messages": 0,
    }
    assert await store.moderation.tags(GUILD_A) == [] and (await store.moderation.config(GUILD_A)).labels == ()
    assert len(await store.moderation.tags(GUILD_B)) == 2 and (await store.moderation.config(GUILD_B)).store_text


VECTOR = bytes(range(16))  # 4 float32s: the store keeps bytes as they are
HEAD = LinearHead(("spam", "question", NONE_OF_THESE), b"w" * 48, b"b" * 12, 4, "minilm")


async def fill_learning_data(store: Storage, guild: int) -> None:
    """Everything learned labels keep for a guild: examples, a model, a pending review, a question asked."""
    await store.moderation.add_tags([tag(guild, message=1)], Embedding(VECTOR, "minilm"))
    await store.moderation.reject(Rejection(guild, 10, 2, NONE_OF_THESE, 42, 1000.0), Embedding(VECTOR, "minilm"))
    await store.moderation.reject(Rejection(guild, 10, 3, "spam", 42, 1000.0, "not spam, honest"))
    await store.moderation.save_model(guild, LabelModel(HEAD, ("question", "spam"), 3, 1000.0, 1001.0))
    await store.moderation.save_encoder(
        guild, FineTunedEncoder(b"adapter", HEAD, ("question", "spam"), 0.9, 0.8, 2, 30.0, 1001.0)
    )
    await store.moderation.add_review(
        Review(guild, 10, 4, 7, "spam", 0.4, "learned", 1000.0, None, Embedding(VECTOR, "minilm"))
    )
    assert await store.moderation.claim_ask(guild, 5, 7, 1000.0, per_day=5)  # a "Help me learn" question


async def test_purge_leaves_nothing_of_the_guild(store: Storage, backend: Backend) -> None:
    for guild in (GUILD_A, GUILD_B):
        await store.moderation.add_label(guild, "spam")
        await store.moderation.update_settings(guild, review_threshold=0.2)
        await store.moderation.watch(guild, 10, None, None)
        await fill_learning_data(store, guild)
        await store.guilds.set_system_prompt(guild, "Be kind.", set_by=42)
        await store.answers.save(guild * 10, guild, 42, "{}", "an answer")
        await store.policies.set_policy(Policy(guild, "spam", EVERY_CHANNEL, "log", None, 0.9, 0.8, 0.9, 0.5, 1, 0.0))
        await store.policies.add_scored(Scored(guild, 10, 10, guild, 1, {"spam": 0.9}, time.time()))
    deleted = await store.purge(GUILD_A)
    assert deleted == {
        "tags": 1,
        "labels": 1,
        "watched_channels": 1,
        "guild_settings": 1,
        "rejections": 2,
        "label_models": 1,
        "reviews": 1,
        "asks": 1,
        "finetuned_encoders": 1,
        "system_prompts": 1,
        "answers": 1,
        "policies": 1,
        "scored_messages": 1,
    }
    # Every table with a guild_id column, whatever the migrations added.
    tables = [table for table, columns in (await backend.columns()).items() if "guild_id" in columns]
    assert len(tables) == 13
    for table in tables:
        guilds = {g for (g,) in await store.database.fetch(f"SELECT guild_id FROM {table}")}
        assert GUILD_A not in guilds and (table == "guild_settings" or GUILD_B in guilds), table
    assert await store.moderation.examples(GUILD_A) == [] and await store.moderation.label_model(GUILD_A) is None


async def test_examples_models_and_reviews_survive_a_restart(backend: Backend) -> None:
    async with Storage(backend.target) as store:
        await fill_learning_data(store, GUILD_A)
        await store.moderation.add_tags([tag(message=5, auto=True)])  # the bot's own guess is not an example
    async with Storage(backend.target) as store:
        examples = sorted(await store.moderation.examples(GUILD_A), key=lambda pair: pair[0])
        assert examples == [
            (1, Example("spam", True, None, VECTOR, "minilm")),
            (2, Example(NONE_OF_THESE, True, None, VECTOR, "minilm")),
            (3, Example("spam", False, "not spam, honest", None, None)),
        ]
        model = await store.moderation.label_model(GUILD_A)
        assert model == LabelModel(HEAD, ("question", "spam"), 3, 1000.0, 1001.0)
        assert (await store.moderation.review(GUILD_A, 4)).embedding == Embedding(VECTOR, "minilm")
        # A guild sees none of it.
        assert await store.moderation.examples(GUILD_B) == [] and await store.moderation.label_model(GUILD_B) is None
        assert (
            await store.moderation.review(GUILD_B, 4) is None
            and await store.moderation.answer_review(GUILD_B, 4, 42, "spam") is None
        )
        assert await store.moderation.new_examples(GUILD_B, 0) == 0


async def test_a_model_fits_only_its_label_set_and_embedding_model() -> None:
    model = LabelModel(HEAD, ("question", "spam"), 3, 1000.0, 1001.0)
    config = GuildConfig(labels=(Label("spam"), Label("question")))
    assert model.fits(config, "minilm")
    assert not model.fits(config, "another-model")
    assert not model.fits(GuildConfig(labels=(Label("spam"),)), "minilm")  # a label was removed
    assert not model.fits(GuildConfig(labels=(Label("spam"), Label("questions"))), "minilm")  # or renamed
    assert not model.fits(
        GuildConfig(labels=(Label("Spam"), Label("question"))), "minilm"
    )  # even in case: results use the names


async def test_a_review_is_answered_once_and_its_embedding_becomes_the_example(store: Storage) -> None:
    review = Review(GUILD_A, 10, 4, 7, "spam", 0.4, "learned", 1000.0, "buy now", Embedding(VECTOR, "minilm"))
    await store.moderation.add_review(review)
    assert await store.moderation.answer_review(GUILD_A, 4, 42, "question") == review
    assert await store.moderation.answer_review(GUILD_A, 4, 43, "spam") is None  # a second moderator: already answered
    [saved] = await store.moderation.tags(GUILD_A)
    assert (saved.label, saved.tagged_by, saved.auto, saved.score, saved.text) == (
        "question",
        42,
        False,
        None,
        "buy now",
    )
    assert await store.moderation.examples(GUILD_A) == [(4, Example("question", True, "buy now", VECTOR, "minilm"))]

    await store.moderation.add_review(dataclasses.replace(review, message_id=5))
    assert await store.moderation.answer_review(GUILD_A, 5, 42, None) is not None  # "Not this"
    assert (5, Example("spam", False, "buy now", VECTOR, "minilm")) in await store.moderation.examples(GUILD_A)
    assert await store.moderation.new_examples(GUILD_A, since=0) == 2


async def test_a_tag_overrides_earlier_rejections_and_undo_removes_every_answer(store: Storage) -> None:
    await store.moderation.reject(Rejection(GUILD_A, 10, 1, NONE_OF_THESE, 42, 1000.0))
    await store.moderation.reject(Rejection(GUILD_A, 10, 1, "spam", 42, 1000.0))
    await store.moderation.reject(Rejection(GUILD_A, 10, 1, "question", 42, 1000.0))
    await store.moderation.add_tags([tag(message=1, label="spam")], Embedding(VECTOR, "minilm"))
    assert sorted((e.label, e.positive) for _, e in await store.moderation.examples(GUILD_A)) == [
        ("question", False),
        ("spam", True),
    ]
    await store.moderation.add_review(Review(GUILD_A, 10, 1, 7, "spam", 0.4, "learned", 1000.0))
    await store.moderation.remove_tags(GUILD_A, 1)
    assert await store.moderation.examples(GUILD_A) == [] and await store.moderation.review(GUILD_A, 1) is None


async def test_training_reads_each_labels_newest_examples(store: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bot.storage.moderation.MAX_EXAMPLES_PER_LABEL", 2)
    await store.moderation.add_tags(
        [tag(message=i, at=float(i)) for i in range(5)] + [tag(message=9, label="question")]
    )
    assert sorted(m for m, _ in await store.moderation.examples(GUILD_A)) == [3, 4, 9]
    assert await store.moderation.new_examples(GUILD_A, since=2.5) == 3  # messages 3, 4 and 9 (at 1000)


async def test_version_1_database_gains_the_learning_tables(backend: Backend) -> None:
    async with Storage(backend.target, migrations=MIGRATIONS[:1]) as old:
        await old.moderation.add_label(GUILD_A, "spam")
        await old.database.execute(
            "INSERT INTO tags (guild_id, channel_id, message_id, author_id, label, score, method, tagged_by, "
            "auto, created_at, text) VALUES (?, 10, 1, 7, 'spam', 0.9, 'embedding', 42, 0, 1000.0, 'old text')",
            (GUILD_A,),
        )
    async with Storage(backend.target) as store:
        assert await store.database.schema_version() == len(MIGRATIONS)
        assert (await store.moderation.config(GUILD_A)).review_threshold == GuildConfig().review_threshold
        assert await store.moderation.examples(GUILD_A) == [
            (1, Example("spam", True, "old text"))
        ]  # trainable from its text


async def test_answers_and_system_prompts_are_replaced_and_removed(store: Storage) -> None:
    assert await store.answers.get(5) is None and await store.guilds.system_prompt(GUILD_A) is None
    await store.answers.save(5, GUILD_A, 42, '{"prompt": "Once"}', "upon a")
    await store.answers.save(5, GUILD_A, 42, '{"prompt": "Once"}', "upon a time")  # Continue: the longer text
    assert await store.answers.get(5) == ('{"prompt": "Once"}', "upon a time")
    await store.guilds.set_system_prompt(GUILD_A, "Be kind.", set_by=42)
    await store.guilds.set_system_prompt(GUILD_A, "Be brief.", set_by=43)
    assert (
        await store.guilds.system_prompt(GUILD_A) == "Be brief." and await store.guilds.system_prompt(GUILD_B) is None
    )
    await store.guilds.set_system_prompt(GUILD_A, None, set_by=42)
    assert await store.guilds.system_prompt(GUILD_A) is None


async def test_label_set_is_capped_and_case_insensitive(store: Storage) -> None:
    assert await store.moderation.add_label(GUILD_A, "Spam")
    assert not await store.moderation.add_label(GUILD_A, "spam", "🚫")  # the same label: its emoji is updated
    assert (await store.moderation.config(GUILD_A)).labels == (Label("Spam", "🚫"),)
    for i in range(MAX_LABELS - 1):
        await store.moderation.add_label(GUILD_A, f"label {i}")
    with pytest.raises(InvalidInput, match="full"):
        await store.moderation.add_label(GUILD_A, "one too many")
    assert len((await store.moderation.config(GUILD_A)).labels) == MAX_LABELS
    assert await store.moderation.remove_label(GUILD_A, "SPAM") and not await store.moderation.remove_label(
        GUILD_A, "SPAM"
    )
    assert await store.moderation.add_label(GUILD_A, "now there is room")
    assert (await store.moderation.config(GUILD_A)).labels[-1].name == "now there is room"  # order of addition is kept


async def test_a_moderator_tag_wins_over_an_auto_tag(store: Storage) -> None:
    await store.moderation.add_tags([tag(auto=True, by=1, score=0.6)])
    await store.moderation.add_tags(
        [tag(auto=False, by=42, score=0.6, at=2000.0)]
    )  # confirmed by a moderator: replaces
    await store.moderation.add_tags(
        [tag(auto=True, by=1, score=0.99, at=3000.0)]
    )  # a later auto-tag does not undo that
    assert await store.moderation.tags(GUILD_A) == [tag(auto=False, by=42, score=0.6, at=2000.0)]


async def test_reading_filters_counts_and_undo(store: Storage) -> None:
    await store.moderation.add_tags(
        [
            tag(message=1, label="spam", at=100.0),
            tag(message=2, label="spam", at=200.0),
            tag(message=3, label="question", at=300.0),
            tag(message=3, label="bug", at=300.0),
            Tag(GUILD_A, 20, 4, 7, "spam", 0.8, "nli", 42, False, 400.0),
        ]
    )
    assert [t.message_id for t in await store.moderation.recent(GUILD_A, limit=2)] == [4, 3]
    assert [t.message_id for t in await store.moderation.recent(GUILD_A, label="SPAM")] == [4, 2, 1]
    assert [t.message_id for t in await store.moderation.recent(GUILD_A, channel_id=20)] == [4]
    assert await store.moderation.label_counts(GUILD_A, since=150.0) == [("spam", 2), ("bug", 1), ("question", 1)]
    assert [t.message_id for t in await store.moderation.tags(GUILD_A, since=250.0)] == [3, 3, 4]
    removed = await store.moderation.remove_tags(GUILD_A, 3)
    assert sorted(t.label for t in removed) == ["bug", "question"]
    assert await store.moderation.remove_tags(GUILD_A, 3) == []
    assert await store.moderation.label_counts(GUILD_A, since=0) == [("spam", 3)]


async def test_concurrent_writes_all_land(store: Storage) -> None:
    """Auto-tags of many messages are written at once on the one connection."""
    await asyncio.gather(
        *(store.moderation.add_tags([tag(message=i)]) for i in range(30)),
        store.moderation.add_label(GUILD_A, "spam"),
        store.purge(GUILD_B),
        store.moderation.watch(GUILD_A, 10, None, None),
    )
    assert sorted(t.message_id for t in await store.moderation.tags(GUILD_A)) == list(range(30))
    assert (await store.moderation.config(GUILD_A)).labels == (Label("spam"),)


async def test_a_locked_database_waits_then_refuses_without_writing(backend: Backend) -> None:
    async with Storage(backend.target, busy_timeout=0.2) as store:
        async with backend.locked():  # another process holds the write lock
            with pytest.raises(StoreBusy, match="nothing was saved"):
                await store.moderation.add_tags([tag()])
            assert await store.moderation.tags(GUILD_A) == []  # reading still works while it is locked
        await store.moderation.add_tags([tag()])  # the connection is usable again (no transaction left open)
        assert await store.moderation.tags(GUILD_A) == [tag()]


async def test_a_write_waits_for_a_short_lock(backend: Backend) -> None:
    async with Storage(backend.target, busy_timeout=30.0) as store:
        async with backend.locked():
            write = asyncio.create_task(store.moderation.add_tags([tag()]))
            with pytest.raises(TimeoutError):  # still waiting on the lock, not failed
                await asyncio.wait_for(asyncio.shield(write), 0.3)
        await write
        assert await store.moderation.tags(GUILD_A) == [tag()]


async def test_using_a_closed_store_says_so(backend: Backend) -> None:
    store = Storage(backend.target)
    with pytest.raises(RuntimeError, match="not open"):
        await store.moderation.config(GUILD_A)
    await store.close()  # closing a store that never opened is harmless


# --- several processes on one database (shard processes on several machines, with PostgreSQL) --------------


async def test_two_processes_adding_labels_at_once_never_pass_the_cap(backend: Backend) -> None:
    async with Storage(backend.target) as one, Storage(backend.target) as other:
        for i in range(MAX_LABELS - 2):
            await one.moderation.add_label(GUILD_A, f"label {i}")
        added = await asyncio.gather(
            *(store.moderation.add_label(GUILD_A, f"new {i}") for i, store in enumerate((one, other) * 3)),
            one.moderation.add_label(GUILD_A, "Same"),
            other.moderation.add_label(GUILD_A, "same"),
            return_exceptions=True,
        )
        labels = (await other.moderation.config(GUILD_A)).labels
        positions = await one.database.fetch("SELECT DISTINCT position FROM labels WHERE guild_id = ?", (GUILD_A,))
    assert len(labels) == MAX_LABELS and len({label.name.casefold() for label in labels}) == MAX_LABELS
    assert len(positions) == MAX_LABELS  # each in its place: the order of addition is kept
    assert sum(isinstance(result, InvalidInput) for result in added) == len(added) - 2, added


async def test_two_processes_answering_one_review_save_one_answer(backend: Backend) -> None:
    review = Review(GUILD_A, 10, 4, 7, "spam", 0.4, "learned", 1000.0, None, Embedding(VECTOR, "minilm"))
    async with Storage(backend.target) as one, Storage(backend.target) as other:
        for message in range(1, 11):
            await one.moderation.add_review(dataclasses.replace(review, message_id=message))
        answers = await asyncio.gather(
            *(
                store.moderation.answer_review(GUILD_A, message, moderator, label)
                for message in range(1, 11)
                for store, moderator, label in ((one, 42, "spam"), (other, 43, None))
            )
        )
        assert sum(answer is not None for answer in answers) == 10  # one answer per review, whoever was first
        examples = await other.moderation.examples(GUILD_A)
    assert sorted(message for message, _ in examples) == list(range(1, 11))


async def test_two_processes_tagging_at_once_lose_nothing(backend: Backend) -> None:
    async with Storage(backend.target) as one, Storage(backend.target) as other:
        await asyncio.gather(
            *(
                store.moderation.add_tags([tag(message=message, label=label)])
                for message in range(20)
                for store, label in ((one, "spam"), (other, "question"), (other, "spam"))
            )
        )
        tags = await one.moderation.tags(GUILD_A)
    assert sorted((t.message_id, t.label) for t in tags) == sorted(
        (message, label) for message in range(20) for label in ("question", "spam")
    )


async def test_processes_starting_together_migrate_once(backend: Backend) -> None:
    stores = [Storage(backend.target) for _ in range(3)]
    try:
        await asyncio.gather(*(store.open() for store in stores))
        assert [await store.database.schema_version() for store in stores] == [len(MIGRATIONS)] * 3
        assert await stores[0].database.fetch("SELECT COUNT(*) FROM schema_version") == [(1,)]
    finally:
        for store in stores:
            await store.close()


async def test_acknowledged_tags_survive_writers_killed_mid_write(backend: Backend) -> None:
    """Two bot processes tag as fast as they can on one database and are killed -9 (the OOM killer, a machine
    lost) at random moments, three times over: every tag they acknowledged is stored, and the database works."""
    async with Storage(backend.target):  # migrated, as by the first start
        pass
    acknowledged: list[list[int]] = []
    pace = random.Random(18)
    for round_ in range(3):
        writers = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.tag_writer",
                str(backend.target),
                str(GUILD_A),
                str((2 * round_ + i) * 1_000_000),
                stdout=asyncio.subprocess.PIPE,
                cwd=REPO_ROOT,
            )
            for i in range(2)
        ]
        acks = [[] for _ in writers]
        readers = [asyncio.create_task(read_acknowledged(w, ack)) for w, ack in zip(writers, acks)]
        await asyncio.wait_for(all_writing(writers, acks), 120)
        await asyncio.sleep(pace.uniform(0.0, 0.5))
        for writer in writers:
            writer.kill()
        await asyncio.gather(*readers, *(writer.wait() for writer in writers))
        acknowledged += acks
    async with Storage(backend.target) as store:
        stored = {t.message_id for t in await store.moderation.tags(GUILD_A)}
        missing = [m for ack in acknowledged for m in ack if m not in stored]
        assert missing == [] and sum(map(len, acknowledged)) >= 120, sum(map(len, acknowledged))
        await store.moderation.add_tags([tag(message=1)])  # still writable after the kills
        assert 1 in {t.message_id for t in await store.moderation.tags(GUILD_A)}


async def read_acknowledged(writer: asyncio.subprocess.Process, acknowledged: list[int]) -> None:
    assert writer.stdout is not None
    async for line in writer.stdout:
        if line.endswith(b"\n"):  # a line cut by the kill was never acknowledged
            acknowledged.append(int(line))


async def all_writing(writers: list[asyncio.subprocess.Process], acknowledged: list[list[int]]) -> None:
    """Until each writer has acknowledged 20 tags."""
    while min(map(len, acknowledged)) < 20:
        assert all(writer.returncode is None for writer in writers), "a writer stopped by itself"
        await asyncio.sleep(0.05)


# --- PostgreSQL's own failures -------------------------------------------------------------------------------

WAITING_FOR_A_LOCK = "SELECT pid FROM pg_stat_activity WHERE application_name = 'hf-bot' AND wait_event_type = 'Lock'"


@pytest.mark.postgres
async def test_a_connection_lost_mid_write_is_busy_and_the_next_write_works(postgres_backend: PostgresBackend) -> None:
    async with Storage(postgres_backend.target) as store:
        async with postgres_backend.locked():
            write = asyncio.create_task(store.moderation.add_tags([tag()]))
            admin = await asyncpg.connect(postgres_backend.url)
            try:
                waiting = await asyncio.wait_for(wait_for_rows(admin, WAITING_FOR_A_LOCK), 10)
                # The write waits for the lock when its connection drops (a network cut, a server-side kill).
                await admin.execute("SELECT pg_terminate_backend($1)", waiting[0][0])
            finally:
                await admin.close()
            with pytest.raises(StoreBusy, match="nothing was saved"):
                await write
        await store.moderation.add_tags([tag(message=2)])  # the pool replaced the connection
        assert [t.message_id for t in await store.moderation.tags(GUILD_A)] == [2]


async def wait_for_rows(connection: asyncpg.Connection, query: str) -> list[asyncpg.Record]:
    while not (rows := await connection.fetch(query)):
        await asyncio.sleep(0.05)
    return rows


@pytest.mark.postgres
async def test_while_postgres_restarts_the_store_is_busy_then_works_without_reopening() -> None:
    server = PostgresServer().start()  # its own server: the session's keeps serving the other tests
    try:
        async with Storage(await server.new_database(), busy_timeout=1.0) as store:
            await store.moderation.add_tags([tag()])
            server.halt()
            with pytest.raises(StoreBusy, match="nothing was saved"):
                await store.moderation.add_tags([tag(message=2)])
            with pytest.raises(StoreBusy):
                await store.moderation.tags(GUILD_A)
            server.resume()
            await store.moderation.add_tags([tag(message=3)])
            assert [t.message_id for t in await store.moderation.tags(GUILD_A)] == [1, 3]
    finally:
        server.stop()


async def test_an_unreachable_postgres_at_start_says_what_to_check() -> None:
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(StoreUnreachable, match="Check DATABASE_URL") as refused:
        await Storage(f"postgresql://bot:secret@127.0.0.1:{port}/bot").open()
    assert f"postgresql://127.0.0.1:{port}/bot" in str(refused.value) and "secret" not in str(refused.value)
    settings = Settings.from_env({"DATABASE_URL": f"postgresql://bot:secret@127.0.0.1:{port}/bot"})
    assert startup_error(refused.value, settings) == str(refused.value)  # start-up prints that line, not a traceback
