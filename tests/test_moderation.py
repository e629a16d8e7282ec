"""The moderators' feature through the real CommandTree: real Interaction payloads for the
label-set commands, the "Tag message" context menu and its select menu, real gateway
MESSAGE_CREATE payloads for auto-tagging, and a real database under it all: each test runs on an SQLite file and
on a real PostgreSQL server (the `backend` fixture), but for the packaged-model ones, on SQLite alone.

Most tests run the engine's real scheduler over `KeywordExecutor`, a stand-in worker whose
scores are predictable (a label wins when its words are in the text) and which can hold a
batch to create load. One test runs the tiny embedding model in the real worker process, and
the slow one checks that the packaged MiniLM labels a support question as a question.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import discord
import pytest
from discord import app_commands

from bot.client import HFBot
from bot.engine import Engine
from bot.engine.errors import InvalidInput
from bot.engine.scheduler import ExecutorInfo
from bot.moderation import JSONL_COLUMNS
from bot.settings import Settings
from bot.specs.learned_labels import NONE_OF_THESE, Example, LabelMessageRequest, LabelMessageResult
from bot.storage import Embedding, ModerationStore, Storage, Tag

from .databases import Backend
from .discord_harness import DiscordValidationError, FakeDiscord, next_snowflake

MOD = discord.Permissions(view_channel=True, send_messages=True, manage_messages=True)
MEMBER = discord.Permissions(view_channel=True, send_messages=True, read_message_history=True)
ADMIN = discord.Permissions(administrator=True)
PASSWORD_QUESTION = "How do I reset my password? The login page keeps failing"
VECTOR = bytes(16)  # what KeywordExecutor returns as a message's embedding
REAL_WORKER_TIMEOUT = 180.0  # a real worker loads its model on first use: seconds on a busy 2-core machine
# The packaged models' quality is no matter of the back-end: those slow tests run on SQLite alone.
on_sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


class KeywordExecutor:
    """Stands in for the worker: a label scores high when its words occur in the text. `gate` holds batches."""

    def __init__(self) -> None:
        self.info = ExecutorInfo(state="running")
        self.batches: list[list[LabelMessageRequest]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.started = asyncio.Event()

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def cancel(self, job_id: int) -> None: ...

    async def run(self, task: str, jobs: list[tuple[int, Any]], events: Any) -> None:
        self.batches.append([request for _, request in jobs])
        self.started.set()
        await self.gate.wait()
        for job_id, request in jobs:
            events.done(job_id, self.label(request))

    @staticmethod
    def label(r: LabelMessageRequest) -> LabelMessageResult:
        words = set(re.findall(r"\w+", r.text.lower()))
        raw = [1.0 + 4.0 * sum(w in words for w in re.findall(r"\w+", prompt.lower())) for prompt in r.prompts]
        order = sorted(range(len(raw)), key=lambda i: -raw[i])
        return LabelMessageResult(
            r.text,
            [r.labels[i] for i in order],
            [raw[i] / sum(raw) for i in order],
            [r.method] * len(raw),
            "keywords",
            VECTOR,
        )


class Borrowed:
    """Runs batches on a session engine's worker without owning it: closing the bot must not stop a shared worker."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.info = engine.executor.info

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def cancel(self, job_id: int) -> None:
        self.engine.executor.cancel(job_id)

    async def run(self, task: str, jobs: list[tuple[int, Any]], events: Any) -> None:
        await self.engine.executor.run(task, jobs, events)


class SubmitSpy:
    """Counts engine submissions (refused ones too), so a test can wait for auto-tagging to reach the engine."""

    def __init__(self, engine: Engine) -> None:
        self.calls: list[bool] = []  # background?
        self._changed = asyncio.Condition()
        original = engine.submit_job

        def submit_job(*args: Any, **kwargs: Any) -> Any:
            try:
                return original(*args, **kwargs)
            finally:
                self.calls.append(bool(kwargs.get("background")))
                asyncio.get_running_loop().create_task(self._notify())

        engine.submit_job = submit_job  # type: ignore[method-assign]

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, count: int) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(self.calls) >= count), 10)


@dataclass
class Env:
    bot: HFBot
    h: FakeDiscord
    executor: Any
    backend: Backend

    @property
    def store(self) -> ModerationStore:
        return self.bot.store.moderation

    @property
    def guild_id(self) -> int:
        return self.h.guild_id

    def said(self) -> str:
        """Text of the bot's latest message (response, edit, followup or channel message)."""
        return self.h.recorder.message_records()[-1].text()

    async def slash(
        self, name: str, options: dict[str, Any] | None = None, permissions: discord.Permissions = MOD, **kwargs: Any
    ) -> discord.Interaction:
        return await self.h.invoke_slash(name, options, permissions=permissions, **kwargs)

    async def labels(self, *specs: tuple[str, ...]) -> None:
        for name, *rest in specs:
            options = {"label": name} | dict(zip(("emoji", "description"), rest))
            await self.slash("labelset add", {k: v for k, v in options.items() if v is not None})


Start = Callable[..., Awaitable[Env]]


@pytest.fixture
async def start(backend: Backend) -> AsyncIterator[Start]:
    """start(**env) -> a bot on the fake Discord; DATABASE_URL defaults to the test's database."""
    harnesses: list[FakeDiscord] = []
    engines: list[Engine] = []

    async def start_bot(
        executor: Any = None,
        busy_timeout: float | None = None,
        guild_id: int | None = None,
        channel_id: int | None = None,
        timeout: float = 10.0,
        **env: str,
    ) -> Env:
        env = {"DATABASE_URL": backend.url, "AUTOTAG": "true"} | env
        settings = Settings.from_env(env, profile="offline")
        executor = executor or KeywordExecutor()
        engine = Engine(settings.engine, executor=executor)
        engines.append(engine)
        bot = HFBot(settings, engine)
        if busy_timeout is not None:
            bot.store = Storage(settings.database, busy_timeout=busy_timeout)
        h = await FakeDiscord.create(bot, guild_id=guild_id, channel_id=channel_id, timeout=timeout)
        harnesses.append(h)
        return Env(bot, h, executor, backend)

    yield start_bot
    for h in harnesses:
        await h.close()
    for engine in engines:  # whoever creates an engine closes it, after the bot
        await engine.close()


@pytest.fixture
async def env(start: Start) -> Env:
    return await start()


async def suggest(env: Env, text: str, **kwargs: Any) -> discord.Message:
    """A member's message, then a moderator's "Tag message" on it."""
    message = env.h.make_message(text, author_id=env.h.add_member(name="member"), **kwargs)
    await env.h.invoke_message_menu("Tag message", message, permissions=MOD)
    return message


def custom_id(env: Env, action: str, message_id: int | None = None) -> str:
    """The custom_id of the newest button or menu for `action`
    (custom_ids carry their target: mod:ACTION:channel:message:...)."""
    ids = [message_id] if message_id is not None else sorted(env.h.recorder.messages, reverse=True)
    for mid in ids:
        for row in env.h.recorder.messages[mid].get("components") or []:
            for item in row.get("components", []):
                if item.get("custom_id", "").startswith(f"mod:{action}:"):
                    return item["custom_id"]
    raise AssertionError(f"no component for {action}")


def component(env: Env, action: str) -> dict[str, Any]:
    _, found = env.h.recorder.find_component(custom_id(env, action))
    return found


async def click(
    env: Env,
    action: str,
    values: list[str] | None = None,
    *,
    permissions: discord.Permissions = MOD,
    message_id: int | None = None,
    **kwargs: Any,
) -> discord.Interaction:
    """A moderator clicks the newest button (or picks in the newest menu) for `action`."""
    return await env.h.invoke_component(custom_id(env, action, message_id), values, permissions=permissions, **kwargs)


# --- label sets --------------------------------------------------------------------------------


