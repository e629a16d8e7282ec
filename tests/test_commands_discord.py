"""The slash commands end to end through discord.py's real CommandTree.

Every test dispatches real INTERACTION_CREATE payloads (tests/discord_harness.py) into a
fresh `HFBot` whose cogs are loaded by its own `setup_hook`, and the bot talks to a real
engine: one spawned worker per module running the tiny random-weight models of
`tests/model_factory.py`. What the bot sends back is read from the harness recorder
(the HTTP payloads Discord would receive).

Waiting is never done with sleeps: a `Gate` holds the engine's executor until the test
releases it, so "a request waits behind others" and "the queue is full" are set up
exactly, and the harness's `settle` waits for the command to finish.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import discord
import pytest
import pytest_asyncio
from discord import app_commands

from bot.client import HFBot
from bot.commands import render_result
from bot.embeds import to_embed
from bot.engine import Busy, DeadlineExceeded, Engine, InvalidInput
from bot.reply import DESCRIPTION_LIMIT, clip, paginate
from bot.settings import Settings
from bot.specs import roles
from bot.specs.generation import GenerationResult
from bot.specs.tokenize import TokenizeRequest

from .discord_harness import DEFERRED_CHANNEL_MESSAGE, EPHEMERAL, FakeDiscord, Record

CHANNEL_MESSAGE = 4
WAIT = 30.0  # seconds before an awaited event fails the test instead of hanging the session
NO_PINGS = {"parse": []}
MENTIONS = "@everyone <@123> @here <@&456>"

# Discord's limits (https://discord.com/developers/docs/resources/message#embed-object-embed-limits)
EMBED_TITLE, EMBED_DESCRIPTION, EMBED_FIELD_VALUE, EMBED_FOOTER, EMBED_TOTAL = 256, 4096, 1024, 2048, 6000
CONTENT_LIMIT = 2000


# --------------------------------------------------------------------------------------------- fixtures


def bot_env(tiny_models: dict, data_dir: str, **extra: str) -> dict[str, str]:
    env = {
        "SENTIMENT_MODEL": str(tiny_models["sentiment"]),
        "GENERATION_MODEL": str(tiny_models["gpt2"]),
        "ZERO_SHOT_MODEL": str(tiny_models["nli"]),
        "FILL_MASK_MODEL": str(tiny_models["fill_mask"]),
        "EMBEDDING_MODEL": str(tiny_models["embedding"]),
        "MODEL_PROFILE": "offline",
        "MODEL_CACHE_DIR": f"{data_dir}/models",
        "DATABASE_PATH": f"{data_dir}/bot.sqlite3",  # never the repository's data/
        "DEVICE": "cpu",
    }
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def settings(tiny_models, tmp_path_factory) -> Settings:
    return Settings.from_env(bot_env(tiny_models, str(tmp_path_factory.mktemp("bot-data"))))


@pytest.fixture(scope="module")
def small_settings(tiny_models, tmp_path_factory) -> Settings:
    """A queue of one waiting request and one request in flight per user."""
    return Settings.from_env(
        bot_env(
            tiny_models, str(tmp_path_factory.mktemp("bot-data")), MAX_QUEUE="1", MAX_PER_USER="1", TORCH_THREADS="1"
        )
    )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def engine(settings):
    engine = Engine(settings.engine)
    await engine.start()
    yield engine
    await engine.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def small_engine(small_settings):
    engine = Engine(small_settings.engine)
    await engine.start()
    yield engine
    await engine.close()


@pytest_asyncio.fixture(loop_scope="session")
async def make_bot():
    """`bot, h = await make_bot(settings, engine)`: a fresh HFBot (cogs loaded by its setup_hook) in a fake Discord.

    Teardown closes each bot (Discord side and tag store) through HFBot.close; the module's engine
    outlives every bot (whoever creates an engine closes it).
    """
    made: list[tuple[HFBot, FakeDiscord]] = []

    async def make(settings: Settings, engine: Engine) -> tuple[HFBot, FakeDiscord]:
        bot = HFBot(settings, engine)
        assert bot.engine is engine
        h = await FakeDiscord.create(bot)
        made.append((bot, h))
        return bot, h

    yield make
    for _, h in made:
        await h.close()


@pytest_asyncio.fixture(loop_scope="session")
async def env(make_bot, settings, engine):
    return await make_bot(settings, engine)


class Gate:
    """Holds an engine's executor: every batch waits in `execute` until `release()`.

    `entered` is set as soon as a batch is being held, so a test knows a job is running
    (and everything submitted after it waits in the queue).
    """

    def __init__(self, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
        self.engine = engine
        self.entered = asyncio.Event()
        self.opened = asyncio.Event()
        self.jobs: list = []
        real = engine.executor.run

        async def held(task: str, jobs: list, events: Any) -> None:
            self.entered.set()
            await self.opened.wait()
            await real(task, jobs, events)

        monkeypatch.setattr(engine.executor, "run", held)

    def submit(self, user: str, text: str = "blocker") -> Any:
        job = self.engine.submit_job(TokenizeRequest(text), user=user)
        self.jobs.append(job)
        return job

    def release(self) -> None:
        self.opened.set()

    async def drain(self) -> None:
        self.release()
        results = await asyncio.wait_for(asyncio.gather(*(j.result() for j in self.jobs), return_exceptions=True), WAIT)
        for result in results:
            assert not isinstance(result, BaseException), result


@pytest_asyncio.fixture(loop_scope="session")
async def gate(monkeypatch):
    """`gate(engine)` -> a Gate; teardown releases it and waits for its jobs, so the engine is left idle."""
    gates: list[Gate] = []

    def make(engine: Engine) -> Gate:
        g = Gate(engine, monkeypatch)
        gates.append(g)
        return g

    yield make
    for g in gates:
        await g.drain()


class ChangedEvents:
    """Passes each job's outcome through `change(task, outcome, chunk)`; `chunk(sequence, text)` streams more."""

    def __init__(self, task: str, events: Any, change: Callable[..., Any]) -> None:
        self.task, self.events, self.change = task, events, change

    def chunk(self, job_id: int, sequence: int, text: str) -> None:
        self.events.chunk(job_id, sequence, text)

    def done(self, job_id: int, outcome: Any) -> None:
        self.events.done(
            job_id, self.change(self.task, outcome, lambda sequence, text: self.events.chunk(job_id, sequence, text))
        )


