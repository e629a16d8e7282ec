"""Conversations through the real CommandTree and real gateway MESSAGE_CREATE payloads: /chat opens a
thread, members' messages in it (or replies to an answer) continue it, and the worker trims the
history to the context. The bot talks to a real worker running the tiny Llama (it has a chat template).

The bot has no Message Content intent here (the default), so members address it by mentioning it,
exactly what such a bot sees on Discord: the harness blanks the content of other messages.
"""
from __future__ import annotations

import asyncio
from typing import Any

import pytest
import pytest_asyncio
from transformers import AutoTokenizer

from bot import commands
from bot.engine import Engine, GenerationRequest
from bot.engine.tasks.generation import chat_prompt_ids
from bot.settings import Settings

from .test_commands_discord import WAIT, assert_no_pings, bot_env, make_bot  # noqa: F401 - make_bot is a fixture

LONG = "word " * 390  # about 1950 characters: a few of these overflow the tiny Llama's 512 positions


@pytest.fixture(scope="module")
def settings(tiny_models, tmp_path_factory) -> Settings:
    folder = tmp_path_factory.mktemp("chat-data")
    return Settings.from_env(bot_env(tiny_models, str(folder), GENERATION_MODEL=str(tiny_models["llama"]),
                                     SYSTEM_PROMPT="You are a helpful assistant."))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def engine(settings):
    async with Engine(settings.engine) as engine:
        yield engine


@pytest.fixture(scope="module")
def tokenizer(tiny_models) -> Any:
    return AutoTokenizer.from_pretrained(tiny_models["llama"])


@pytest_asyncio.fixture(loop_scope="session")
async def chat(make_bot, settings, engine, monkeypatch):
    """(bot, harness, requests): every GenerationRequest the bot submits is recorded in `requests`."""
    bot, h = await make_bot(settings, engine)
    bot.stream_interval = 0.0
    h.timeout = WAIT  # the first turn waits for the worker to load the model, on a busy machine too
    # Short answers, so that a few turns fit the tiny Llama's 512 positions (200 would fill most of them).
    monkeypatch.setattr(commands, "CHAT_MAX_NEW_TOKENS", 8)
    requests: list[GenerationRequest] = []
    submit = engine.submit_job

    def recording(request: Any, **kwargs: Any) -> Any:
        requests.append(request)
        return submit(request, **kwargs)

    monkeypatch.setattr(engine, "submit_job", recording)
    return bot, h, requests


def answer_of(h, message_id: int) -> dict:
    """The bot's finished reply to a member's message: its stored JSON."""
    replies = [m for m in h.recorder.messages.values()
               if int((m.get("message_reference") or {}).get("message_id") or 0) == message_id]
    assert len(replies) == 1, h.recorder.kinds()
    return replies[0]


def seen_by_model(tokenizer: Any, request: GenerationRequest) -> str:
    """The prompt the worker gives the model for this request (the worker's own function)."""
    ids, _ = chat_prompt_ids(tokenizer, request, 512 - request.max_new_tokens)
    return tokenizer.decode(ids)


async def test_three_turn_conversation_in_a_thread(chat, tokenizer):
    bot, h, requests = chat
    mention = f"<@{h.bot_id}>"
    await h.invoke_slash("chat", {"message": "My name is Ada."})
    h.assert_no_errors()
    opening = h.recorder.last("start_thread")
    assert opening is not None and opening.payload["name"] == "My name is Ada."
    thread = opening.message_id  # a thread on the answer has the answer's id
    first_answer = h.recorder.messages[thread]["embeds"][0]
    assert first_answer["fields"] == [{"name": "Prompt", "value": "My name is Ada.", "inline": False}]
    assert "write in this thread" in first_answer["footer"]["text"]

    second = await h.dispatch_message(f"{mention} I like tea.", channel_id=thread)
    second_answer = answer_of(h, second.id)["embeds"][0]
    await h.dispatch_message("this one does not mention the bot: without Message Content it reads nothing", channel_id=thread)
    third = await h.dispatch_message(f"{mention} What is my name?", channel_id=thread)
    third_answer = answer_of(h, third.id)["embeds"][0]
    h.assert_no_errors()
    assert_no_pings(h)

    assert [r.history for r in requests] == [
        (),
        (("user", "My name is Ada."), ("assistant", first_answer["description"])),
        (("user", "My name is Ada."), ("assistant", first_answer["description"]),
         ("user", "I like tea."), ("assistant", second_answer["description"])),
    ]
    assert {r.system for r in requests} == {"You are a helpful assistant."}
    prompt = seen_by_model(tokenizer, requests[2])
    assert prompt.index("You are a helpful assistant.") < prompt.index("My name is Ada.") < prompt.index("I like tea.") \
        < prompt.index("What is my name?")
    assert third_answer["title"] == "Chat" and "write in this thread" in third_answer["footer"]["text"]
    assert "left out" not in third_answer["footer"]["text"]