async def test_labelset_commands(env: Env) -> None:
    await env.slash("labelset add", {"label": "spam", "emoji": "🚫"})
    reply = env.h.recorder.last("response")
    assert reply.ephemeral and "Added “spam”" in reply.text() and "🚫 **spam**" in reply.text()
    await env.slash("labelset add", {"label": "  bug   report ", "description": "The app crashes with an error"})
    assert "**bug report** — The app crashes with an error" in env.said()
    await env.slash("labelset add", {"label": "SPAM"})
    assert "already in the set" in env.said()

    await env.slash("labelset method", {"method": "nli"})
    await env.slash("labelset threshold", {"value": 0.35})
    await env.slash("labelset store_text", {"enabled": True})
    await env.slash("labelset list")
    listing = env.said()
    assert "1. 🚫 **spam**" in listing and "2. **bug report**" in listing
    assert "2/25 labels · method nli · auto-tag threshold 0.35 · message text stored" in listing

    choices = await env.h.invoke_autocomplete("labelset remove", {"label": "rep"}, focused="label", permissions=MOD)
    assert [c["value"] for c in choices] == ["bug report"]
    await env.slash("labelset remove", {"label": "Bug Report"})
    assert "Removed “bug report”" in env.said()
    assert [label.name for label in (await env.store.config(env.guild_id)).labels] == ["spam"]
    env.h.assert_no_errors()


async def test_labelset_bad_input_gets_clear_private_messages(env: Env) -> None:
    cases = [
        ("labelset remove", {"label": "nope"}, "There is no label “nope”"),
        ("labelset add", {"label": "   "}, "The label is empty"),
        ("labelset add", {"label": "spam", "emoji": "spam"}, "is not an emoji"),
        ("labelset add", {"label": "x" * 90, "description": "far too long for the room left"}, "it can be at most 8"),
    ]
    for name, options, expected in cases:
        await env.slash(name, options)
        reply = env.h.recorder.last("response")
        assert reply.ephemeral and expected in reply.text(), (name, reply.text())
    assert (await env.store.config(env.guild_id)).labels == ()


async def test_label_set_full(env: Env) -> None:
    for i in range(25):
        await env.slash("labelset add", {"label": f"label {i}"})
    await env.slash("labelset add", {"label": "one more"})
    reply = env.h.recorder.last("response")
    assert reply.ephemeral and "The label set is full (25 labels)" in reply.text()
    assert len((await env.store.config(env.guild_id)).labels) == 25


async def test_a_member_without_manage_messages_is_refused(env: Env) -> None:
    await env.labels(("spam",))
    # Discord itself hides the commands from them (default_permissions) ...
    with pytest.raises(DiscordValidationError):
        await env.slash("labelset add", {"label": "x"}, permissions=MEMBER)
    # ... but a server can override that, so the bot checks too.
    message = env.h.make_message("spam here", author_id=env.h.add_member())
    attempts = [
        env.slash("labelset add", {"label": "x"}, permissions=MEMBER, validate=False),
        env.slash("labelset list", permissions=MEMBER, validate=False),
        env.slash("autotag enable", {"channel": env.h.channel_id}, permissions=MEMBER, validate=False),
        env.slash("tags export", permissions=MEMBER, validate=False),
        env.slash("tags undo", {"message": str(message.id)}, permissions=MEMBER, validate=False),
        env.h.invoke_message_menu("Tag message", message, permissions=MEMBER, validate=False),
    ]
    for attempt in attempts:
        await attempt
        reply = env.h.recorder.last("response")
        assert reply.ephemeral and "Not allowed" in reply.text() and "manage messages" in reply.text()
    assert [label.name for label in (await env.store.config(env.guild_id)).labels] == ["spam"]
    assert await env.store.watches(env.guild_id) == [] and env.executor.batches == []
    choices = await env.h.invoke_autocomplete("labelset remove", {"label": ""}, focused="label", permissions=MEMBER)
    assert choices == []  # label names are not offered to them either


# --- the context menu --------------------------------------------------------------------------


async def test_tag_message_confirms_the_top_label_and_reacts(env: Env) -> None:
    await env.labels(("spam", "🚫"), ("question", "❓"), ("bug report",))
    await env.slash("labelset store_text", {"enabled": True})
    message = await suggest(env, "quick question: where is the rules channel?")

    defer, shown = env.h.recorder.of_kind("response")[-1], env.h.recorder.last("edit_original")
    assert defer.response_type == 5 and defer.ephemeral  # "thinking", privately
    assert "Tag this message?" in shown.text() and "Confirm **question**" in shown.text()
    assert component(env, "tag")["label"] == "Tag as question"
    assert [o["value"] for o in component(env, "pick")["options"]] == ["question", "spam", "bug report"]
    assert await env.store.tags(env.guild_id) == []  # nothing is stored before a moderator confirms

    await click(env, "tag")
    [saved] = await env.store.tags(env.guild_id)
    assert (saved.message_id, saved.channel_id, saved.author_id) == (message.id, message.channel.id, message.author.id)
    assert (saved.label, saved.tagged_by, saved.auto, saved.method) == ("question", env.h.user_id, False, "embedding")
    assert saved.score == pytest.approx(5 / 7) and saved.text == "quick question: where is the rules channel?"
    reaction = env.h.recorder.last("add_reaction")
    assert reaction.message_id == message.id and reaction.params["emoji"] == "❓"
    edited = env.h.recorder.last("edit_original")
    assert "Tag saved" in edited.text() and "as **question**" in edited.text() and edited.components == []
    env.h.assert_no_errors()


async def test_select_menu_picks_another_label(env: Env) -> None:
    await env.labels(("spam", "🚫"), ("question",))
    message = await suggest(env, "is this a question?")
    await click(env, "pick", ["spam"])
    [saved] = await env.store.tags(env.guild_id)
    assert saved.label == "spam" and saved.score == pytest.approx(1 / 6) and saved.text is None  # store_text is off
    assert env.h.recorder.last("add_reaction").params["emoji"] == "🚫"
    assert "as **spam**" in env.said()
    # The tag can be taken back, with the reaction.
    await env.slash(
        "tags undo", {"message": f"https://discord.com/channels/{env.guild_id}/{message.channel.id}/{message.id}"}
    )
    assert "Removed 1 tag from message" in env.h.recorder.last("response").text()
    assert env.h.recorder.last("remove_reaction").message_id == message.id
    assert await env.store.tags(env.guild_id) == []


async def test_none_of_these_stores_no_tag_but_a_negative_example(env: Env) -> None:
    await env.labels(("spam", "🚫"), ("question",))
    message = await suggest(env, "spam?")
    await click(env, "none")
    shown = env.h.recorder.last("edit_original")
    assert "Not tagged" in shown.text() and shown.components == []
    assert await env.store.tags(env.guild_id) == [] and env.h.recorder.last("add_reaction") is None
    # store_text is off: the example keeps the message's embedding, not its text.
    assert await env.store.examples(env.guild_id) == [
        (message.id, Example(NONE_OF_THESE, True, None, VECTOR, "keywords"))
    ]


async def test_tag_message_refusals(env: Env) -> None:
    author = env.h.add_member()
    await env.h.invoke_message_menu("Tag message", env.h.make_message("hello", author_id=author), permissions=MOD)
    assert "no labels yet" in env.h.recorder.last("response").text()
    await env.labels(("spam",))
    image_only = env.h.make_message("", author_id=author, attachments=[("cat.png", b"\x89PNG...")])
    await env.h.invoke_message_menu("Tag message", image_only, permissions=MOD)
    reply = env.h.recorder.last("response")
    assert reply.ephemeral and reply.response_type == 4 and "has no text to label" in reply.text()
    assert env.executor.batches == []  # refused before reaching the engine


async def test_confirming_on_a_deleted_message_keeps_the_tag_and_says_so(env: Env) -> None:
    await env.labels(("spam", "🚫"))
    message = await suggest(env, "spam spam")
    del env.h.recorder.messages[message.id]  # deleted while the moderator was deciding
    await click(env, "tag")
    assert [t.label for t in await env.store.tags(env.guild_id)] == ["spam"]
    assert "has been deleted, so I could not react" in env.said()
    env.h.assert_no_errors()