def wrap_outcomes(
    monkeypatch: pytest.MonkeyPatch, engine: Engine, change: Callable[[str, Any, Callable[[int, str], None]], Any]
) -> None:
    """Let the real worker run, then pass each outcome through `change(task, outcome, chunk)`."""
    real = engine.executor.run

    async def run(task: str, jobs: list, events: Any) -> None:
        await real(task, jobs, ChangedEvents(task, events, change))

    monkeypatch.setattr(engine.executor, "run", run)


def count_chunks(monkeypatch: pytest.MonkeyPatch, engine: Engine) -> list[tuple[int, str]]:
    """Record every (sequence, delta) chunk the bot reads from the jobs it submits."""
    seen: list[tuple[int, str]] = []
    real_submit = engine.submit_job

    def submit_job(request: Any, **kwargs: Any) -> Any:
        job = real_submit(request, **kwargs)
        real_chunks = job.chunks

        async def chunks():
            async for item in real_chunks():
                seen.append(item)
                yield item

        job.chunks = chunks
        return job

    monkeypatch.setattr(engine, "submit_job", submit_job)
    return seen


# --------------------------------------------------------------------------------------------- helpers


def reset(h: FakeDiscord) -> None:
    """Forget what was recorded so far (calls and command errors)."""
    h.recorder.clear()
    h.app_command_errors.clear()


def edits(h: FakeDiscord) -> list[Record]:
    return h.recorder.of_kind("edit_original")


def final_embed(h: FakeDiscord) -> dict:
    last = h.recorder.last("edit_original")
    assert last is not None, h.recorder.kinds()
    assert last.content is None and len(last.embeds) == 1
    return last.embeds[0]


def assert_answered(h: FakeDiscord, *, private: bool = False) -> dict:
    """Deferred ("thinking") first, edits of the original after, nothing else; returns the final embed."""
    kinds = h.recorder.kinds()
    assert kinds[0] == "response" and set(kinds[1:]) == {"edit_original"}, (
        kinds,
        [r.text() for r in h.recorder.message_records()],
    )
    defer = h.recorder.records[0]
    assert defer.response_type == DEFERRED_CHANNEL_MESSAGE
    assert defer.ephemeral is private
    assert_no_pings(h)
    h.assert_no_errors()
    return final_embed(h)


def assert_no_pings(h: FakeDiscord) -> None:
    """Every payload that carries a message says: ping nobody."""
    carrying = [r for r in h.recorder.message_records() if r.content or r.embeds]
    assert carrying
    for record in carrying:
        assert record.allowed_mentions == NO_PINGS, (record.kind, record.payload)


def assert_within_limits(embed: dict) -> None:
    assert len(embed.get("title") or "") <= EMBED_TITLE
    assert len(embed.get("description") or "") <= EMBED_DESCRIPTION
    assert len(embed.get("fields") or []) <= 25
    for f in embed.get("fields") or []:
        assert len(f["name"]) <= EMBED_TITLE and len(f["value"]) <= EMBED_FIELD_VALUE
    assert len((embed.get("footer") or {}).get("text") or "") <= EMBED_FOOTER
    total = (
        len(embed.get("title") or "")
        + len(embed.get("description") or "")
        + sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields") or [])
        + len((embed.get("footer") or {}).get("text") or "")
    )
    assert total <= EMBED_TOTAL


def private_refusal(h: FakeDiscord) -> dict:
    """The single reply is an immediate, ephemeral message (no defer) with one embed; returns it."""
    replies = h.recorder.message_records()
    assert [r.kind for r in replies] == ["response"], h.recorder.kinds()
    reply = replies[0]
    assert reply.response_type == CHANNEL_MESSAGE
    assert reply.flags & EPHEMERAL
    assert reply.allowed_mentions == NO_PINGS
    assert len(reply.embeds) == 1
    text = reply.text()
    assert "Traceback" not in text and "Error(" not in text and 'File "' not in text
    return reply.embeds[0]


# --------------------------------------------------------------------------------------------- happy paths


async def test_commands_are_registered_with_discord_ranges(env):
    bot, h = env
    names = {c.name for c in bot.tree.get_commands()}
    assert names >= {"sentiment", "generate", "label", "fill", "tokens", "status", "sync"}
    generate = bot.tree.get_command("generate")
    params = {p.name: p for p in generate.parameters}
    assert (params["max_new_tokens"].min_value, params["max_new_tokens"].max_value) == (1, 256)
    assert params["temperature"].max_value == 2.0
    assert [c.value for c in params["mode"].choices] == ["complete", "chat"]


async def test_commands_are_synced_at_start_up_only_to_the_dev_guild(make_bot, settings, engine):
    """DEV_GUILD_ID: the global commands are copied to that guild and synced there as the bot starts (instant for
    a test server); without it nothing is synced on start (Discord rate-limits it: `python -m bot sync`)."""
    bot, h = await make_bot(settings, engine)
    assert h.recorder.of_kind("sync_commands") == []
    dev_guild = 987654321098765432
    bot, h = await make_bot(dataclasses.replace(settings, dev_guild_id=dev_guild), engine)
    [synced] = h.recorder.of_kind("sync_commands")
    assert synced.params["guild_id"] == str(dev_guild) and list(h.recorder.synced_commands) == [dev_guild]
    published = {command["name"] for command in h.recorder.synced_commands[dev_guild]}
    assert published == {command.name for command in bot.tree.get_commands()} and "chat" in published
    assert {c.name for c in bot.tree.get_commands(guild=discord.Object(dev_guild))} == published  # copied there


