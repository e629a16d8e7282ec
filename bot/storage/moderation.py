"""The moderators' data: label sets and their settings, watched channels, tags, the examples learned
labels train on ("Not this" / "None of these" answers as rejections), the trained heads, and auto-tags
waiting for review. Every query is scoped by guild id: one guild never reads or changes another's rows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ..engine.errors import InvalidInput
from ..specs.learned_labels import MAX_EXAMPLES_PER_LABEL, NONE_OF_THESE, Example, LinearHead
from ..specs.zero_shot import MAX_LABELS
from .database import Connection, Database, upsert

DEFAULT_METHOD = "embedding"  # one forward per message, whatever the number of labels
DEFAULT_THRESHOLD = 0.5
DEFAULT_REVIEW_THRESHOLD = 0.3  # auto-tags scoring from here up to the threshold go to the review queue
DAY = 86400.0  # seconds: "Help me learn" asks at most ASK_PER_DAY questions in any such span


@dataclass(frozen=True)
class Label:
    name: str
    emoji: str | None = None
    description: str | None = None  # what the label means, or a typical message (embedding method)


@dataclass(frozen=True)
class GuildConfig:
    method: str = DEFAULT_METHOD
    threshold: float = DEFAULT_THRESHOLD  # auto-tagging default; a channel may override it
    store_text: bool = False
    labels: tuple[Label, ...] = ()
    review_threshold: float = DEFAULT_REVIEW_THRESHOLD
    ask: bool = True  # "Help me learn": the bot may ask about the messages it is least sure of

    def label(self, name: str) -> Label | None:
        return next((label for label in self.labels if label.name.casefold() == name.casefold()), None)

    @property
    def label_set(self) -> tuple[str, ...]:
        """The label names as a model remembers them (order doesn't matter)."""
        return tuple(sorted(label.name for label in self.labels))


@dataclass(frozen=True)
class Embedding:
    """A message's sentence embedding (float32 bytes) and the model that made it."""

    vector: bytes
    model: str


@dataclass(frozen=True)
class LabelModel:
    head: LinearHead
    label_set: tuple[str, ...]  # GuildConfig.label_set when it was trained
    examples: int  # examples it was trained on
    examples_until: float  # examples created up to this time were read; later ones are "new"
    trained_at: float

    def fits(self, config: GuildConfig, embedding_model: str) -> bool:
        """Trained on this label set with this embedding model; otherwise it is rebuilt."""
        return self.label_set == config.label_set and self.head.model == embedding_model


@dataclass(frozen=True)
class FineTunedEncoder:
    """A server's fine-tuned encoder: its adapter and head, and the held-out comparison that decides its use."""

    adapter: bytes
    head: LinearHead  # on the adapter's vectors; head.model is the base embedding model
    label_set: tuple[str, ...]
    finetuned_accuracy: float
    linear_accuracy: float  # the frozen encoder's head, on the same held-out examples
    evaluated: int
    seconds: float  # training and comparison, in the background lane
    trained_at: float

    def fits(self, config: GuildConfig, embedding_model: str) -> bool:
        return self.label_set == config.label_set and self.head.model == embedding_model

    @property
    def better(self) -> bool:
        """Used for labelling only where it beat the frozen encoder's head on the held-out examples."""
        return self.finetuned_accuracy > self.linear_accuracy


@dataclass(frozen=True)
class Rejection:
    """A moderator's answer that a message is not `label` ("Not this"), or none of the labels (label '')."""

    guild_id: int
    channel_id: int
    message_id: int
    label: str
    tagged_by: int
    created_at: float
    text: str | None = None


@dataclass(frozen=True)
class Review:
    """An auto-tag below certainty, waiting in the log channel for a moderator."""

    guild_id: int
    channel_id: int
    message_id: int
    author_id: int
    label: str
    score: float
    method: str
    created_at: float
    text: str | None = None  # only when the guild has store_text on
    embedding: Embedding | None = None


@dataclass(frozen=True)
class Watch:
    channel_id: int
    threshold: float | None  # None: the guild's threshold
    log_channel_id: int | None


@dataclass(frozen=True)
class Tag:
    guild_id: int
    channel_id: int
    message_id: int
    author_id: int
    label: str
    score: float | None
    method: str
    tagged_by: int  # the moderator's user id, or the bot's own id for auto-tags
    auto: bool
    created_at: float  # unix seconds
    text: str | None = None  # only when the guild has store_text on


_TAG_FIELDS = ("guild_id", "channel_id", "message_id", "author_id", "label", "score", "method", "tagged_by", "auto")
_TAG_COLUMNS = ", ".join((*_TAG_FIELDS, "created_at", "text"))
_REVIEW_FIELDS = ("guild_id", "channel_id", "message_id", "author_id", "label", "score", "method", "created_at")
_REVIEW_COLUMNS = ", ".join((*_REVIEW_FIELDS, "text", "vector", "vector_model"))
_ENCODER_FIELDS = (
    "embedding_model",
    "label_set",
    "adapter",
    "classes",
    "dim",
    "weights",
    "bias",
    "finetuned_accuracy",
    "linear_accuracy",
    "evaluated",
    "seconds",
    "trained_at",
)
_MODEL_FIELDS = (
    "embedding_model",
    "label_set",
    "classes",
    "dim",
    "weights",
    "bias",
    "examples",
    "examples_until",
    "trained_at",
)
_EMBEDDED = ("text", "vector", "vector_model")  # a message's text (store_text on) and its embedding


def _tag(row: tuple) -> Tag:
    g, c, m, a, label, score, method, by, auto, at, text = row
    return Tag(g, c, m, a, label, score, method, by, bool(auto), at, text)


class ModerationStore:
    TABLES = (
        "tags",
        "labels",
        "watched_channels",
        "guild_settings",
        "rejections",
        "label_models",
        "reviews",
        "asks",
        "finetuned_encoders",
    )

    def __init__(self, database: Database) -> None:
        self.database = database

    # --- label sets ----------------------------------------------------------------------
    async def config(self, guild_id: int) -> GuildConfig:
        settings = await self.database.fetch(
            "SELECT method, threshold, store_text, review_threshold, ask FROM guild_settings WHERE guild_id = ?",
            (guild_id,),
        )
        labels = await self.database.fetch(
            "SELECT name, emoji, description FROM labels WHERE guild_id = ? ORDER BY position", (guild_id,)
        )
        method, threshold, store_text, review, ask = (
            settings[0] if settings else (DEFAULT_METHOD, DEFAULT_THRESHOLD, 0, None, None)
        )
        return GuildConfig(
            method,
            threshold,
            bool(store_text),
            tuple(Label(*row) for row in labels),
            DEFAULT_REVIEW_THRESHOLD if review is None else review,
            ask is None or bool(ask),
        )

    async def add_label(
        self, guild_id: int, name: str, emoji: str | None = None, description: str | None = None
    ) -> bool:
        """Add a label (True), or update an existing label's emoji and description where given (False).
        Refuses a 26th label."""
        # Count and insert under the guild's lock: two moderators, on two machines too, can't make 26.
        async with self.database.transaction(lock=guild_id) as db:
            if await db.execute(
                "UPDATE labels SET emoji = COALESCE(?, emoji), description = COALESCE(?, description) "
                "WHERE guild_id = ? AND name = ?",
                (emoji, description, guild_id, name),
            ):
                return False
            [(count, last)] = await db.fetch(
                "SELECT COUNT(*), MAX(position) FROM labels WHERE guild_id = ?", (guild_id,)
            )
            if count >= MAX_LABELS:
                raise InvalidInput(
                    f"The label set is full ({MAX_LABELS} labels). Remove one with /labelset remove first."
                )
            await db.execute(
                "INSERT INTO labels (guild_id, name, emoji, description, position) VALUES (?, ?, ?, ?, ?)",
                (guild_id, name, emoji, description, (last or 0) + 1),
            )
            return True

    async def remove_label(self, guild_id: int, name: str) -> bool:
        return await self.database.execute("DELETE FROM labels WHERE guild_id = ? AND name = ?", (guild_id, name)) > 0

    async def update_settings(
        self,
        guild_id: int,
        *,
        method: str | None = None,
        threshold: float | None = None,
        store_text: bool | None = None,
        review_threshold: float | None = None,
        ask: bool | None = None,
    ) -> GuildConfig:
        async with self.database.transaction() as db:
            await db.execute(
                "INSERT INTO guild_settings (guild_id, method, threshold) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (guild_id, DEFAULT_METHOD, DEFAULT_THRESHOLD),
            )
            await db.execute(
                "UPDATE guild_settings SET method = COALESCE(?, method), threshold = COALESCE(?, threshold), "
                "store_text = COALESCE(?, store_text), review_threshold = COALESCE(?, review_threshold), "
                "ask = COALESCE(?, ask) WHERE guild_id = ?",
                (
                    method,
                    threshold,
                    None if store_text is None else int(store_text),
                    review_threshold,
                    None if ask is None else int(ask),
                    guild_id,
                ),
            )
        return await self.config(guild_id)

    # --- watched channels ----------------------------------------------------------------
    async def watch(self, guild_id: int, channel_id: int, threshold: float | None, log_channel_id: int | None) -> None:
        await self.database.execute(
            upsert(
                "watched_channels",
                ("guild_id", "channel_id", "threshold", "log_channel_id"),
                ("guild_id", "channel_id"),
            ),
            (guild_id, channel_id, threshold, log_channel_id),
        )

    async def unwatch(self, guild_id: int, channel_id: int) -> bool:
        deleted = await self.database.execute(
            "DELETE FROM watched_channels WHERE guild_id = ? AND channel_id = ?", (guild_id, channel_id)
        )
        return deleted > 0

    async def watches(self, guild_id: int) -> list[Watch]:
        rows = await self.database.fetch(
            "SELECT channel_id, threshold, log_channel_id FROM watched_channels WHERE guild_id = ? ORDER BY channel_id",
            (guild_id,),
        )
        return [Watch(*row) for row in rows]

    async def watch_of(self, guild_id: int, channel_id: int) -> Watch | None:
        rows = await self.database.fetch(
            "SELECT channel_id, threshold, log_channel_id FROM watched_channels WHERE guild_id = ? AND channel_id = ?",
            (guild_id, channel_id),
        )
        return Watch(*rows[0]) if rows else None

    # --- tags ----------------------------------------------------------------------------
    async def add_tags(self, tags: Sequence[Tag], embedding: Embedding | None = None) -> None:
        """Store tags in one transaction (committed on return). A moderator's tag replaces any tag of
        the same label on that message; an auto-tag never replaces a moderator's. A moderator's tag is
        a training example: it keeps the message's `embedding`, and overrides earlier answers that the
        message is not that label or none of them."""
        async with self.database.transaction() as db:
            await self._insert_tags(db, tags, embedding)

    @staticmethod
    async def _insert_tags(db: Connection, tags: Sequence[Tag], embedding: Embedding | None) -> None:
        await db.executemany(
            upsert("tags", (*_TAG_FIELDS, "created_at", *_EMBEDDED), ("guild_id", "message_id", "label"))
            + " WHERE excluded.auto = 0 OR tags.auto = 1",
            [
                (
                    t.guild_id,
                    t.channel_id,
                    t.message_id,
                    t.author_id,
                    t.label,
                    t.score,
                    t.method,
                    t.tagged_by,
                    int(t.auto),
                    t.created_at,
                    t.text,
                    *(_embedding_columns(None if t.auto else embedding)),
                )
                for t in tags
            ],
        )
        await db.executemany(
            "DELETE FROM rejections WHERE guild_id = ? AND message_id = ? AND label IN ('', ?)",
            [(t.guild_id, t.message_id, t.label) for t in tags if not t.auto],
        )

    @staticmethod
    async def _insert_rejection(db: Connection, rejection: Rejection, embedding: Embedding | None) -> None:
        r = rejection
        await db.execute(
            upsert(
                "rejections",
                ("guild_id", "channel_id", "message_id", "label", "tagged_by", "created_at", *_EMBEDDED),
                ("guild_id", "message_id", "label"),
            ),
            (
                r.guild_id,
                r.channel_id,
                r.message_id,
                r.label,
                r.tagged_by,
                r.created_at,
                r.text,
                *_embedding_columns(embedding),
            ),
        )

    async def reject(self, rejection: Rejection, embedding: Embedding | None = None) -> None:
        """Keep a moderator's "Not this" / "None of these" as a training example."""
        async with self.database.transaction() as db:
            await self._insert_rejection(db, rejection, embedding)

    async def recent(
        self, guild_id: int, *, channel_id: int | None = None, label: str | None = None, limit: int = 10
    ) -> list[Tag]:
        # Only the filters given: PostgreSQL can't type a parameter that is only compared with NULL.
        filters = [
            (sql, value)
            for sql, value in (
                ("guild_id = ?", guild_id),
                ("channel_id = ?", channel_id),
                ("label = ? COLLATE NOCASE", label),
            )
            if value is not None
        ]
        rows = await self.database.fetch(
            f"SELECT {_TAG_COLUMNS} FROM tags WHERE {' AND '.join(sql for sql, _ in filters)} "
            "ORDER BY created_at DESC, id DESC LIMIT ?",
            (*(value for _, value in filters), limit),
        )
        return [_tag(row) for row in rows]

    async def label_counts(self, guild_id: int, since: float) -> list[tuple[str, int]]:
        """(label, number of tags) since `since`, most used first."""
        rows = await self.database.fetch(
            "SELECT label, COUNT(*) AS n FROM tags WHERE guild_id = ? AND created_at >= ? "
            "GROUP BY label ORDER BY n DESC, label",
            (guild_id, since),
        )
        return [(label, n) for label, n in rows]

    async def tags(self, guild_id: int, since: float | None = None) -> list[Tag]:
        """Every tag of the guild (since `since`), oldest first: the export."""
        return [tag for tag, _ in await self.tags_with_models(guild_id, since)]

    async def tags_with_models(self, guild_id: int, since: float | None = None) -> list[tuple[Tag, str | None]]:
        """Every tag of the guild (since `since`), oldest first, with the embedding model of its kept vector."""
        rows = await self.database.fetch(
            f"SELECT {_TAG_COLUMNS}, vector_model FROM tags WHERE guild_id = ? AND created_at >= ? "
            "ORDER BY created_at, id",
            (guild_id, since or 0.0),
        )
        return [(_tag(fields), model) for *fields, model in rows]

    async def tagged_vectors(self, guild_id: int) -> list[tuple[Tag, Embedding]]:
        """Every tag a moderator gave with its message's embedding (auto-tags keep none), newest first."""
        rows = await self.database.fetch(
            f"SELECT {_TAG_COLUMNS}, vector, vector_model FROM tags "
            "WHERE guild_id = ? AND vector IS NOT NULL ORDER BY created_at DESC, id DESC",
            (guild_id,),
        )
        return [(_tag(fields), Embedding(vector, model)) for *fields, vector, model in rows]

    async def remove_tags(self, guild_id: int, message_id: int) -> list[Tag]:
        """Undo: delete the tags of one message; returns what was deleted."""
        async with self.database.transaction() as db:
            removed = await db.fetch(
                f"DELETE FROM tags WHERE guild_id = ? AND message_id = ? RETURNING {_TAG_COLUMNS}",
                (guild_id, message_id),
            )
            for table in ("rejections", "reviews"):  # every other answer about the message, and its pending review
                await db.execute(f"DELETE FROM {table} WHERE guild_id = ? AND message_id = ?", (guild_id, message_id))
        return [_tag(row) for row in removed]

    # --- learned labels --------------------------------------------------------------------
    async def examples(self, guild_id: int) -> list[tuple[int, Example]]:
        """(message id, example) of every moderator's answer, each label's newest MAX_EXAMPLES_PER_LABEL."""
        rows = await self.database.fetch(
            "SELECT message_id, label, 1, text, vector, vector_model, created_at FROM tags "
            "WHERE guild_id = ? AND auto = 0 "
            "UNION ALL SELECT message_id, label, 0, text, vector, vector_model, created_at FROM rejections "
            "WHERE guild_id = ? "
            "ORDER BY created_at DESC",
            (guild_id, guild_id),
        )
        kept: dict[tuple[str, bool], int] = {}
        out = []
        for message_id, label, positive, text, vector, model, _ in rows:
            # "None of these" is stored as a rejection of label '' but trains as a class of its own.
            example = Example(label, bool(positive) or label == NONE_OF_THESE, text, vector, model)
            key = (example.label.casefold(), example.positive)
            kept[key] = kept.get(key, 0) + 1
            if kept[key] <= MAX_EXAMPLES_PER_LABEL:
                out.append((message_id, example))
        return out

    async def example_counts(self, guild_id: int) -> dict[str, int]:
        """Moderators' tags per label (casefolded): the positive examples each label has."""
        rows = await self.database.fetch(
            "SELECT label COLLATE NOCASE, COUNT(*) FROM tags WHERE guild_id = ? AND auto = 0 "
            "GROUP BY label COLLATE NOCASE",
            (guild_id,),
        )
        return {label.casefold(): n for label, n in rows}

    async def new_examples(self, guild_id: int, since: float) -> int:
        """Moderators' answers given after `since`."""
        rows = await self.database.fetch(
            "SELECT (SELECT COUNT(*) FROM tags WHERE guild_id = ? AND auto = 0 AND created_at > ?) + "
            "(SELECT COUNT(*) FROM rejections WHERE guild_id = ? AND created_at > ?)",
            (guild_id, since, guild_id, since),
        )
        return rows[0][0]

    async def save_model(self, guild_id: int, model: LabelModel) -> None:
        head = model.head
        await self.database.execute(
            upsert("label_models", ("guild_id", *_MODEL_FIELDS), ("guild_id",)),
            (
                guild_id,
                head.model,
                json.dumps(model.label_set),
                json.dumps(head.classes),
                head.dim,
                head.weights,
                head.bias,
                model.examples,
                model.examples_until,
                model.trained_at,
            ),
        )

    async def label_model(self, guild_id: int) -> LabelModel | None:
        rows = await self.database.fetch(
            f"SELECT {', '.join(_MODEL_FIELDS)} FROM label_models WHERE guild_id = ?",
            (guild_id,),
        )
        if not rows:
            return None
        model, label_set, classes, dim, weights, bias, examples, until, trained_at = rows[0]
        head = LinearHead(tuple(json.loads(classes)), weights, bias, dim, model)
        return LabelModel(head, tuple(json.loads(label_set)), examples, until, trained_at)

    async def save_encoder(self, guild_id: int, encoder: FineTunedEncoder) -> None:
        head = encoder.head
        await self.database.execute(
            upsert("finetuned_encoders", ("guild_id", *_ENCODER_FIELDS), ("guild_id",)),
            (
                guild_id,
                head.model,
                json.dumps(encoder.label_set),
                encoder.adapter,
                json.dumps(head.classes),
                head.dim,
                head.weights,
                head.bias,
                encoder.finetuned_accuracy,
                encoder.linear_accuracy,
                encoder.evaluated,
                encoder.seconds,
                encoder.trained_at,
            ),
        )

    async def encoder(self, guild_id: int) -> FineTunedEncoder | None:
        rows = await self.database.fetch(
            f"SELECT {', '.join(_ENCODER_FIELDS)} FROM finetuned_encoders WHERE guild_id = ?", (guild_id,)
        )
        if not rows:
            return None
        model, label_set, adapter, classes, dim, weights, bias, tuned, linear, evaluated, seconds, at = rows[0]
        head = LinearHead(tuple(json.loads(classes)), weights, bias, dim, model)
        return FineTunedEncoder(adapter, head, tuple(json.loads(label_set)), tuned, linear, evaluated, seconds, at)

    # --- the review queue ------------------------------------------------------------------
    async def add_review(self, review: Review) -> bool:
        """Queue a message for review; False (nothing written) when it is already queued: the review queue,
        an alert policy and AutoMod may each bring the same message, and it is posted once."""
        r = review
        columns = (*_REVIEW_FIELDS, *_EMBEDDED)
        added = await self.database.execute(
            f"INSERT INTO reviews ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
            "ON CONFLICT (guild_id, message_id) DO NOTHING",
            (
                r.guild_id,
                r.channel_id,
                r.message_id,
                r.author_id,
                r.label,
                r.score,
                r.method,
                r.created_at,
                r.text,
                *_embedding_columns(r.embedding),
            ),
        )
        return added > 0

    async def review(self, guild_id: int, message_id: int) -> Review | None:
        rows = await self.database.fetch(
            f"SELECT {_REVIEW_COLUMNS} FROM reviews WHERE guild_id = ? AND message_id = ?", (guild_id, message_id)
        )
        return _review(rows[0]) if rows else None

    async def answer_review(self, guild_id: int, message_id: int, tagged_by: int, label: str | None) -> Review | None:
        """A moderator's answer to a review, in one transaction: `label` is confirmed as a tag (a training example
        with the review's embedding), or with None the reviewed label is rejected ("Not this"). Returns the review,
        or None when it was already answered or undone (nothing is written then)."""
        async with self.database.transaction() as db:
            # Deleting first claims the review: of two moderators answering at once, on two machines too, one gets it.
            claimed = await db.fetch(
                f"DELETE FROM reviews WHERE guild_id = ? AND message_id = ? RETURNING {_REVIEW_COLUMNS}",
                (guild_id, message_id),
            )
            if not claimed:
                return None
            r = _review(claimed[0])
            now = time.time()
            if label is None:
                await self._insert_rejection(
                    db, Rejection(guild_id, r.channel_id, message_id, r.label, tagged_by, now, r.text), r.embedding
                )
            else:
                score = r.score if label.casefold() == r.label.casefold() else None
                await self._insert_tags(
                    db,
                    [
                        Tag(
                            guild_id,
                            r.channel_id,
                            message_id,
                            r.author_id,
                            label,
                            score,
                            r.method,
                            tagged_by,
                            False,
                            now,
                            r.text,
                        )
                    ],
                    r.embedding,
                )
            return r

    # --- "Help me learn" ---------------------------------------------------------------------
    async def claim_ask(self, guild_id: int, message_id: int, author_id: int, now: float, per_day: int) -> bool:
        """Count a question about a message, unless the server had `per_day` in the last 24 hours or the last one
        was about the same author (False: not asked). Under the guild's lock: two messages at once, on two
        machines too, can't both take the last question of the day."""
        async with self.database.transaction(lock=guild_id) as db:
            [(asked,)] = await db.fetch(
                "SELECT COUNT(*) FROM asks WHERE guild_id = ? AND asked_at > ?", (guild_id, now - DAY)
            )
            last = await db.fetch(
                "SELECT author_id FROM asks WHERE guild_id = ? ORDER BY asked_at DESC, message_id DESC LIMIT 1",
                (guild_id,),
            )
            if asked >= per_day or (last and last[0][0] == author_id):
                return False
            # Older questions count for nothing but the newest one's author: keep only that.
            await db.execute(
                "DELETE FROM asks WHERE guild_id = ? AND asked_at <= ? "
                "AND asked_at < (SELECT MAX(asked_at) FROM asks WHERE guild_id = ?)",
                (guild_id, now - DAY, guild_id),
            )
            return (
                await db.execute(
                    "INSERT INTO asks (guild_id, message_id, author_id, asked_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT DO NOTHING",
                    (guild_id, message_id, author_id, now),
                )
                > 0
            )

    async def asked_messages(self, guild_id: int) -> set[int]:
        """The messages "Help me learn" asked about that are still on record: the last 24 hours' (and the newest)."""
        rows = await self.database.fetch("SELECT message_id FROM asks WHERE guild_id = ?", (guild_id,))
        return {message_id for (message_id,) in rows}

    async def asked_since(self, guild_id: int, since: float) -> int:
        rows = await self.database.fetch(
            "SELECT COUNT(*) FROM asks WHERE guild_id = ? AND asked_at > ?", (guild_id, since)
        )
        return rows[0][0]


def _embedding_columns(embedding: Embedding | None) -> tuple[bytes | None, str | None]:
    return (embedding.vector, embedding.model) if embedding else (None, None)


def _review(row: tuple) -> Review:
    *fields, vector, model = row
    return Review(*fields, embedding=Embedding(vector, model) if vector is not None else None)