async def test_a_locked_database_loses_no_confirmed_tag(start: Start) -> None:
    env = await start(busy_timeout=0.2)
    await env.labels(("spam", "🚫"))
    await suggest(env, "spam offer")
    async with env.backend.locked():  # e.g. a backup script holding the write lock
        await click(env, "tag")
    assert "Busy" in env.said() and "nothing was saved" in env.said()
    assert env.h.recorder.last("add_reaction") is None  # not reacted: it was not saved
    component(env, "tag")  # the buttons stay, so the moderator can try again
    await click(env, "tag")
    assert [t.label for t in await env.store.tags(env.guild_id)] == ["spam"] and "Tag saved" in env.said()


async def test_tag_message_through_the_real_worker(start: Start, tiny_engine: Engine) -> None:
    """The tiny random-weight embedding model: meaningless scores, but the real request, worker and result path."""
    env = await start(executor=Borrowed(tiny_engine), timeout=REAL_WORKER_TIMEOUT)
    await env.labels(("spam",), ("question", None, "How do I change my settings?"), ("bug report",))
    await suggest(env, PASSWORD_QUESTION)
    options = component(env, "pick")["options"]
    assert sorted(o["value"] for o in options) == ["bug report", "question", "spam"]  # names, not the prompts sent
    scores = [float(o["description"].removeprefix("score ")) for o in options]
    assert scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(1, abs=0.02)
    await click(env, "pick", [options[-1]["value"]])
    [saved] = await env.store.tags(env.guild_id)
    assert saved.label == options[-1]["value"] and saved.method == "embedding"
    env.h.assert_no_errors()


# --- auto-tagging ------------------------------------------------------------------------------


async def test_autotag_tags_new_messages_and_logs_them(env: Env) -> None:
    await env.labels(("spam",), ("question",), ("bug report",))
    log_channel = env.h.add_channel("mod-log")
    await env.slash("autotag enable", {"channel": env.h.channel_id, "threshold": 0.5, "log_channel": log_channel})
    assert f"<#{env.h.channel_id}> · threshold 0.50 · log to <#{log_channel}>" in env.said()

    author = env.h.add_member(name="poster")
    message = await env.h.dispatch_message("buy cheap spam now", author_id=author)
    [saved] = await env.store.tags(env.guild_id)
    assert (saved.message_id, saved.author_id, saved.label) == (message.id, author, "spam")
    assert saved.auto and saved.tagged_by == env.h.bot_id and saved.score == pytest.approx(5 / 7)
    posted = env.h.recorder.last("send_message")
    assert posted.channel_id == log_channel and "Auto-tagged" in posted.text() and "**spam** 0.71" in posted.text()

    await env.h.dispatch_message("nothing matches here", author_id=author)  # 1/3 each: below the threshold
    skipped = [
        dict(content="spam from a bot", bot=True),
        dict(content="spam from a webhook", webhook_id=next_snowflake()),
        dict(content="", attachments=[("spam.png", b"\x89PNG")]),
        dict(content="spam elsewhere", channel_id=log_channel),
    ]
    for kwargs in skipped:
        await env.h.dispatch_message(author_id=author, **kwargs)
    assert len(env.executor.batches) == 2  # only the two human messages in the watched channel reached the engine
    assert len(await env.store.tags(env.guild_id)) == 1

    await env.slash("autotag list")
    assert f"<#{env.h.channel_id}>" in env.said()
    await env.slash("autotag disable", {"channel": env.h.channel_id})
    await env.h.dispatch_message("more spam", author_id=author)
    assert len(env.executor.batches) == 2 and "No channel is auto-tagged" in env.h.recorder.last("response").text()
    env.h.assert_no_errors()


async def test_a_deleted_channel_is_no_longer_watched(env: Env) -> None:
    await env.labels(("spam",))
    doomed = env.h.add_channel("doomed")
    for channel in (env.h.channel_id, doomed):
        await env.slash("autotag enable", {"channel": channel})
    assert [w.channel_id for w in await env.store.watches(env.guild_id)] == sorted([env.h.channel_id, doomed])
    # Discord's CHANNEL_DELETE, through discord.py's own parser (which dispatches guild_channel_delete).
    env.h._feed(env.h.state.parse_channel_delete, {"id": str(doomed), "guild_id": str(env.guild_id), "type": 0})
    await env.h.settle()
    env.h.assert_no_errors()
    assert [w.channel_id for w in await env.store.watches(env.guild_id)] == [env.h.channel_id]