async def test_sentiment_several_sentences(env):
    bot, h = env
    await h.invoke_slash("sentiment", {"text": "I love this bot | The food was awful\nIt is fine"})
    embed = assert_answered(h)
    assert embed["title"] == "Sentiment"
    lines = embed["description"].split("\n")
    assert len(lines) == 3
    for line, sentence in zip(lines, ["I love this bot", "The food was awful", "It is fine"]):
        assert f"“{sentence}”" in line
        assert re.search(r"\*\*(POSITIVE|NEGATIVE)\*\* `[█░]{10}` [01]\.\d\d", line), line
    assert embed["footer"]["text"].endswith("· classifier")
    assert_within_limits(embed)


async def test_generate_complete_on_gpt2(env):
    bot, h = env
    bot.stream_interval = 3600.0 * 24 * 365 * 1000  # only the first chunk is shown before the answer
    await h.invoke_slash("generate", {"prompt": "The weather today is", "max_new_tokens": 8, "temperature": 0.0})
    embed = assert_answered(h)
    # Defer; the Stop button; the first chunk; the answer with Regenerate.
    assert h.recorder.kinds() == ["response", "edit_original", "edit_original", "edit_original"]
    assert embed["title"] == "Generation"
    head, _, body = embed["description"].partition("\n")
    assert head == "**The weather today is**"
    assert body.strip()
    assert re.search(r"· [1-8] tokens", embed["footer"]["text"]), embed["footer"]
    assert "gpt2" in embed["footer"]["text"]


async def test_label_nli(env):
    bot, h = env
    await h.invoke_slash(
        "label", {"text": "What a goal in the last minute!", "labels": "sports, politics, cooking", "method": "nli"}
    )
    embed = assert_answered(h)
    assert embed["title"] == "Labels"
    lines = embed["description"].split("\n")
    assert lines[0] == "“What a goal in the last minute!”" and lines[1] == ""
    scores = {}
    for line in lines[2:]:
        match = re.fullmatch(r"`(\w+) +[█░]{10}` (\d\.\d\d)", line)
        assert match, line
        scores[match.group(1)] = float(match.group(2))
    assert set(scores) == {"sports", "politics", "cooking"}
    assert list(scores.values()) == sorted(scores.values(), reverse=True)  # best first
    assert math.isclose(sum(scores.values()), 1.0, abs_tol=0.02)
    assert "· nli · scores sum to 1" in embed["footer"]["text"]


async def test_label_embedding_multi_label(env):
    bot, h = env
    await h.invoke_slash(
        "label",
        {
            "text": "The senator voted on the budget",
            "labels": "sports, politics",
            "method": "embedding",
            "multi_label": True,
        },
    )
    embed = assert_answered(h)
    assert "`sports" in embed["description"] and "`politics" in embed["description"]
    assert "· embedding · independent scores" in embed["footer"]["text"]


async def test_label_default_method_is_the_profiles(env, settings):
    bot, h = env
    assert settings.label_method == "embedding"  # offline profile default
    await h.invoke_slash("label", {"text": "pizza night", "labels": "food, weather"})
    assert "· embedding ·" in assert_answered(h)["footer"]["text"]


async def test_fill_mask(env):
    bot, h = env
    await h.invoke_slash("fill", {"text": "Paris is the [MASK] of France.", "top_k": 3})
    embed = assert_answered(h)
    assert embed["title"] == "Fill the mask"
    lines = embed["description"].split("\n")
    assert len(lines) == 3
    for i, line in enumerate(lines, 1):
        match = re.fullmatch(r"(\d)\. \*\*(.+?)\*\* `[█░]{10}` \d\.\d\d — “Paris is the (.+) of France\.”", line)
        assert match, line
        assert int(match.group(1)) == i and match.group(2) == match.group(3)  # the guess is put in the sentence
    assert "fill_mask" in embed["footer"]["text"]


async def test_tokens_fields(env):
    bot, h = env
    await h.invoke_slash("tokens", {"text": "Hello world", "model": "sentiment"})
    embed = assert_answered(h)
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert list(fields) == ["Tokens", "IDs", "Special tokens added", "Decoded back"]
    ids = fields["IDs"].split()
    assert embed["title"] == f"Tokens ({len(ids)})" and all(i.isdigit() for i in ids)
    assert len(fields["Tokens"].split(" │ ")) == len(ids)
    assert fields["Special tokens added"] == "[CLS], [SEP]"  # the BERT-style sentiment tokenizer
    assert fields["Tokens"].startswith("**[CLS]**") and fields["Tokens"].endswith("**[SEP]**")
    assert "hello" in fields["Decoded back"].lower()
    assert embed["description"] == "“Hello world”"
    assert embed["footer"]["text"].endswith("sentiment tokenizer")


async def test_tokens_of_the_generation_model(env):
    bot, h = env
    await h.invoke_slash("tokens", {"text": "Hello world", "model": "generation"})
    fields = {f["name"]: f["value"] for f in assert_answered(h)["fields"]}
    assert fields["Special tokens added"] == "none"  # gpt2 adds none
    assert fields["Decoded back"] == "Hello world"


