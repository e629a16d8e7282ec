"""Stop, Regenerate and Continue on /generate answers, through the real CommandTree, real component
payloads and the real worker (tiny gpt2): while queued, while streaming, after a restart (a new bot
on the same database), pressed by another member, pressed twice."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import sqlite3
from typing import Any

import pytest_asyncio

from bot.client import HFBot
from bot.engine.errors import WorkerCrashed
from bot.engine.request import failure
from bot.specs.generation import MAX_RETURN_SEQUENCES, GenerationRequest, GenerationResult
from bot.storage import Storage

from .discord_harness import EPHEMERAL, FakeDiscord
from .test_commands_discord import WAIT, engine, gate, make_bot, settings, wrap_outcomes  # noqa: F401 - fixtures

PROMPT = "Once upon a time"


@pytest_asyncio.fixture(loop_scope="session")
async def env(make_bot, settings, engine, monkeypatch):
    """(bot, harness, requests): the GenerationRequests the bot submits are recorded."""
    bot, h = await make_bot(settings, engine)
    requests: list[GenerationRequest] = []
    h.timeout = WAIT  # the first turn waits for the worker to load the model, on a busy machine too
    submit = engine.submit_job

    def recording(request: Any, **kwargs: Any) -> Any:
        if isinstance(request, GenerationRequest):
            requests.append(request)
        return submit(request, **kwargs)

    monkeypatch.setattr(engine, "submit_job", recording)
    return bot, h, requests


def button_ids(message: dict) -> list[str]:
    return [c["custom_id"] for row in message.get("components") or [] for c in row["components"]]


def answer_message(h: FakeDiscord) -> dict:
    return h.recorder.messages[h.recorder.last("edit_original").message_id]


async def until(condition: Any) -> None:
    """Wait for something the bot does in the background (a poll, never a timing assertion)."""
    for _ in range(int(WAIT / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the bot never got there")


def private_message(h: FakeDiscord) -> str:
    """The latest private (ephemeral) reply."""
    replies = [r for r in h.recorder.of_kind("response") if r.flags & EPHEMERAL]
    assert replies, h.recorder.kinds()
    return replies[-1].text()


async def test_stop_while_queued(env, engine, gate):
    bot, h, _ = env
    g = gate(engine)
    # Other members' generations fill every decoding row (MAX_BATCH_SIZE, 32), held before their first step.
    for user in range(32 // MAX_RETURN_SEQUENCES):
        g.jobs.append(engine.submit_job(GenerationRequest("x", 1, MAX_RETURN_SEQUENCES), user=f"member {user}"))
    await until(lambda: engine.status().running == 32 // MAX_RETURN_SEQUENCES)
    await h.invoke_slash("generate", {"prompt": PROMPT}, wait=False)
    await until(lambda: h.recorder.find_component(f"answer:stop:{h.user_id}")[1] is not None)
    assert engine.status().queued == 1  # this one waits for a free row
    await h.invoke_component(f"answer:stop:{h.user_id}")
    await h.settle()
    h.assert_no_errors()
    message = answer_message(h)
    assert message["embeds"][0]["footer"]["text"] == "stopped"
    assert "stopped before the first word" in message["embeds"][0]["description"]
    assert button_ids(message) == [f"answer:again:{h.user_id}"]
    assert engine.status().queued == 0


async def test_stop_while_streaming_keeps_the_text_so_far(env, engine):
    bot, h, _ = env
    bot.stream_interval = 0
    await h.invoke_slash("generate", {"prompt": PROMPT, "max_new_tokens": 256, "temperature": 0.0}, wait=False)

    def streamed() -> list:
        return [
            r
            for r in h.recorder.of_kind("edit_original")
            if r.embeds and r.embeds[0]["description"] != f"**{PROMPT}**\n ▌"
        ]

    await until(streamed)
    await h.invoke_component(f"answer:stop:{h.user_id}")
    await h.settle()
    h.assert_no_errors()
    shown = streamed()[-1].embeds[0]
    assert shown["footer"]["text"] == "stopped"
    kept = shown["description"].removeprefix(f"**{PROMPT}**\n")
    assert kept and "▌" not in kept
    stored = await bot.store.answers.get(h.recorder.last("edit_original").message_id)
    assert stored is not None and stored[1] == kept
    await until(lambda: engine.status().running == 0)  # the generation stopped in the worker too


async def test_regenerate_and_continue(env):
    bot, h, requests = env
    await h.invoke_slash("generate", {"prompt": PROMPT, "max_new_tokens": 4, "temperature": 1.0, "seed": 3})
    first = answer_message(h)
    message_id = int(first["id"])
    assert button_ids(first) == [f"answer:again:{h.user_id}", f"answer:more:{h.user_id}"]  # stopped at max_new_tokens
    _, first_text = await bot.store.answers.get(message_id)

    await h.invoke_component(f"answer:again:{h.user_id}")
    h.assert_no_errors()
    assert requests[-1] == GenerationRequest(PROMPT, 4, temperature=1.0, seed=None)  # a new sample, not the seeded one
    assert answer_message(h)["id"] == str(message_id)  # the same message, edited
    _, second_text = await bot.store.answers.get(message_id)

    await h.invoke_component(f"answer:more:{h.user_id}")
    h.assert_no_errors()
    assert requests[-1].prompt == PROMPT + second_text  # the model continues its own text
    _, continued = await bot.store.answers.get(message_id)
    assert continued.startswith(second_text) and len(continued) > len(second_text)
    embed = answer_message(h)["embeds"][0]
    assert embed["description"].startswith(f"**{PROMPT}**\n")
    assert json.loads((await bot.store.answers.get(message_id))[0])["prompt"] == PROMPT
    assert first_text  # the seeded first answer was stored too


async def test_buttons_from_another_member_or_pressed_twice(env):
    bot, h, requests = env
    await h.invoke_slash("generate", {"prompt": PROMPT, "max_new_tokens": 3})
    asked = len(requests)
    other = h.add_member()
    await h.invoke_component(f"answer:again:{h.user_id}", user_id=other)
    assert "Only the member who asked" in private_message(h)
    assert len(requests) == asked
    # Regenerate pressed twice in a row: the second press finds the first one writing.
    await h.invoke_component(f"answer:again:{h.user_id}", wait=False)
    await h.invoke_component(f"answer:again:{h.user_id}", wait=False)
    await h.settle()
    assert "still being written" in private_message(h)
    assert len(requests) == asked + 1
    h.assert_no_errors()


async def test_buttons_after_a_restart(env, settings, engine):
    bot, h, requests = env
    await h.invoke_slash("generate", {"prompt": PROMPT, "max_new_tokens": 3})
    # The bot restarted while this answer was being written: it still shows Stop.
    message = dict(answer_message(h), components=h.recorder.of_kind("edit_original")[0].components)
    assert button_ids(message) == [f"answer:stop:{h.user_id}"]
    # A new bot process on the same database: it never saw this answer being written.
    restarted = HFBot(settings, engine)
    h2 = await FakeDiscord.create(restarted, guild_id=h.guild_id, channel_id=h.channel_id, user_id=h.user_id)
    try:
        h2.recorder.messages[int(message["id"])] = message
        await h2.invoke_component(f"answer:stop:{h.user_id}")
        assert "bot restarted" in h2.recorder.last("followup").text()
        assert button_ids(h2.recorder.messages[int(message["id"])]) == [f"answer:again:{h.user_id}"]
        await h2.invoke_component(f"answer:again:{h.user_id}")
        h2.assert_no_errors()
        assert requests[-1].prompt == PROMPT
        assert f"answer:again:{h.user_id}" in button_ids(h2.recorder.messages[int(message["id"])])
        assert h2.recorder.messages[int(message["id"])]["embeds"][0]["title"] == "Generation"
    finally:
        await h2.close()


async def test_a_failed_regenerate_puts_the_answer_back(env, engine, monkeypatch):
    bot, h, requests = env
    await h.invoke_slash("generate", {"prompt": PROMPT, "max_new_tokens": 3})
    message_id = h.recorder.last("edit_original").message_id
    shown, stored = copy.deepcopy(h.recorder.messages[message_id]), await bot.store.answers.get(message_id)
    # The worker runs the new sample, then the job fails as if the worker had crashed.
    wrap_outcomes(
        monkeypatch,
        engine,
        lambda task, outcome, chunk: (
            failure(WorkerCrashed("The model restarted. Please try again."))
            if isinstance(outcome, GenerationResult)
            else outcome
        ),
    )
    await h.invoke_component(f"answer:again:{h.user_id}", message_id=message_id)
    h.assert_no_errors()
    now = h.recorder.messages[message_id]
    assert now["embeds"] == shown["embeds"] and button_ids(now) == button_ids(shown)  # as it was
    assert await bot.store.answers.get(message_id) == stored
    told = h.recorder.last("followup")
    assert told.ephemeral and "The model restarted" in told.text()  # the member who pressed is told, privately


async def test_an_answer_finished_while_the_database_is_locked_is_shown_without_its_buttons(settings, engine, tmp_path):
    """Another process holds the database's write lock when a /generate answer is finished: the member still
    gets the answer (its buttons need it saved, so it comes without them), not "busy" in its place."""
    database = tmp_path / "bot.sqlite3"
    bot = HFBot(dataclasses.replace(settings, database_path=database), engine)
    bot.store = Storage(database, busy_timeout=0.2)
    h = await FakeDiscord.create(bot)
    try:
        locker = sqlite3.connect(database, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            await h.invoke_slash("generate", {"prompt": "Once upon a time", "max_new_tokens": 3, "temperature": 0.0})
        finally:
            locker.execute("COMMIT")
            locker.close()
        assert h.recorder.kinds()[-1] == "edit_original", h.recorder.kinds()  # the answer, not an error in its place
        answer = answer_message(h)
        assert answer["embeds"][0]["title"] == "Generation" and "Once upon a time" in answer["embeds"][0]["description"]
        assert button_ids(answer) == []
        h.assert_no_errors()
    finally:
        await h.close()