async def test_autotag_skips_a_message_while_the_database_is_locked_without_a_traceback(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    """Another process holds the write lock: the message is skipped (nothing announced, so nothing lost),
    with one warning line rather than an error's traceback; the next one is tagged."""
    env = await start(busy_timeout=0.2)
    await env.labels(("spam",))
    log_channel = env.h.add_channel("mod-log")
    await env.slash("autotag enable", {"channel": env.h.channel_id, "threshold": 0.5, "log_channel": log_channel})
    async with env.backend.locked():  # another process holds the write lock
        with caplog.at_level(logging.WARNING):
            await env.h.dispatch_message("buy cheap spam now", author_id=env.h.add_member())
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert any("busy" in r.getMessage() for r in caplog.records)
    assert env.h.recorder.last("send_message") is None  # not announced: it was not saved
    message = await env.h.dispatch_message("more cheap spam", author_id=env.h.add_member())
    assert [t.message_id for t in await env.store.tags(env.guild_id)] == [message.id]


async def test_autotag_enable_refusals(start: Start) -> None:
    env = await start()
    await env.slash("autotag enable", {"channel": env.h.channel_id})
    assert "no labels yet" in env.said()
    await env.labels(("spam",))
    secret = env.h.add_channel("secret")
    payload = env.h.recorder.channels[secret]
    payload["permission_overwrites"] = [
        {"id": str(env.h.bot_id), "type": 1, "allow": "0", "deny": str(discord.Permissions(view_channel=True).value)}
    ]
    env.h.guild._add_channel(discord.TextChannel(state=env.h.state, guild=env.h.guild, data=payload))
    await env.slash("autotag enable", {"channel": secret})
    assert f"I can't read <#{secret}>" in env.said()
    await env.slash("autotag enable", {"channel": env.h.channel_id, "log_channel": secret})
    assert f"I can't post in <#{secret}>" in env.said()
    assert await env.store.watches(env.guild_id) == []

    off = await start(AUTOTAG="false", DATABASE_URL=await env.backend.another())
    assert not off.bot.intents.message_content  # the privileged intent is only requested with AUTOTAG=true
    await off.labels(("spam",))
    await off.slash("autotag enable", {"channel": off.h.channel_id})
    assert "AUTOTAG=true" in off.said() and "Message Content intent" in off.said()


async def test_autotag_sheds_its_own_backlog_and_people_go_first(start: Start) -> None:
    env = await start(MAX_BACKGROUND="2")
    spy = SubmitSpy(env.bot.engine)
    await env.labels(("spam",), ("question",))
    await env.slash("autotag enable", {"channel": env.h.channel_id})
    author = env.h.add_member()
    env.executor.gate.clear()  # the worker is busy with the first message

    await env.h.dispatch_message("spam 0", author_id=author, wait=False)
    await asyncio.wait_for(env.executor.started.wait(), 10)
    for i in range(1, 5):
        await env.h.dispatch_message(f"spam {i}", author_id=author, wait=False)
    await spy.wait_for(5)
    status = env.bot.engine.status()
    assert status.queued_background == 2 and status.shed == {"background_full": 2}  # 1 running, 2 waiting, 2 shed

    await env.h.invoke_message_menu(
        "Tag message", env.h.make_message("a question for a person", author_id=author), permissions=MOD, wait=False
    )
    await spy.wait_for(6)
    assert spy.calls == [True] * 5 + [False] and env.bot.engine.status().queued == 1

    env.executor.gate.set()
    await env.h.settle()
    assert env.executor.batches[1][0].text == "a question for a person"  # served before the waiting auto-tags
    assert "Tag this message?" in env.h.recorder.last("edit_original").text()
    tagged = sorted(t.message_id for t in await env.store.tags(env.guild_id))
    assert len(tagged) == 3  # spam 0, 1 and 2; 3 and 4 were shed
    await env.slash("status")
    assert "background full 2" in env.said()  # the shed auto-tags are counted for the owner to see
    env.h.assert_no_errors()


async def test_restart_in_the_middle_of_auto_tagging_loses_no_confirmed_tag(start: Start) -> None:
    env = await start()
    await env.labels(("spam",), ("question",))
    log_channel = env.h.add_channel("mod-log")
    await env.slash("autotag enable", {"channel": env.h.channel_id, "log_channel": log_channel})
    author = env.h.add_member()
    done = await env.h.dispatch_message("spam one", author_id=author)
    assert len(env.h.recorder.of_kind("send_message")) == 1  # announced, so it must survive
    env.executor.gate.clear()
    in_flight = await env.h.dispatch_message("spam two", author_id=author, wait=False)
    await asyncio.wait_for(env.executor.started.wait(), 10)
    await env.h.close()  # the bot stops while "spam two" is with the model

    async with Storage(env.backend.target) as store:
        assert [t.message_id for t in await store.moderation.tags(env.guild_id)] == [done.id]
    assert in_flight.id not in [r.message_id for r in env.h.recorder.records]  # never announced either


async def test_everything_survives_a_restart(start: Start) -> None:
    first = await start()
    await first.labels(("spam", "🚫"), ("question", "❓", "How do I change my settings?"))
    await first.slash("labelset threshold", {"value": 0.6})
    await first.slash("autotag enable", {"channel": first.h.channel_id})
    await first.h.dispatch_message("spam spam spam", author_id=first.h.add_member())
    await suggest(first, "a question")
    await click(first, "tag")
    await first.h.close()

    # A new process on the same file; Discord keeps the guild and channel ids.
    again = await start(guild_id=first.guild_id, channel_id=first.h.channel_id)
    await again.slash("labelset list")
    assert "🚫 **spam**" in again.said() and "❓ **question** — How do I change my settings?" in again.said()
    assert "threshold 0.60" in again.said()
    await again.slash("autotag list")
    assert f"<#{first.h.channel_id}>" in again.said()
    await again.slash("tags recent")
    assert (
        again.said().count("tagged by") == 2
        and "tagged by auto" in again.said()
        and f"<@{first.h.user_id}>" in again.said()
    )
    await again.h.dispatch_message("more spam", author_id=again.h.add_member())  # auto-tagging resumes by itself
    assert len(await again.store.tags(again.guild_id)) == 3


# --- reading tags ------------------------------------------------------------------------------


async def seed_tags(env: Env, *specs: tuple[Any, ...]) -> None:
    """Tags on messages 1000, 1001, ... given as `(label, days ago[, text])`, as if confirmed earlier."""
    now = time.time()
    await env.store.add_tags(
        [
            Tag(
                env.guild_id,
                env.h.channel_id,
                1000 + i,
                7,
                label,
                0.8,
                "embedding",
                env.h.user_id,
                False,
                now - days * 86400,
                text[0] if text else None,
            )
            for i, (label, days, *text) in enumerate(specs)
        ]
    )


async def test_tags_recent_filters_and_unknown_label(env: Env) -> None:
    await env.labels(("spam",), ("question",))
    other = env.h.add_channel("other")
    await seed_tags(env, ("spam", 2), ("question", 1), ("spam", 0))
    await env.store.add_tags([Tag(env.guild_id, other, 5, 7, "question", 0.6, "nli", 1, True, 0.0)])
    await env.slash("tags recent", {"label": "spam"})
    assert env.said().count("**spam**") == 2 and "question" not in env.said()
    await env.slash("tags recent", {"channel": other})
    assert env.said().count("tagged by") == 1 and "tagged by auto" in env.said()
    await env.slash("tags recent", {"label": "spma"})
    assert "There is no label “spma”" in env.h.recorder.last("response").text()


async def test_tags_stats_is_a_png_bar_chart(env: Env) -> None:
    await env.slash("tags stats")
    assert "No tags in the last 30 days" in env.said() and env.h.recorder.files() == []
    await seed_tags(env, ("spam", 1), ("spam", 2), ("question", 3), ("off-topic", 40))
    await env.slash("tags stats", {"days": 30})
    [chart] = env.h.recorder.files("edit_original")
    assert chart.filename == "tag-stats.png" and chart.data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(chart.data[16:20], "big"), int.from_bytes(chart.data[20:24], "big")
    assert (width, height) == (640, 120 + 35 * 2)  # one bar per label in the period
    shown = env.h.recorder.last("edit_original")
    assert shown.embeds[0]["image"]["url"] == "attachment://tag-stats.png"
    assert "3 tags in the last 30 days" in shown.text() and "off-topic" not in shown.text()
    assert re.search(r"spam\s+█+░*` 2", shown.text()) and re.search(r"question .*` 1", shown.text())


async def test_tags_export_csv(env: Env) -> None:
    await env.slash("labelset store_text", {"enabled": True})
    await seed_tags(env, ("spam", 1.5, '=HYPERLINK("http://evil")'), ("question", 0, 'how, do "I"\nreset?'))
    await env.store.add_tags([Tag(env.guild_id + 1, 1, 2, 3, "other guild", 0.5, "nli", 1, True, 0.0)])
    await env.slash("tags export")
    [export] = env.h.recorder.files("response")
    assert export.filename == f"tags-{env.guild_id}.csv" and "2 tags." in env.h.recorder.last("response").text()
    rows = list(csv.DictReader(io.StringIO(export.data.decode("utf-8-sig"))))
    assert [r["label"] for r in rows] == ["spam", "question"]  # oldest first; nothing of the other guild
    assert rows[0]["text"] == '\'=HYPERLINK("http://evil")'  # a spreadsheet won't run it as a formula
    assert (
        rows[1]["text"] == 'how, do "I"\nreset?'
        and rows[1]["auto"] == "no"
        and rows[1]["tagged_by"] == str(env.h.user_id)
    )
    assert rows[1]["link"] == f"https://discord.com/channels/{env.guild_id}/{env.h.channel_id}/1001"
    await env.slash("tags export", {"days": 1})  # the spam tag is 1.5 days old
    [_, recent] = env.h.recorder.files("response")
    assert recent.data.decode("utf-8-sig").count("\n") == 3  # header + one row spanning two lines


async def add_auto_and_embedded_tags(env: Env) -> None:
    """An auto-tag (no text, no vector) and a moderator's tag kept with its text and vector."""
    await env.store.add_tags(
        [Tag(env.guild_id, env.h.channel_id, 1002, 7, "spam", 0.91, "learned", env.h.bot_id, True, time.time())]
    )
    await env.store.add_tags(
        [Tag(env.guild_id, env.h.channel_id, 1003, 7, "question", None, "embedding", 5, False, time.time(), "hi?")],
        Embedding(VECTOR, "minilm"),
    )


async def test_tags_export_jsonl_loads_as_a_dataset(env: Env) -> None:
    await env.slash("labelset store_text", {"enabled": True})
    await seed_tags(env, ("spam", 1.5, "free nitro"), ("question", 0, 'how do "I"\nreset? ✨'))
    await add_auto_and_embedded_tags(env)
    await env.slash("tags export", {"format": "jsonl"})
    [export] = env.h.recorder.files("response")
    assert export.filename == f"tags-{env.guild_id}.jsonl" and "4 tags." in env.h.recorder.last("response").text()
    rows = [json.loads(line) for line in export.data.decode().splitlines()]
    assert all(list(row) == list(JSONL_COLUMNS) for row in rows)
    assert [(r["text"], r["label"], r["confirmed"], r["embedding_model"]) for r in rows] == [
        ("free nitro", "spam", True, None),
        ('how do "I"\nreset? ✨', "question", True, None),
        (None, "spam", False, None),  # an auto-tag keeps no text and no vector
        ("hi?", "question", True, "minilm"),
    ]
    assert rows[0]["channel_id"] == env.h.channel_id and datetime.fromisoformat(rows[0]["time"]).tzinfo is not None
    for column in JSONL_COLUMNS:  # one type per column (or null): what `datasets` needs to build its features
        assert len({type(row[column]) for row in rows} - {type(None)}) == 1, column
    await env.slash("labelset store_text", {"enabled": False})  # texts kept earlier leave with it on only
    await env.slash("tags export", {"format": "jsonl"})
    await env.slash("tags export")
    jsonl, csv_export = env.h.recorder.files("response")[1:]
    assert [json.loads(line)["text"] for line in jsonl.data.decode().splitlines()] == [None] * 4
    assert [r["text"] for r in csv.DictReader(io.StringIO(csv_export.data.decode("utf-8-sig")))] == [""] * 4


async def test_tags_export_parquet_has_the_jsonl_columns_typed(env: Env) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    await env.slash("labelset store_text", {"enabled": True})
    await seed_tags(env, ("spam", 1.5, "free nitro ✨"))
    await add_auto_and_embedded_tags(env)
    await env.slash("tags export", {"format": "parquet"})
    [export] = env.h.recorder.files("response")
    assert export.filename == f"tags-{env.guild_id}.parquet" and "3 tags." in env.h.recorder.last("response").text()
    table = pq.read_table(io.BytesIO(export.data))
    assert table.column_names == list(JSONL_COLUMNS)
    types = dict(zip(table.column_names, table.schema.types))
    assert types["confirmed"] == pa.bool_() and types["score"] == pa.float64() and types["channel_id"] == pa.int64()
    assert types["time"] == pa.timestamp("ms", tz="UTC") and types["text"] == pa.string()
    rows = table.to_pylist()
    assert [(r["text"], r["label"], r["confirmed"], r["score"], r["embedding_model"]) for r in rows] == [
        ("free nitro ✨", "spam", True, 0.8, None),
        (None, "spam", False, 0.91, None),  # an auto-tag keeps no text and no vector
        ("hi?", "question", True, None, "minilm"),
    ]
    assert rows[0]["channel_id"] == env.h.channel_id and rows[1]["message_id"] == 1002
    assert abs(rows[2]["time"].timestamp() - time.time()) < 60 and rows[2]["time"].tzinfo is not None
    await env.slash("labelset store_text", {"enabled": False})  # the same rule as JSON Lines: no text leaves
    await env.slash("tags export", {"format": "parquet"})
    off = pq.read_table(io.BytesIO(env.h.recorder.files("response")[1].data))
    assert off.column("text").to_pylist() == [None] * 3 and off.schema.field("text").type == pa.string()
    await env.slash("tags export", {"format": "xlsx"}, validate=False)
    assert "Pick a format from the list: csv, jsonl, parquet" in env.said()
    env.h.app_command_errors.clear()


async def test_tags_undo_by_id_and_bad_references(env: Env) -> None:
    await seed_tags(env, ("spam", 0), ("question", 0))
    await env.slash("tags undo", {"message": "1000"})
    assert "Removed 1 tag from message 1000: **spam**" in env.said()
    for value, expected in [
        ("1000", "has no tags"),
        ("not a link", "Give a message id"),
        (f"https://discord.com/channels/{env.guild_id + 1}/1/1001", "another server"),
    ]:
        await env.slash("tags undo", {"message": value})
        assert expected in env.h.recorder.last("response").text()
    assert [t.message_id for t in await env.store.tags(env.guild_id)] == [1001]


# --- a guild's data as a whole -------------------------------------------------------------------


async def test_purge_needs_an_admin_and_a_confirmation(env: Env) -> None:
    await env.labels(("spam",))
    await seed_tags(env, ("spam", 0))
    await env.store.add_label(env.guild_id + 1, "kept")  # another guild's data
    await env.slash("moderation purge", permissions=MOD, validate=False)  # a moderator is not an admin
    assert "Not allowed" in env.said() and "administrator" in env.said()

    await env.slash("moderation purge", permissions=ADMIN)
    prompt = env.h.recorder.last("response")
    assert prompt.ephemeral and "cannot be undone" in prompt.text()
    await env.h.invoke_component("purge:cancel")
    assert "Nothing deleted" in env.said() and len(await env.store.tags(env.guild_id)) == 1

    await env.slash("moderation purge", permissions=ADMIN)
    await env.h.invoke_component(
        "purge:confirm", user_id=env.h.add_member(), permissions=ADMIN
    )  # someone else's prompt
    assert len(await env.store.tags(env.guild_id)) == 1
    await env.h.invoke_component("purge:confirm")
    assert (
        "Deleted 1 tags, 1 labels, 0 auto-tagged channels, 0 other answers, 0 pending reviews, 0 learned models, "
        "0 policies and the scores of 0 auto-tagged messages" in env.said()
    )
    assert await env.store.tags(env.guild_id) == [] and (await env.store.config(env.guild_id)).labels == ()
    assert [label.name for label in (await env.store.config(env.guild_id + 1)).labels] == ["kept"]
    assert [type(e) for e in env.h.errors] == [app_commands.MissingPermissions]  # the moderator's attempt, nothing else


async def test_leaving_a_guild_deletes_its_data(env: Env) -> None:
    await env.labels(("spam",))
    await env.slash("autotag enable", {"channel": env.h.channel_id})
    await seed_tags(env, ("spam", 0))
    await env.store.add_label(env.guild_id + 1, "kept")
    env.h.state.parse_guild_delete({"id": str(env.guild_id)})  # the gateway's GUILD_DELETE: the bot was removed
    await env.h.settle()
    assert await env.store.tags(env.guild_id) == [] and await env.store.watches(env.guild_id) == []
    assert (await env.store.config(env.guild_id)).labels == ()
    assert [label.name for label in (await env.store.config(env.guild_id + 1)).labels] == ["kept"]


async def test_an_outage_is_not_a_removal(env: Env) -> None:
    await seed_tags(env, ("spam", 0))
    env.h.state.parse_guild_delete({"id": str(env.guild_id), "unavailable": True})
    await env.h.settle()
    assert len(await env.store.tags(env.guild_id)) == 1


# --- meaningful labels on the packaged model -------------------------------------------------------

# Each label described by a typical message (see README): with bare names, MiniLM ranks this
# support question under "bug report" (0.53) and even "spam" (0.32) above "question" (0.11).
DESCRIBED_LABELS = (
    ("spam", "🚫", "Free nitro! Click this link to claim your prize"),
    ("question", "❓", "How do I change my settings? Can someone help?"),
    ("bug report", None, "The app crashes with an error when I click save"),
    ("off-topic", None, "Anyone watching the game tonight?"),
)


@pytest.mark.slow
@on_sqlite_only
async def test_real_model_tags_a_support_question_as_question(start: Start, real_engine: Engine) -> None:
    env = await start(executor=Borrowed(real_engine), timeout=REAL_WORKER_TIMEOUT)
    await env.labels(*DESCRIBED_LABELS)
    await suggest(env, PASSWORD_QUESTION)
    options = component(env, "pick")["options"]
    assert options[0]["value"] == "question" and component(env, "tag")["label"] == "Tag as question"
    await click(env, "tag")
    [saved] = await env.store.tags(env.guild_id)
    assert saved.label == "question" and env.h.recorder.last("add_reaction").params["emoji"] == "❓"

    await env.slash("autotag enable", {"channel": env.h.channel_id, "threshold": 0.5})
    author = env.h.add_member()
    question = await env.h.dispatch_message(PASSWORD_QUESTION, author_id=author)
    spam = await env.h.dispatch_message(
        "BUY CHEAP FOLLOWERS NOW!!! click here http://free-nitro.example", author_id=author
    )
    labels = {(t.message_id, t.label) for t in await env.store.tags(env.guild_id) if t.auto}
    assert labels == {(question.id, "question"), (spam.id, "spam")}
    env.h.assert_no_errors()


async def test_synced_commands_carry_the_permission_hints(env: Env) -> None:
    await env.bot.tree.sync()
    synced = {c["name"]: c for c in env.h.recorder.synced_commands[None]}
    manage = discord.Permissions(manage_messages=True).value
    for name in ("labelset", "autotag", "tags", "learn", "Tag message"):
        assert int(synced[name]["default_member_permissions"]) == manage and synced[name]["dm_permission"] is False
    assert int(synced["moderation"]["default_member_permissions"]) == ADMIN.value
    assert synced["Tag message"]["type"] == 3  # a message context menu

    def walk(options: list[dict[str, Any]]) -> Any:
        for option in options:
            yield option
            yield from walk(option.get("options", []))

    for name in ("labelset", "autotag", "tags", "moderation", "learn"):  # what Discord refuses at sync time
        for item in [synced[name], *walk(synced[name]["options"])]:
            assert re.fullmatch(r"[-_a-z0-9]{1,32}", item["name"]) and 1 <= len(item["description"]) <= 100, item


MODERATION_EXTENSIONS = (
    "cogs.labelsets",
    "cogs.tagging",
    "cogs.autotag",
    "cogs.reviews",
    "cogs.learning",
    "cogs.asking",
    "cogs.tags",
)


async def test_unloading_the_cog_removes_the_context_menu(env: Env) -> None:
    assert env.bot.tree.get_command("Tag message", type=discord.AppCommandType.message) is not None
    for extension in MODERATION_EXTENSIONS:
        await env.bot.unload_extension(extension)
    assert env.bot.tree.get_command("Tag message", type=discord.AppCommandType.message) is None
    assert env.bot.tree.get_command("labelset") is None and env.bot.tree.get_command("learn") is None
    for extension in MODERATION_EXTENSIONS:  # and back, as on a reload
        await env.bot.load_extension(extension)
    assert env.bot.tree.get_command("Tag message", type=discord.AppCommandType.message) is not None


# --- learned labels ------------------------------------------------------------------------------


async def trainings_done(env: Env) -> None:
    """Wait for the background retrainings the learning cog started."""
    await asyncio.gather(*env.bot.get_cog("LearnedLabels").trainings.values())


async def learning(start: Start, tiny_engine: Engine, tiny_models: dict[str, Path], **env: Any) -> Env:
    """A bot on the tiny embedding model in the real worker: learns from 2 examples a label, retrains after 4
    answers."""
    return await start(
        executor=Borrowed(tiny_engine),
        timeout=REAL_WORKER_TIMEOUT,
        **{"EMBEDDING_MODEL": str(tiny_models["embedding"]), "MIN_EXAMPLES": "2", "RETRAIN_EVERY": "4"} | env,
    )


TEACHING = {
    "spam": ["free nitro, click here to claim", "cheap followers, buy now", "win a free phone at this link"],
    "question": ["how do I reset my password?", "where can I read the rules?", "can someone help me log in?"],
}


async def teach(env: Env) -> dict[str, list[discord.Message]]:
    """Tag each TEACHING message with its label through "Tag message" and its menu."""
    tagged: dict[str, list[discord.Message]] = {}
    for label, texts in TEACHING.items():
        for text in texts:
            tagged.setdefault(label, []).append(await suggest(env, text))
            await click(env, "pick", [label])
    await trainings_done(env)
    return tagged


def suggestion_lines(env: Env) -> dict[str, str]:
    """label -> its line in the latest suggestion."""
    text = env.h.recorder.last("edit_original").text()
    return {
        label: line
        for line in text.splitlines()
        for label in ("spam", "question", "off-topic")
        if line.startswith(f"`{label} ")
    }


async def test_tags_teach_the_bot_and_the_next_suggestion_uses_learned_labels(
    start: Start, tiny_engine: Engine, tiny_models: dict[str, Path]
) -> None:
    env = await learning(start, tiny_engine, tiny_models)
    await env.labels(("spam", "🚫"), ("question",))
    await suggest(env, "free nitro, click here to claim")
    assert "Labelled by zero-shot (embedding similarity)" in env.h.recorder.last("edit_original").text()
    await click(env, "none")  # one answer: not enough to learn anything yet
    await trainings_done(env)
    assert await env.store.label_model(env.guild_id) is None

    await teach(env)  # trained in the background as spam, then question, reached 2 examples
    model = await env.store.label_model(env.guild_id)
    # Trained when question reached 2 examples (3 spam + 2 question + "None of these"); a training still running then
    # makes the next answer's check come after it, so the last question may be in it too (one training at a time).
    assert model is not None and model.head.labels == ("spam", "question") and model.examples in (6, 7)
    assert model.fits(await env.store.config(env.guild_id), str(tiny_models["embedding"]))
    assert all(
        e.vector is not None and e.text is None for _, e in await env.store.examples(env.guild_id)
    )  # store_text is off

    for label, texts in TEACHING.items():
        await suggest(env, texts[0])
        shown = env.h.recorder.last("edit_original").text()
        assert "Labelled by learned labels" in shown and component(env, "tag")["label"] == f"Tag as {label}"
        assert all(line.endswith("· learned") for line in suggestion_lines(env).values())
    await click(env, "tag")
    saved = next(
        t
        for t in await env.store.tags(env.guild_id)
        if t.message_id == env.h.recorder.last("edit_original").message_id
        or t.label == "question"
        and t.method == "learned"
    )
    assert saved.method == "learned" and "Labelled by learned labels" in env.said()

    # A new label changes the label set: the stored model no longer fits, so zero-shot labels until the retraining ...
    await env.slash("labelset add", {"label": "off-topic"})
    await trainings_done(env)
    # ... which learned spam and question again, and leaves off-topic (no examples) to zero-shot, on the same scale.
    assert (await env.store.label_model(env.guild_id)).label_set == ("off-topic", "question", "spam")
    await suggest(env, TEACHING["spam"][1])
    lines = suggestion_lines(env)
    assert (
        lines["spam"].endswith("· learned")
        and lines["question"].endswith("· learned")
        and not lines["off-topic"].endswith("learned")
    )
    scores = [float(o["description"].removeprefix("score ")) for o in component(env, "pick")["options"]]
    assert sum(scores) <= 1.0 + 1e-6 and scores == sorted(scores, reverse=True)
    env.h.assert_no_errors()


async def test_labelset_train_and_report(start: Start, tiny_engine: Engine, tiny_models: dict[str, Path]) -> None:
    env = await learning(start, tiny_engine, tiny_models, RETRAIN_EVERY="1000")
    await env.labels(("spam",), ("question",), ("off-topic",))
    await env.slash("labelset report")
    assert "There are no examples yet" in env.h.recorder.last("response").text()
    await teach(env)
    await env.slash("labelset train")
    trained = env.h.recorder.last("edit_original").text()
    assert "Learned labels: **spam**, **question**, from 6 examples" in trained and "off-topic (0/2)" in trained

    await env.slash("labelset report")
    shown = env.h.recorder.last("edit_original")
    [chart] = env.h.recorder.files("edit_original")
    assert chart.filename == "labels-report.png" and chart.data.startswith(b"\x89PNG\r\n\x1a\n")
    assert shown.embeds[0]["image"]["url"] == "attachment://labels-report.png"
    report = shown.text()
    assert re.search(r"learned labels \*\*\d+%\*\* · zero-shot \d+% \(6 examples\)", report)
    assert "`spam     ` 3 examples\n" in report and "`off-topic` 0 examples · zero-shot until 2" in report
    assert "**off-topic**: 0 of the 2 examples it needs to be learned" in report  # the label to tag next
    # The learning curve: 2, then all 3 examples of spam and question (off-topic has none: it sits out).
    [curve] = [field for field in shown.embeds[0]["fields"] if field["name"].startswith("Learning curve")]
    assert re.fullmatch(
        r"`2 per label [█░]{10}` \*\*\d+%\*\* · zero-shot \d+%\n`3 per label [█░]{10}` \*\*\d+%\*\* · zero-shot \d+%\n"
        r"0 of 6 examples answer “Help me learn” questions of the last 24 hours\.",
        curve["value"],
    ), curve["value"]
    assert [type(e.original) for e in env.h.errors] == [InvalidInput]  # the report asked for before any example


FINETUNE_TEXTS = {
    "spam": ["free gift cards here", "buy cheap coins now", "click to win money", "get free skins", "visit my shop"],
    "question": ["how do I join a team?", "what time is the event?", "is the server up?", "who runs this?", "why?"],
}


async def test_labelset_finetune_needs_text_then_compares_and_is_used_only_when_better(
    start: Start, tiny_engine: Engine, tiny_models: dict[str, Path]
) -> None:
    env = await learning(start, tiny_engine, tiny_models, RETRAIN_EVERY="1000")
    await env.labels(("spam",), ("question",))
    await teach(env)  # store_text off: the examples keep their vectors, never their text
    await env.slash("labelset finetune")
    assert "this server does not store it" in env.h.recorder.last("response").text()
    await env.slash("labelset report")
    assert "Unavailable: it learns from the text of tagged messages" in env.h.recorder.last("edit_original").text()

    await env.slash("labelset store_text", {"enabled": True})
    for label, texts in FINETUNE_TEXTS.items():
        for text in texts:
            await suggest(env, text)
            await click(env, "pick", [label])
    await trainings_done(env)
    await env.slash("labelset finetune")
    assert "Fine-tuning started in the background" in env.h.recorder.last("response").text()
    await asyncio.gather(*env.bot.get_cog("LabelSets").fine_tunings.values())
    encoder, head = await env.store.encoder(env.guild_id), (await env.store.label_model(env.guild_id)).head
    assert encoder is not None and encoder.evaluated == 2  # each label's 5th message with text was held out

    await env.slash("labelset report")
    report = env.h.recorder.last("edit_original").text()
    assert re.search(
        r"fine-tuned \*\*\d+%\*\* · linear head \d+% on 2 held-out examples · "
        r"(in use|not used: the linear head did as well) · adapter \d+ KB, trained in \d+ s",
        report,
    ), report
    assert re.search(r"learned labels \*\*\d+%\*\*", report)  # the linear head's cross-validated accuracy too

    # Labels come from the fine-tuned encoder only while it is the better one (what the worker was sent).
    sent: list[Any] = []
    run = env.executor.run

    async def recording(task: str, jobs: list[tuple[int, Any]], events: Any) -> None:
        sent.extend(request for _, request in jobs)
        await run(task, jobs, events)

    env.executor.run = recording
    for tuned, linear, label_set, used in (
        (1.0, 0.5, encoder.label_set, True),
        (0.5, 0.5, encoder.label_set, False),
        (1.0, 0.5, ("other",), False),  # trained for other labels
    ):
        changed = dataclasses.replace(encoder, finetuned_accuracy=tuned, linear_accuracy=linear, label_set=label_set)
        await env.store.save_encoder(env.guild_id, changed)
        await suggest(env, "free gift cards here")
        assert component(env, "tag")["label"] == "Tag as spam"
        assert (sent[-1].encoder, sent[-1].head) == ((encoder.adapter, encoder.head) if used else (None, head))
    assert [type(e.original) for e in env.h.errors] == [InvalidInput]  # fine-tuning asked for without stored text


async def test_learning_bad_input_gets_clear_messages(
    start: Start, tiny_engine: Engine, tiny_models: dict[str, Path]
) -> None:
    env = await learning(start, tiny_engine, tiny_models, RETRAIN_EVERY="1000")
    await env.labels(("spam",))
    await env.slash("labelset report")
    assert "add at least two labels" in env.h.recorder.last("response").text()
    for text in TEACHING["spam"]:
        await suggest(env, text)
        await click(env, "tag")
    await env.slash("labelset train")  # one label, nothing that is not it
    assert "only one label has enough examples" in env.said() and await env.store.label_model(env.guild_id) is None

    # Two labels tagged on exactly the same messages.
    await env.labels(("junk",))
    for message_id in [t.message_id for t in await env.store.tags(env.guild_id)]:
        await env.store.add_tags(
            [
                Tag(
                    env.guild_id,
                    env.h.channel_id,
                    message_id,
                    7,
                    "junk",
                    None,
                    "embedding",
                    env.h.user_id,
                    False,
                    time.time(),
                    "x",
                )
            ]
        )
    await env.slash("labelset train")
    assert "**spam** and **junk** were tagged on exactly the same messages" in env.said()

    # A label removed after training: its examples stay, the stale model is not used.
    await env.slash("labelset remove", {"label": "junk"})
    assert "Its tags and examples are kept" in env.said()
    await suggest(env, TEACHING["spam"][0])
    assert "Labelled by zero-shot" in env.h.recorder.last("edit_original").text()
    await env.store.remove_label(env.guild_id, "spam")  # while a suggestion is shown, the label goes
    await env.labels(("question",))
    await click(env, "tag")
    assert "That label has been removed from the label set since" in env.said()


async def test_a_locked_database_during_a_retrain_loses_nothing(
    start: Start, tiny_engine: Engine, tiny_models: dict[str, Path]
) -> None:
    env = await learning(start, tiny_engine, tiny_models, busy_timeout=0.2, RETRAIN_EVERY="1000")
    await env.labels(("spam",), ("question",))
    await teach(env)
    before = await env.store.label_model(env.guild_id)  # trained in the background as labels became learnable
    async with env.backend.locked():  # e.g. a backup holding the write lock while the model is saved
        await env.slash("labelset train")
    assert "Busy" in env.said() and "nothing was saved" in env.said()
    assert await env.store.label_model(env.guild_id) == before and len(await env.store.examples(env.guild_id)) == 6
    await env.slash("labelset train")
    assert (await env.store.label_model(env.guild_id)).trained_at > before.trained_at


# --- the review queue and the log channel's actions ---------------------------------------------------


async def reviewing(start: Start, **env_vars: Any) -> tuple[Env, int]:
    """Three labels (a keyword match scores 5/7 = 0.71), auto-tag at 0.8, review from 0.3, a log channel."""
    env = await start(**env_vars)
    await env.labels(("spam", "🚫"), ("question",), ("bug report",))
    await env.slash("labelset threshold", {"value": 0.8, "review": 0.3})
    log_channel = env.h.add_channel("mod-log", channel_id=env_vars.get("log_channel_id"))
    await env.slash("autotag enable", {"channel": env.h.channel_id, "log_channel": log_channel})
    return env, log_channel


def actions(record: Any) -> list[str]:
    return [item["custom_id"].split(":")[1] for row in record.components for item in row["components"]]


async def test_review_queue_answers_become_examples(start: Start) -> None:
    env, log_channel = await reviewing(start)
    author = env.h.add_member()
    first = await env.h.dispatch_message("spam now", author_id=author)
    posted = env.h.recorder.last("send_message")
    assert (
        posted.channel_id == log_channel
        and "Review this auto-tag" in posted.text()
        and "**spam**? score 0.71" in posted.text()
    )
    assert actions(posted) == ["confirm", "reject", "relabel", "delete", "timeout"]
    assert await env.store.tags(env.guild_id) == []  # below the threshold: nothing is tagged until a moderator answers

    await click(env, "confirm", message_id=posted.message_id)
    [saved] = await env.store.tags(env.guild_id)
    assert (saved.message_id, saved.label, saved.auto, saved.tagged_by) == (first.id, "spam", False, env.h.user_id)
    assert saved.score == pytest.approx(5 / 7) and env.h.recorder.last("add_reaction").params["emoji"] == "🚫"
    answer, defer = env.h.recorder.last("edit_original"), env.h.recorder.last("response")
    assert (
        defer.response_type == 5
        and defer.ephemeral
        and "Answer saved" in answer.text()
        and f"✅ tagged **spam** by <@{env.h.user_id}>" in answer.text()
    )
    entry = env.h.recorder.last("edit_message")
    assert entry.message_id == posted.message_id and actions(entry) == [
        "delete",
        "timeout",
    ]  # answered: the review buttons go
    assert f"✅ tagged **spam** by <@{env.h.user_id}>" in entry.text()

    relabelled = await env.h.dispatch_message("spam or a question?", author_id=author)
    await click(env, "relabel", ["bug report"])
    rejected = await env.h.dispatch_message("spam, really?", author_id=author)
    await click(env, "reject")
    examples = dict(await env.store.examples(env.guild_id))
    assert examples[first.id] == Example("spam", True, None, VECTOR, "keywords")
    assert examples[relabelled.id] == Example("bug report", True, None, VECTOR, "keywords")
    assert examples[rejected.id] == Example("spam", False, None, VECTOR, "keywords")
    assert {t.label for t in await env.store.tags(env.guild_id) if t.message_id == relabelled.id} == {"bug report"}
    env.h.assert_no_errors()


async def test_a_review_answered_after_undo_or_without_permission_changes_nothing(start: Start) -> None:
    env, _ = await reviewing(start)
    message = await env.h.dispatch_message("spam now", author_id=env.h.add_member())
    await click(env, "confirm", permissions=MEMBER)
    reply = env.h.recorder.last("response")
    assert reply.ephemeral and "Not allowed" in reply.text() and "manage messages" in reply.text()
    await click(env, "timeout", ["60"])  # Manage Messages is not Moderate Members
    assert "moderate members" in env.h.recorder.last("response").text()
    await env.slash("tags undo", {"message": str(message.id)})
    await click(env, "confirm")
    assert "already answered, or the message's tags were undone" in env.said()
    assert await env.store.tags(env.guild_id) == [] and await env.store.examples(env.guild_id) == []


async def test_buttons_work_after_a_restart(start: Start) -> None:
    first, log_channel = await reviewing(start)
    author = first.h.add_member()
    reviewed = await first.h.dispatch_message("spam now", author_id=author)
    log_entry = first.h.recorder.last("send_message").message_id
    suggested = await suggest(first, "a question about bugs")
    suggestion = first.h.recorder.last("edit_original").message_id
    kept = {mid: first.h.recorder.messages[mid] for mid in (reviewed.id, log_entry, suggested.id, suggestion)}
    await first.h.close()

    # A new process on the same file; Discord keeps the channels, the messages and their buttons.
    again = await start(guild_id=first.guild_id, channel_id=first.h.channel_id)
    again.h.add_channel("mod-log", channel_id=log_channel)
    again.h.recorder.messages.update(kept)
    await click(again, "confirm", message_id=log_entry)
    await click(again, "tag", message_id=suggestion)  # its label is recomputed from the message, fetched again
    tags = {t.message_id: t for t in await again.store.tags(again.guild_id)}
    assert tags[reviewed.id].label == "spam" and not tags[reviewed.id].auto
    assert tags[suggested.id].label == "question" and tags[suggested.id].score == pytest.approx(5 / 7)
    assert len(await again.store.examples(again.guild_id)) == 2 and "Tag saved" in again.said()
    again.h.assert_no_errors()


async def test_answering_a_suggestion_whose_message_is_gone_after_a_restart(env: Env) -> None:
    await env.labels(("spam", "🚫"), ("question",))
    message = await suggest(env, "spam spam")
    # As after a restart: the suggestion is known only by its buttons' ids.
    env.bot.get_cog("Tagging").suggestions.clear()
    del env.h.recorder.messages[message.id]
    await click(env, "none")
    assert "That message has been deleted" in env.said() and await env.store.examples(env.guild_id) == []
    await click(env, "tag")
    [saved] = await env.store.tags(env.guild_id)  # the moderator's tag is kept, without a score or an example
    assert (saved.message_id, saved.label, saved.score) == (message.id, "spam", None)
    assert "it can't teach the bot" in env.said() and await env.store.examples(env.guild_id) == [
        (message.id, Example("spam", True))
    ]


async def test_delete_and_timeout_from_the_log_with_audit_reasons(start: Start) -> None:
    env, _ = await reviewing(start)
    powers = discord.Permissions(view_channel=True, send_messages=True, manage_messages=True, moderate_members=True)
    env.h.add_member(
        env.h.bot_id, "HarnessBot", roles=[env.h.add_role("bot", permissions=powers, position=3)], bot=True
    )
    moderator = env.h.add_member(name="mod", roles=[env.h.add_role("mods", permissions=powers, position=2)])
    author = env.h.add_member(name="poster")
    message = await env.h.dispatch_message("spam now", author_id=author)

    await click(env, "delete", user_id=moderator, permissions=powers)
    deleted = env.h.recorder.last("delete_message")
    assert (
        deleted.message_id == message.id
        and deleted.reason == f"Deleted by mod ({moderator}) from the auto-tag log (message {message.id})"
    )
    assert "Message deleted" in env.said()

    await click(env, "timeout", ["600"], user_id=moderator, permissions=powers)
    timed_out = env.h.recorder.last("edit_member")
    until = datetime.fromisoformat(timed_out.body["communication_disabled_until"])
    assert (
        timed_out.params["user_id"] == str(author) and abs((until - discord.utils.utcnow()).total_seconds() - 600) < 60
    )
    assert (
        timed_out.reason.startswith("Timed out for 10 minutes by mod") and "is timed out for 10 minutes" in env.said()
    )

    refusals = [
        (dict(values=[str(29 * 86400)], validate=False), "at most 28 days"),  # a forged menu value
        (dict(values=["60"], user_id=env.h.add_member(name="new mod")), "their highest role is not below yours"),
    ]
    for kwargs, expected in refusals:
        await click(env, "timeout", kwargs.pop("values"), permissions=powers, **{"user_id": moderator} | kwargs)
        assert expected in env.said()
    del env.h.recorder.members[author]  # the author left
    await click(env, "timeout", ["60"], user_id=moderator, permissions=powers)
    assert "is no longer a member of this server" in env.said()
    env.h.add_member(env.h.bot_id, "HarnessBot", bot=True)  # the bot lost its role
    await click(env, "delete", user_id=moderator, permissions=powers)
    assert "I need the Manage Messages permission" in env.said()
    assert len(env.h.recorder.of_kind("delete_message")) == 1 and len(env.h.recorder.of_kind("edit_member")) == 1


async def test_threads_under_a_watched_channel_are_auto_tagged(env: Env) -> None:
    await env.labels(("spam",), ("question",))
    await env.slash("autotag enable", {"channel": env.h.channel_id})
    author = env.h.add_member()
    thread = env.h.add_thread("help")
    elsewhere = env.h.add_thread("chat", parent_id=env.h.add_channel("unwatched"))
    message = await env.h.dispatch_message("spam in a thread", author_id=author, channel_id=thread)
    await env.h.dispatch_message("spam in another thread", author_id=author, channel_id=elsewhere)
    [saved] = await env.store.tags(env.guild_id)
    assert (saved.message_id, saved.channel_id, saved.label, saved.auto) == (message.id, thread, "spam", True)


@pytest.mark.slow
@on_sqlite_only
async def test_real_model_learned_labels_beat_zero_shot(start: Start, real_engine: Engine) -> None:
    """Bare label names, the packaged MiniLM, and eight tagged messages per label from the bench's intent set (one per
    train template): suggestions for messages of other templates get better, and the report says so."""
    from bench.intents import messages

    env = await start(executor=Borrowed(real_engine), timeout=REAL_WORKER_TIMEOUT)
    labels = ("question", "bug report", "spam", "off-topic", "feedback")
    await env.labels(*[(label,) for label in labels])
    per_label = {label: [m for m in messages() if m.label == label] for label in labels}
    held_out = [m for label in labels for m in [m for m in per_label[label] if m.split == "test"][::15][:3]]

    async def right() -> int:
        tops = []
        for m in held_out:
            await suggest(env, m.text)
            tops.append(component(env, "tag")["label"] == f"Tag as {m.label}")
        return sum(tops)

    zero_shot = await right()
    assert "Labelled by zero-shot" in env.h.recorder.last("edit_original").text()
    taught = [m for label in labels for m in [m for m in per_label[label] if m.split == "train"][::15][:8]]
    for i, m in enumerate(taught):
        await env.store.add_tags(
            [
                Tag(
                    env.guild_id,
                    env.h.channel_id,
                    5000 + i,
                    7,
                    m.label,
                    None,
                    "embedding",
                    env.h.user_id,
                    False,
                    time.time(),
                    m.text,
                )
            ]
        )  # tagged with store_text on: trained from the text
    await env.slash("labelset train")
    assert (
        "Learned labels: **question**, **bug report**, **spam**, **off-topic**, **feedback**, from 40 examples"
        in env.said()
    )
    learned = await right()
    assert "Labelled by learned labels" in env.h.recorder.last("edit_original").text()
    assert learned > zero_shot, (learned, zero_shot)

    await env.slash("labelset report")
    report = env.h.recorder.last("edit_original").text()
    learned_share, zero_shot_share = map(
        int, re.search(r"learned labels \*\*(\d+)%\*\* · zero-shot (\d+)%", report).groups()
    )
    assert learned_share > zero_shot_share
    env.h.assert_no_errors()