async def test_status(env):
    bot, h = env
    await h.invoke_slash("tokens", {"text": "warm up"})
    reset(h)
    await h.invoke_slash("status")
    assert h.recorder.kinds() == ["response"]
    reply = h.recorder.records[0]
    assert reply.response_type == CHANNEL_MESSAGE and not reply.ephemeral  # answered at once, no defer
    assert reply.allowed_mentions == NO_PINGS
    embed = reply.embeds[0]
    assert embed["title"] == "Status"
    assert "**Device** cpu · profile offline" in embed["description"]
    # DTYPE=auto: float32 for the decoders; bf16 for the encoders where the CPU has bf16 instructions.
    precision = next(line for line in embed["description"].splitlines() if line.startswith("**Precision** "))
    listed = {
        role: dtype
        for part in precision.removeprefix("**Precision** ").split(" · ")
        for dtype, roles in [part.split(": ")]
        for role in roles.split(", ")
    }
    assert listed == bot.engine.status().dtypes and listed["generation"] == "float32"
    assert set(listed.values()) <= {"float32", "bfloat16"}
    assert "**Worker** running · restarts 0 · continuous batching" in embed["description"]
    assert "**Queue** 0 waiting · 0 running · 0 background" in embed["description"]
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert "Loaded models" in fields
    assert re.search(r"served [1-9]\d* · failed 0", fields["tokenize"])
    assert_within_limits(embed)
    h.assert_no_errors()


async def test_status_private(env):
    bot, h = env
    await h.invoke_slash("status", {"private": True})
    reply = h.recorder.last("response")
    assert reply.response_type == CHANNEL_MESSAGE and reply.flags & EPHEMERAL


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("sentiment", {"text": "great"}),
        ("label", {"text": "great goal", "labels": "sports, food"}),
        ("fill", {"text": "a ___ day"}),
        ("tokens", {"text": "hi"}),
        ("generate", {"prompt": "hi", "max_new_tokens": 2}),
    ],
)
async def test_private_answers_are_ephemeral(env, command, options):
    bot, h = env
    await h.invoke_slash(command, {**options, "private": True})
    assert_answered(h, private=True)
    assert h.recorder.records[0].payload == {"flags": EPHEMERAL}  # thinking, visible to the user only


# --------------------------------------------------------------------------------------------- refusals


INVALID = [
    pytest.param("fill", {"text": "There is no mask here"}, "Put exactly one mask", True, id="fill-no-mask"),
    pytest.param("fill", {"text": "[MASK] and ___ twice"}, "I found 2 masks", True, id="fill-two-masks"),
    pytest.param(
        "fill", {"text": "a [MASK]", "top_k": 0}, "top_k must be between 1 and 10 (got 0)", False, id="fill-top-k-0"
    ),
    pytest.param(
        "label",
        {"text": "goal!", "labels": "sports, Sports"},
        "The label 'Sports' is given twice",
        True,
        id="label-duplicate",
    ),
    pytest.param(
        "label", {"text": "goal!", "labels": "sports,,politics"}, "One of the labels is empty", True, id="label-empty"
    ),
    pytest.param(
        "label",
        {"text": "goal!", "labels": ", ".join(f"l{i}" for i in range(26))},
        "That is 26 labels; the limit is 25",
        True,
        id="label-too-many",
    ),
    pytest.param(
        "label",
        {"text": "goal!", "labels": "a, b", "method": "svm"},
        "method must be one of: nli, embedding",
        False,
        id="label-forged-method",
    ),
    pytest.param(
        "sentiment",
        {"text": " | ".join(["good"] * 11)},
        "That is 11 sentences; I take at most 10",
        True,
        id="sentiment-too-many",
    ),
    pytest.param("sentiment", {"text": " | \n | "}, "The text is empty", True, id="sentiment-only-separators"),
    pytest.param(
        "sentiment",
        {"text": "x" * 2001},
        "too long (2001 characters); the limit is 2000",
        False,
        id="sentiment-forged-length",
    ),
    pytest.param("tokens", {"text": "   "}, "The text is empty", True, id="tokens-blank"),
    pytest.param(
        "tokens",
        {"text": "hi", "model": "gpt5"},
        "model must be one of: " + ", ".join(roles()),
        False,
        id="tokens-forged-model",
    ),
    pytest.param(
        "generate",
        {"prompt": "hi", "max_new_tokens": 1000},
        "max_new_tokens must be between 1 and 256 (got 1000)",
        False,
        id="generate-forged-max-new-tokens",
    ),
    pytest.param(
        "generate",
        {"prompt": "hi", "temperature": float("nan")},
        "temperature must be a real number, not nan",
        False,
        id="generate-forged-nan",
    ),
    pytest.param(
        "generate",
        {"prompt": "hi", "temperature": float("inf")},
        "temperature must be a real number, not inf",
        False,
        id="generate-forged-inf",
    ),
    pytest.param(
        "generate",
        {"prompt": "hi", "top_p": 0.0},
        "top_p must be between 0.01 and 1 (got 0)",
        False,
        id="generate-forged-top-p",
    ),
    pytest.param(
        "generate",
        {"prompt": "hi", "num_return_sequences": 9},
        "num_return_sequences must be between 1 and 4",
        False,
        id="generate-forged-sequences",
    ),
    pytest.param(
        "generate", {"prompt": "hi", "seed": -1}, "seed must be between 0 and", False, id="generate-forged-seed"
    ),
    pytest.param(
        "generate",
        {"prompt": "hi", "mode": "poem"},
        "mode must be one of: complete, chat",
        False,
        id="generate-forged-mode",
    ),
]