async def test_replies_continue_where_no_thread_can_be_made(chat):
    bot, h, requests = chat
    elsewhere = h.add_thread("a thread the bot did not start")  # no thread inside a thread: a reply chain instead
    await h.invoke_slash("chat", {"message": "Count with me: one."}, channel_id=elsewhere)
    assert h.recorder.last("start_thread") is None
    opening = h.recorder.last("edit_original").message_id
    assert "reply to this answer" in h.recorder.messages[opening]["embeds"][0]["footer"]["text"]

    two = await h.dispatch_message(f"<@{h.bot_id}> two", channel_id=elsewhere, reference=opening)
    two_answer = answer_of(h, two.id)
    three = await h.dispatch_message(f"<@{h.bot_id}> three", channel_id=elsewhere, reference=int(two_answer["id"]))
    answer_of(h, three.id)
    h.assert_no_errors()
    assert [len(r.history) for r in requests] == [0, 2, 4]
    assert requests[2].history[2] == ("user", "two")

    # A message in a thread the bot did not start, replying to nothing of the bot's: not a conversation.
    await h.dispatch_message(f"<@{h.bot_id}> hello?", channel_id=elsewhere)
    assert len(requests) == 3


async def test_history_longer_than_the_context_is_trimmed_from_the_oldest(chat, tokenizer):
    bot, h, requests = chat
    mention = f"<@{h.bot_id}>"
    await h.invoke_slash("chat", {"message": "first " + LONG})
    thread = h.recorder.last("start_thread").message_id
    await h.dispatch_message(f"{mention} second {LONG}", channel_id=thread)
    last = await h.dispatch_message(f"{mention} third and newest", channel_id=thread)
    h.assert_no_errors()
    footer = answer_of(h, last.id)["embeds"][0]["footer"]["text"]
    assert "earlier messages left out to fit the context" in footer
    prompt = seen_by_model(tokenizer, requests[-1])
    assert "third and newest" in prompt and "first" not in prompt and "You are a helpful assistant." in prompt


def test_trimming_keeps_whole_exchanges_and_the_newest_message(tokenizer):
    history = (("user", "one " * 60), ("assistant", "two " * 60), ("user", "three"), ("assistant", "four"))
    request = GenerationRequest("five", mode="chat", history=history, system="sys")
    full, dropped = chat_prompt_ids(tokenizer, request, 10_000)
    assert dropped == 0
    ids, dropped = chat_prompt_ids(tokenizer, request, len(full) - 1)
    assert dropped == 2  # the oldest exchange, both halves: the kept history still starts with the user
    text = tokenizer.decode(ids)
    assert "one" not in text and "two" not in text and text.index("sys") < text.index("three") < text.index("five")
    ids, dropped = chat_prompt_ids(tokenizer, GenerationRequest("five " * 100, mode="chat", history=history), 20)
    assert dropped == 4 and len(ids) == 20  # the newest message alone is too long: its end is kept


async def test_a_thread_deleted_mid_answer_stops_the_generation(chat, engine):
    bot, h, requests = chat
    await h.invoke_slash("chat", {"message": "Tell me a long story."})
    thread = h.recorder.last("start_thread").message_id
    h.recorder.fail_next("edit_message", 404, 10003, "Unknown Channel")  # the first streamed edit: the thread is gone
    await h.dispatch_message(f"<@{h.bot_id}> go on", channel_id=thread)
    h.assert_no_errors()
    for _ in range(100):  # the cancel reaches the worker at its next step
        if engine.status().running == 0:
            break
        await asyncio.sleep(0.05)
    assert engine.status().running == 0 and engine.status().queued == 0


async def test_admins_set_the_system_prompt(chat, tokenizer):
    bot, h, requests = chat
    member = h.add_member()
    await h.invoke_slash("config system_prompt", {"text": "Answer like a pirate."}, user_id=member, validate=False)
    assert "Not allowed" in h.recorder.all_text()
    assert await bot.store.system_prompt(h.guild_id) is None
    await h.invoke_slash("config system_prompt", {"text": "Answer like a pirate."}, user_id=h.owner_id)
    assert await bot.store.system_prompt(h.guild_id) == "Answer like a pirate."
    await h.invoke_slash("chat", {"message": "Hello"})
    assert requests[-1].system == "Answer like a pirate."
    assert "Answer like a pirate." in seen_by_model(tokenizer, requests[-1])
    await h.invoke_slash("config system_prompt", {}, user_id=h.owner_id)
    assert await bot.store.system_prompt(h.guild_id) is None