@pytest.mark.parametrize(("command", "options", "message", "discord_allows"), INVALID)
async def test_invalid_input_is_a_private_message_from_the_command_layer(
    env, engine, caplog, command, options, message, discord_allows
):
    bot, h = env
    served_before = sum(t.served + t.failed for t in engine.metrics.tasks().values())
    with caplog.at_level(logging.WARNING):
        # Values Discord itself would refuse are forged past its checks (validate=False), as a modified client could.
        await h.invoke_slash(command, options, validate=discord_allows)
    embed = private_refusal(h)
    assert embed["title"] == "That didn't work"
    assert message in embed["description"]
    # Refused by the command layer before anything was queued, and not logged as a failure.
    [error] = h.app_command_errors
    assert isinstance(error, app_commands.CommandInvokeError) and isinstance(error.original, InvalidInput)
    assert sum(t.served + t.failed for t in engine.metrics.tasks().values()) == served_before
    assert engine.status().queued == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_late_validation_error_is_private(env):
    bot, h = env
    # The tiny gpt2 has no chat template: only the worker can tell, after the bot has deferred.
    await h.invoke_slash("generate", {"prompt": "hello", "mode": "chat", "max_new_tokens": 2})
    error_records = [r for r in h.recorder.message_records() if "cannot chat" in r.text()]
    assert error_records, h.recorder.kinds()
    assert "Traceback" not in h.recorder.all_text()
    # Either the thinking message was private, or the error went out as a private followup.
    assert all(r.ephemeral or (r.kind == "edit_original" and h.recorder.records[0].ephemeral) for r in error_records)


async def test_late_validation_error_is_a_friendly_message(env):
    """The case above, minus privacy: the user gets the engine's explanation, not an apology or a traceback."""
    bot, h = env
    await h.invoke_slash("generate", {"prompt": "hello", "mode": "chat", "max_new_tokens": 2})
    [shown] = [e for e in h.recorder.embeds() if e.get("title") == "That didn't work"]
    assert "no chat template" in shown["description"] and "mode: complete" in shown["description"]
    assert "Traceback" not in h.recorder.all_text() and "Sorry" not in h.recorder.all_text()
    assert isinstance(h.app_command_errors[-1].original, InvalidInput)
    assert_no_pings(h)


# --------------------------------------------------------------------------------------------- back-pressure


async def test_queue_full_is_busy_with_a_retry_time(make_bot, small_settings, small_engine, gate):
    bot, h = await make_bot(small_settings, small_engine)
    g = gate(small_engine)
    g.submit("someone")  # runs (held by the gate)
    await asyncio.wait_for(g.entered.wait(), WAIT)
    g.submit("someone else")  # waits: the queue (MAX_QUEUE=1) is now full
    assert small_engine.status().queued == 1

    await h.invoke_slash("tokens", {"text": "hello"})
    embed = private_refusal(h)
    assert embed["title"] == "Busy"
    assert re.search(
        r"I'm busy right now \(1 request waiting\)\. Please try again in about \d+ s\.", embed["description"]
    ), embed
    error = h.app_command_errors[-1].original
    assert isinstance(error, Busy) and error.retry_after >= 1.0
    assert small_engine.status().shed.get("queue_full", 0) >= 1

    await g.drain()  # once the queue empties, the same request goes through
    reset(h)
    await h.invoke_slash("tokens", {"text": "hello"})
    assert assert_answered(h)["title"].startswith("Tokens (")


async def test_per_user_cap_is_busy_for_that_user_only(make_bot, small_settings, small_engine, gate):
    bot, h = await make_bot(small_settings, small_engine)
    g = gate(small_engine)
    g.submit(str(h.user_id))  # this user's one request in flight (MAX_PER_USER=1)
    await asyncio.wait_for(g.entered.wait(), WAIT)

    await h.invoke_slash("tokens", {"text": "hello"})
    embed = private_refusal(h)
    assert embed["title"] == "Busy"
    assert "You already have 1 request in progress" in embed["description"]
    assert isinstance(h.app_command_errors[-1].original, Busy)

    # Someone else is not capped: deferred now, answered once the worker is free.
    reset(h)
    other = h.add_member(name="other")
    await h.invoke_slash("tokens", {"text": "hello"}, user_id=other, wait=False)
    g.release()
    await h.settle()
    assert h.recorder.records[0].response_type == DEFERRED_CHANNEL_MESSAGE
    assert final_embed(h)["title"].startswith("Tokens (")


async def test_queue_position_is_shown_while_waiting(env, engine, gate, monkeypatch):
    bot, h = env
    bot.queue_interval = 0.01
    g = gate(engine)
    g.submit("someone")  # running, held
    await asyncio.wait_for(g.entered.wait(), WAIT)
    g.submit("someone else")  # queued ahead of the command

    # Release the worker as soon as the queue position has been recorded (never earlier).
    real_handle = h.recorder.handle_webhook

    async def handle_webhook(route: Any, **kwargs: Any) -> Any:
        result = await real_handle(route, **kwargs)
        if "In the queue" in str((kwargs.get("payload") or {}).get("content")):
            g.release()
        return result

    monkeypatch.setattr(h.recorder, "handle_webhook", handle_webhook)
    await h.invoke_slash("sentiment", {"text": "I am waiting patiently"})

    waiting = [r for r in edits(h) if r.content and "In the queue" in r.content]
    assert waiting, h.recorder.kinds()
    assert re.fullmatch(r"⏳ In the queue: 1 ahead of you, about \d+ s\.", waiting[0].content), waiting[0].content
    assert len(waiting[0].content) <= CONTENT_LIMIT
    embed = assert_answered(h)  # the answer replaces the queue message (content=None)
    assert embed["title"] == "Sentiment"
    assert h.recorder.records.index(waiting[0]) < len(h.recorder.records) - 1


# --------------------------------------------------------------------------------------------- streaming


async def test_streaming_edits_every_chunk_when_interval_is_zero(env, engine, monkeypatch):
    bot, h = env
    chunks = count_chunks(monkeypatch, engine)
    bot.stream_interval = 0
    await h.invoke_slash("generate", {"prompt": "Once upon a time", "max_new_tokens": 40, "temperature": 0.0})
    embed = assert_answered(h)
    partial = [r for r in edits(h) if r.embeds and r.embeds[0]["footer"]["text"] == "writing…"]
    first_sequence = [delta for sequence, delta in chunks if sequence == 0]
    assert len(first_sequence) >= 2
    # The first edit puts the Stop button on the empty answer; then one edit per chunk; then the answer.
    assert partial[0].embeds[0]["description"] == "**Once upon a time**\n ▌"
    assert [c["custom_id"] for row in partial[0].components for c in row["components"]] == [f"answer:stop:{h.user_id}"]
    assert len(partial) == len(first_sequence) + 1
    assert len(edits(h)) == len(first_sequence) + 2
    full = "".join(first_sequence)
    for record, end in zip(partial[1:], range(1, len(first_sequence) + 1)):
        assert record.embeds[0]["description"] == f"**Once upon a time**\n{''.join(first_sequence[:end])} ▌"
    assert embed["description"] == f"**Once upon a time**\n{full.strip()}"
    assert "40 tokens · greedy · stopped at max_new_tokens" in embed["footer"]["text"]


async def test_streaming_edits_are_throttled(env, engine, monkeypatch):
    bot, h = env
    chunks = count_chunks(monkeypatch, engine)
    # The first chunk is always shown; the next edit is only due `stream_interval` seconds after it,
    # which cannot happen within this test (the interval equals the loop clock's whole age).
    bot.stream_interval = asyncio.get_running_loop().time()
    await h.invoke_slash("generate", {"prompt": "Once upon a time", "max_new_tokens": 40, "temperature": 0.0})
    embed = assert_answered(h)
    first_sequence = [delta for sequence, delta in chunks if sequence == 0]
    partial = [r for r in edits(h) if r.embeds and r.embeds[0]["footer"]["text"] == "writing…"]
    assert len(first_sequence) >= 2
    assert len(edits(h)) < len(first_sequence)
    assert len(partial) == 2  # the Stop button on the empty answer, then the first chunk
    assert partial[1].embeds[0]["description"] == f"**Once upon a time**\n{first_sequence[0]} ▌"
    assert partial[1].embeds[0]["color"] == discord.Colour.light_grey().value
    # The final edit holds the complete text, not the last streamed state.
    assert embed["description"] == f"**Once upon a time**\n{''.join(first_sequence).strip()}"
    assert embed["color"] == discord.Colour.blurple().value


async def test_several_sequences_stream_the_first_and_answer_all(env, engine, monkeypatch):
    bot, h = env
    chunks = count_chunks(monkeypatch, engine)
    bot.stream_interval = 0
    await h.invoke_slash(
        "generate", {"prompt": "Hello", "max_new_tokens": 6, "num_return_sequences": 3, "temperature": 1.0, "seed": 7}
    )
    embed = assert_answered(h)
    assert {sequence for sequence, _ in chunks} == {0, 1, 2}
    partial = [r for r in edits(h) if r.embeds[0]["footer"]["text"] == "writing…"]
    assert len(partial) == 1 + sum(
        1 for sequence, _ in chunks if sequence == 0
    )  # 1: the Stop button on the empty answer
    body = embed["description"].split("\n")[1:]
    assert [line[:6] for line in body] == ["**1.**", "**2.**", "**3.**"]
    assert "18 tokens" in embed["footer"]["text"]


# --------------------------------------------------------------------------------------------- mentions and limits


async def test_mentions_in_prompt_and_output_never_ping(env, engine, monkeypatch):
    bot, h = env
    bot.stream_interval = 0

    def add_mentions(task: str, outcome: Any, chunk: Any) -> Any:
        if isinstance(outcome, GenerationResult):  # the model "writes" mentions too
            chunk(0, " " + MENTIONS)
            return dataclasses.replace(outcome, texts=[t + " " + MENTIONS for t in outcome.texts])
        return outcome

    wrap_outcomes(monkeypatch, engine, add_mentions)
    await h.invoke_slash("generate", {"prompt": f"Hi {MENTIONS}", "max_new_tokens": 3, "temperature": 0.0})
    await h.invoke_slash("fill", {"text": f"{MENTIONS} is a [MASK] server"})
    await h.invoke_slash("label", {"text": MENTIONS, "labels": "@everyone, <@123>"})
    await h.invoke_slash("label", {"text": "x", "labels": "@everyone, @everyone"})  # echoed in the refusal
    texts = h.recorder.all_text()
    assert texts.count("@everyone") >= 5 and "<@123>" in texts
    assert f"**Hi {MENTIONS}**" in texts and texts.count(MENTIONS) >= 3
    carrying = [r for r in h.recorder.message_records() if r.content or r.embeds]
    assert len(carrying) >= 5
    for record in carrying:
        assert record.allowed_mentions == NO_PINGS, (record.kind, record.payload)
    # The stored messages mention no one.
    for record in carrying:
        message = h.recorder.message(record.message_id) if record.message_id else None
        if message is not None:
            assert message["mentions"] == [] and not message["mention_everyone"]


def long_generation(chars: int = 5000, sequences: int = 1, prompt: str = "p" * 300) -> GenerationResult:
    return GenerationResult(
        prompt=prompt,
        texts=[("word " * chars)[:chars] for _ in range(sequences)],
        new_tokens=[chars // 5] * sequences,
        finish_reasons=["length"] * sequences,
        mode="complete",
        model="tiny",
    )


@pytest.mark.parametrize("sequences", [1, 4])
def test_long_generation_goes_on_in_several_messages_within_discord_limits(sequences):
    reply = render_result(long_generation(5000, sequences))
    embeds = [to_embed(page).to_dict() for page in paginate(reply)]
    assert len(embeds) == math.ceil(len(reply.text) / DESCRIPTION_LIMIT)  # cut at word ends, each page nearly full
    for embed in embeds:
        assert len(embed["description"]) <= DESCRIPTION_LIMIT == EMBED_DESCRIPTION
        assert_within_limits(embed)
        assert len(discord.Embed.from_dict(embed)) <= EMBED_TOTAL
    assert "".join(embed["description"] for embed in embeds) == reply.text  # every answer whole
    assert reply.text.count("… [cut:") == 1  # only the 300-character prompt line is cut
    assert [bool(embed.get("footer")) for embed in embeds] == [False] * (len(embeds) - 1) + [True]
    assert "stopped at max_new_tokens" in embeds[-1]["footer"]["text"]


def test_cut_note_counts_the_characters_really_cut():
    text = "a" * 5000
    clipped = clip(text, 3896)
    assert len(clipped) <= 3896
    kept, _, note = clipped.partition("… [cut: ")
    assert len(kept) + int(note.split()[0]) == len(text)


LARGEST = [
    pytest.param("tokens", {"text": ("token " * 400)[:2000]}, id="tokens-2000-chars"),
    pytest.param(
        "label", {"text": "x" * 2000, "labels": ", ".join(f"{i:02d}" + "l" * 73 for i in range(25))}, id="label-25-long"
    ),
    pytest.param("sentiment", {"text": " | ".join(["y" * 195] * 10)}, id="sentiment-10-long"),
    pytest.param("fill", {"text": "[MASK] " + "z " * 300, "top_k": 10}, id="fill-top-10-long"),
    pytest.param("status", {}, id="status"),
]


@pytest.mark.parametrize(("command", "options"), LARGEST)
async def test_largest_replies_fit_discord_limits(env, command, options):
    bot, h = env
    await h.invoke_slash(command, options)  # within what Discord lets a user send
    h.assert_no_errors()
    embeds = h.recorder.embeds()
    assert embeds
    for embed in embeds:
        assert_within_limits(embed)
    if command == "tokens":
        fields = {f["name"]: f["value"] for f in embeds[-1]["fields"]}
        assert re.search(r"… \[cut: \d+ more characters\]$", fields["Tokens"])  # cut visibly, not silently


async def test_long_generation_through_discord(env, engine, monkeypatch):
    bot, h = env
    bot.stream_interval = 0

    def lengthen(task: str, outcome: Any, chunk: Any) -> Any:
        if isinstance(outcome, GenerationResult):
            chunk(0, "x" * 5000)  # a long stream is cut in the partial edits too
            return dataclasses.replace(outcome, texts=["y" * 5000])
        return outcome

    wrap_outcomes(monkeypatch, engine, lengthen)
    await h.invoke_slash("generate", {"prompt": "go", "max_new_tokens": 2, "temperature": 0.0})
    h.assert_no_errors()
    for record in h.recorder.of_kind("edit_original", "send_message", "edit_message"):
        for e in record.embeds:
            assert_within_limits(e)  # the long stream, and the answer, go on in a second message
    first = h.recorder.last("edit_original").message_id
    (second,) = [m for m in h.recorder.messages.values() if (m.get("message_reference") or {}).get("message_id")]
    assert int(second["message_reference"]["message_id"]) == first
    pages = [h.recorder.messages[first]["embeds"][0], second["embeds"][0]]
    assert "".join(page["description"] for page in pages) == "**go**\n" + "y" * 5000  # nothing cut
    assert "footer" not in pages[0] and pages[1]["footer"]["text"]


async def test_a_long_private_answer_goes_on_privately(env, engine, monkeypatch):
    bot, h = env
    wrap_outcomes(
        monkeypatch,
        engine,
        lambda task, outcome, chunk: (
            dataclasses.replace(outcome, texts=["z " * 2500]) if isinstance(outcome, GenerationResult) else outcome
        ),
    )
    await h.invoke_slash("generate", {"prompt": "go", "max_new_tokens": 2, "temperature": 0.0, "private": True})
    h.assert_no_errors()
    (more,) = h.recorder.of_kind("followup")  # not a public reply: only the member sees it
    assert more.ephemeral and more.embeds[0]["description"].startswith("z ") and more.embeds[0]["footer"]
    first = h.recorder.messages[h.recorder.last("edit_original").message_id]
    assert first["embeds"][0]["description"] + more.embeds[0]["description"] == "**go**\n" + ("z " * 2500).strip()


# --------------------------------------------------------------------------------------------- errors and checks


async def test_unexpected_error_before_defer_is_an_apology_with_an_id(env, engine, monkeypatch, caplog):
    bot, h = env

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(engine, "submit_job", broken)
    with caplog.at_level(logging.ERROR, logger="bot.client"):
        await h.invoke_slash("tokens", {"text": "hello"})
    embed = private_refusal(h)
    assert embed["title"] == "Sorry"
    match = re.search(r"error id `([0-9a-f]{8})`", embed["description"])
    assert match, embed["description"]
    assert "secret internal detail" not in h.recorder.all_text()
    [logged] = [r for r in caplog.records if r.name == "bot.client" and r.levelno == logging.ERROR]
    assert match.group(1) in logged.getMessage() and "/tokens" in logged.getMessage()
    assert isinstance(logged.exc_info[1], RuntimeError)


async def test_unexpected_error_after_defer_is_apologised_for_privately(env, caplog):
    bot, h = env
    h.recorder.fail_next("edit_original", status=500, code=0, message="Internal Server Error")
    with caplog.at_level(logging.ERROR, logger="bot.client"):
        await h.invoke_slash("tokens", {"text": "hello"})
    assert h.recorder.kinds() == ["response", "edit_original", "delete_original", "followup"]
    assert h.recorder.records[1].error is not None  # the answer failed ...
    apology = h.recorder.last("followup")  # ... the public "thinking" went, and the asker alone got the apology
    assert apology.ephemeral
    embed = apology.embeds[0]
    assert embed["title"] == "Sorry"
    error_id = re.search(r"error id `([0-9a-f]{8})`", embed["description"]).group(1)
    assert any(error_id in r.getMessage() for r in caplog.records if r.name == "bot.client")
    assert_no_pings(h)


@pytest.mark.parametrize("private", [True, False])
async def test_an_error_message_discord_fails_to_take_comes_as_a_new_private_message(env, private):
    """Discord fails the answer and then the error message too (its 5xx, after discord.py's own retries):
    the member still hears what happened, in a private follow-up, instead of "thinking…" for ever."""
    bot, h = env
    h.recorder.fail_next("edit_original", status=503, code=0, message="Service Unavailable")
    h.recorder.fail_next("edit_original" if private else "delete_original", 503, 0, "Service Unavailable")
    await h.invoke_slash("tokens", {"text": "hello", "private": private})
    told = h.recorder.last("followup")
    assert told is not None and told.error is None and told.ephemeral, h.recorder.kinds()
    assert told.embeds[0]["title"] == "Sorry"


async def test_an_interaction_discord_gave_up_on_is_let_go_quietly(env, engine, caplog):
    """Discord answers 404 Unknown interaction when the first answer came too late (its 3 seconds): nobody
    can be told any more, so the bot neither apologises on the dead token nor logs a traceback."""
    bot, h = env
    h.recorder.fail_next("response", 404, 10062, "Unknown interaction")
    with caplog.at_level(logging.WARNING):
        await h.invoke_slash("tokens", {"text": "hello"})
    assert h.recorder.kinds() == ["response"]
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert engine.status().queued == 0


async def test_an_expired_interaction_runs_nothing(env, engine, caplog, monkeypatch):
    """A command that reaches the bot after its token expired (a backlog after an outage): nothing runs,
    nothing is logged as an error."""
    bot, h = env
    submitted: list[Any] = []
    submit = engine.submit_job
    monkeypatch.setattr(engine, "submit_job", lambda *a, **k: submitted.append(a) or submit(*a, **k))
    with caplog.at_level(logging.WARNING):
        await h.invoke_slash("sentiment", {"text": "I love it"}, age=16 * 60)
    assert submitted == []
    assert all(r.error is not None for r in h.recorder.records)  # Discord refused whatever was sent
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_generate_cooldown_says_slow_down(env):
    bot, h = env
    for _ in range(3):  # @cooldown(3, 30 s) per user
        await h.invoke_slash("generate", {"prompt": "hi", "max_new_tokens": 1, "temperature": 0.0})
    h.assert_no_errors()
    reset(h)
    await h.invoke_slash("generate", {"prompt": "hi", "max_new_tokens": 1})
    embed = private_refusal(h)
    assert embed["title"] == "Slow down"
    assert re.fullmatch(r"You can use this again in \d+ s\.", embed["description"])
    assert isinstance(h.app_command_errors[-1], app_commands.CommandOnCooldown)
    # Per user: someone else may still generate.
    reset(h)
    await h.invoke_slash("generate", {"prompt": "hi", "max_new_tokens": 1}, user_id=h.add_member(name="other"))
    assert final_embed(h)["title"] == "Generation"


async def test_sync_is_refused_for_a_non_owner(env):
    bot, h = env
    await h.invoke_slash("sync")
    embed = private_refusal(h)
    assert embed["title"] == "Not allowed"
    assert embed["description"] == "You can't use this command here."
    assert isinstance(h.app_command_errors[-1], app_commands.CheckFailure)
    assert h.recorder.of_kind("application_info")  # the owner check asked who owns the application
    assert h.recorder.of_kind("sync_commands") == []


async def test_sync_for_the_owner(env):
    bot, h = env
    await h.invoke_slash("sync", user_id=h.owner_id)
    kinds = [k for k in h.recorder.kinds() if k != "application_info"]
    assert kinds == ["response", "sync_commands", "followup"]
    assert h.recorder.of_kind("response")[0].flags & EPHEMERAL
    followup = h.recorder.last("followup")
    synced = {c["name"] for c in h.recorder.last("sync_commands").body}
    assert (
        synced
        == {c.name for c in bot.tree.get_commands()}
        >= {"sentiment", "generate", "label", "fill", "tokens", "status", "sync"}
    )
    assert followup.ephemeral and followup.content.startswith(f"Synced {len(synced)} commands globally")
    h.assert_no_errors()


async def test_a_request_never_outlives_the_interaction_that_asked(env):
    """Every command queues through `HFBot.submit`: REQUEST_TIMEOUT (840 s) is cut to what is left of the
    interaction token's 15 minutes, less 30 s to post the answer; one asked longer ago than that never runs."""
    bot, _ = env
    asked = discord.utils.utcnow()
    ages = (0, 600, 860, 900)
    jobs = {age: bot.submit(TokenizeRequest("hi"), age + 1, asked - timedelta(seconds=age)) for age in ages}
    allowed = {age: job.deadline - job.enqueued_at for age, job in jobs.items()}
    # (deadline - enqueued_at loses the last bits of a large monotonic clock: compared approximately)
    assert bot.settings.request_timeout == 840 and allowed[0] == pytest.approx(840)
    assert allowed[600] == pytest.approx(270, abs=1) and allowed[860] == pytest.approx(10, abs=1)
    for age in (0, 600, 860):
        assert (await asyncio.wait_for(jobs[age].result(), 60)).text == "hi"
    with pytest.raises(DeadlineExceeded):  # nobody could see its answer: dropped unrun
        await asyncio.wait_for(jobs[900].result(), 60)
