"""Conversations through the real CommandTree and real gateway MESSAGE_CREATE payloads: /chat opens a
thread, members' messages in it (or replies to an answer) continue it, and the worker trims the
history to the context; every answer has Stop, Regenerate and Continue (real component payloads).
The bot talks to a real worker running the tiny Llama (it has a chat template).

The bot has no Message Content intent here (the default), so members address it by mentioning it,
exactly what such a bot sees on Discord: the harness blanks the content of other messages.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from typing import Any

import discord
import pytest
import pytest_asyncio
from transformers import AutoTokenizer

from bot.client import HFBot
from bot.engine import Engine
from bot.engine.errors import WorkerCrashed
from bot.engine.request import failure
from bot.engine.tasks.generation import chat_prompt_ids
from bot.permissions import every_permission
from bot.settings import Settings
from bot.specs.generation import GenerationRequest, GenerationResult

from .discord_harness import FakeDiscord
from .test_answer_buttons import button_ids, private_message, until
from .test_commands_discord import WAIT, assert_no_pings, bot_env, make_bot, wrap_outcomes  # noqa: F401 - make_bot is a fixture

LONG = "word " * 390  # about 1950 characters: a few of these overflow the tiny Llama's 512 positions


@pytest.fixture(scope="module")
def settings(tiny_models, tmp_path_factory) -> Settings:
    folder = tmp_path_factory.mktemp("chat-data")
    (folder / "other-llama").symlink_to(tiny_models["llama"])  # a second model id to pick (/chat model:)
    return Settings.from_env(
        bot_env(
            tiny_models,
            str(folder),
            GENERATION_MODELS=f"{tiny_models['llama']},{folder / 'other-llama'}",
            GENERATION_MODEL="",
            SYSTEM_PROMPT="You are a helpful assistant.",
        )
    )


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
    return await chat_bot(make_bot, settings, engine, monkeypatch)


async def chat_bot(make_bot, settings, engine, monkeypatch, **changes: Any) -> tuple[HFBot, FakeDiscord, list]:
    """A bot on `settings` with `changes` (e.g. chat_threads=True), its harness, and the requests it submits."""
    # Short answers (CHAT_MAX_NEW_TOKENS), so that a few turns fit the tiny Llama's 512 positions.
    bot, h = await make_bot(dataclasses.replace(settings, chat_max_new_tokens=8, **changes), engine)
    # Invited as the README says, with every feature's permissions (its role, as Discord makes one for a bot).
    h.add_member(h.bot_id, "HarnessBot", roles=[h.add_role("HarnessBot", permissions=every_permission())], bot=True)
    bot.stream_interval = 0.0
    h.timeout = WAIT  # the first turn waits for the worker to load the model, on a busy machine too
    requests: list[GenerationRequest] = []
    submit = engine.submit_job

    def recording(request: Any, **kwargs: Any) -> Any:
        requests.append(request)
        return submit(request, **kwargs)

    monkeypatch.setattr(engine, "submit_job", recording)
    return bot, h, requests


def answer_of(h, message_id: int) -> dict:
    """The bot's finished reply to a member's message: its stored JSON."""
    replies = [
        m
        for m in h.recorder.messages.values()
        if int((m.get("message_reference") or {}).get("message_id") or 0) == message_id
    ]
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
    await h.dispatch_message(
        "this one does not mention the bot: without Message Content it reads nothing", channel_id=thread
    )
    third = await h.dispatch_message(f"{mention} What is my name?", channel_id=thread)
    third_answer = answer_of(h, third.id)["embeds"][0]
    h.assert_no_errors()
    assert_no_pings(h)

    assert [r.history for r in requests] == [
        (),
        (("user", "My name is Ada."), ("assistant", first_answer["description"])),
        (
            ("user", "My name is Ada."),
            ("assistant", first_answer["description"]),
            ("user", "I like tea."),
            ("assistant", second_answer["description"]),
        ),
    ]
    assert {r.system for r in requests} == {"You are a helpful assistant."}
    prompt = seen_by_model(tokenizer, requests[2])
    assert (
        prompt.index("You are a helpful assistant.")
        < prompt.index("My name is Ada.")
        < prompt.index("I like tea.")
        < prompt.index("What is my name?")
    )
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
    assert await bot.store.guilds.system_prompt(h.guild_id) is None
    await h.invoke_slash("config system_prompt", {"text": "Answer like a pirate."}, user_id=h.owner_id)
    assert await bot.store.guilds.system_prompt(h.guild_id) == "Answer like a pirate."
    await h.invoke_slash("chat", {"message": "Hello"})
    assert requests[-1].system == "Answer like a pirate."
    assert "Answer like a pirate." in seen_by_model(tokenizer, requests[-1])
    await h.invoke_slash("config system_prompt", {}, user_id=h.owner_id)
    assert await bot.store.guilds.system_prompt(h.guild_id) is None


# --- buttons on chat answers ---------------------------------------------------------------


async def stopped_at_length(h: FakeDiscord, message_id: int) -> None:
    """Regenerate until the answer stops at max_new_tokens (random weights may write the end token early)."""
    for _ in range(5):
        if f"answer:more:{h.user_id}" in button_ids(h.recorder.messages[message_id]):
            return
        await h.invoke_component(f"answer:again:{h.user_id}", message_id=message_id)
    raise AssertionError("every sample ended before max_new_tokens")


async def test_regenerate_a_turn_in_a_thread_keeps_its_history(chat, tokenizer):
    bot, h, requests = chat
    mention = f"<@{h.bot_id}>"
    await h.invoke_slash("chat", {"message": "My name is Ada."})
    thread = h.recorder.last("start_thread").message_id
    assert f"answer:again:{h.user_id}" in button_ids(h.recorder.messages[thread])
    first = h.recorder.messages[thread]["embeds"][0]["description"]
    second = await h.dispatch_message(f"{mention} I like tea.", channel_id=thread)
    answer_id = int(answer_of(h, second.id)["id"])
    # The buttons are for the member whose message it answers.
    assert f"answer:again:{second.author.id}" in button_ids(h.recorder.messages[answer_id])
    asked = requests[-1]

    await h.invoke_component(f"answer:again:{second.author.id}", message_id=answer_id, user_id=second.author.id)
    h.assert_no_errors()
    assert len(requests) == 3 and requests[-1] == asked  # the same history and system prompt, a new sample
    assert requests[-1].history == (("user", "My name is Ada."), ("assistant", first))
    assert seen_by_model(tokenizer, requests[-1]) == seen_by_model(tokenizer, asked)
    regenerated = h.recorder.messages[answer_id]["embeds"][0]
    assert regenerated["title"] == "Chat" and "write in this thread" in regenerated["footer"]["text"]
    assert (await bot.store.answers.get(answer_id))[1].strip() == regenerated["description"]

    # The thread reads the regenerated answer back as that turn; the buttons don't get in the way.
    await h.dispatch_message(f"{mention} What is my name?", channel_id=thread)
    h.assert_no_errors()
    assert requests[-1].history == (
        ("user", "My name is Ada."),
        ("assistant", first),
        ("user", "I like tea."),
        ("assistant", regenerated["description"]),
    )


async def test_continue_a_chat_answer(chat, tokenizer):
    bot, h, requests = chat
    await h.invoke_slash("chat", {"message": "Tell me about tea."})
    opening = h.recorder.last("start_thread").message_id
    await stopped_at_length(h, opening)
    _, before = await bot.store.answers.get(opening)

    await h.invoke_component(f"answer:more:{h.user_id}", message_id=opening)
    h.assert_no_errors()
    request = requests[-1]
    assert (request.prompt, request.history, request.continue_answer) == ("Tell me about tea.", (), before)
    # The model read the same conversation with its unfinished answer left open: the prompt ends with it.
    assert seen_by_model(tokenizer, request).endswith(before)
    _, continued = await bot.store.answers.get(opening)
    assert continued.startswith(before) and len(continued) > len(before)
    shown = h.recorder.messages[opening]["embeds"][0]
    assert shown["description"] == continued.strip()  # one answer, not two
    assert shown["fields"][0]["value"] == "Tell me about tea." and "write in this thread" in shown["footer"]["text"]

    await h.dispatch_message(f"<@{h.bot_id}> thanks", channel_id=opening)
    assert requests[-1].history == (("user", "Tell me about tea."), ("assistant", continued.strip()))


async def test_continue_in_generate_chat_mode(chat):
    bot, h, requests = chat
    await h.invoke_slash("generate", {"prompt": "Hello there", "mode": "chat", "max_new_tokens": 4})
    answer = h.recorder.last("edit_original").message_id
    await stopped_at_length(h, answer)
    _, before = await bot.store.answers.get(answer)
    await h.invoke_component(f"answer:more:{h.user_id}", message_id=answer)
    h.assert_no_errors()
    assert (requests[-1].prompt, requests[-1].mode, requests[-1].continue_answer) == ("Hello there", "chat", before)
    _, continued = await bot.store.answers.get(answer)
    assert continued.startswith(before) and len(continued) > len(before)
    assert h.recorder.messages[answer]["embeds"][0]["description"] == continued.strip()


async def test_stop_a_chat_answer_keeps_it_as_a_turn(chat, monkeypatch):
    bot, h, requests = chat
    mention = f"<@{h.bot_id}>"
    await h.invoke_slash("chat", {"message": "Hi"})
    thread = h.recorder.last("start_thread").message_id
    bot.settings = dataclasses.replace(
        bot.settings, chat_max_new_tokens=256
    )  # long enough to press Stop while it streams
    asked = await h.dispatch_message(f"{mention} Tell me a long story.", channel_id=thread, wait=False)

    def streaming() -> dict | None:
        replies = [
            m
            for m in h.recorder.messages.values()
            if int((m.get("message_reference") or {}).get("message_id") or 0) == asked.id
        ]
        return replies[0] if replies and replies[0]["embeds"][0]["description"] != " ▌" else None

    await until(streaming)
    answer_id = int(streaming()["id"])
    await h.invoke_component(f"answer:stop:{asked.author.id}", message_id=answer_id, user_id=asked.author.id)
    await h.settle()
    h.assert_no_errors()
    stopped = h.recorder.messages[answer_id]
    assert stopped["embeds"][0]["footer"]["text"] == "stopped · write in this thread to go on"
    assert button_ids(stopped) == [f"answer:again:{asked.author.id}"]
    kept = stopped["embeds"][0]["description"]
    assert kept and "▌" not in kept and (await bot.store.answers.get(answer_id))[1] == kept

    bot.settings = dataclasses.replace(bot.settings, chat_max_new_tokens=8)
    await h.dispatch_message(f"{mention} And then?", channel_id=thread)
    assert requests[-1].history[-2:] == (("user", "Tell me a long story."), ("assistant", kept))


async def test_chat_buttons_are_the_askers(chat):
    bot, h, requests = chat
    await h.invoke_slash("chat", {"message": "Hi"})
    thread = h.recorder.last("start_thread").message_id
    other = h.add_member()
    asked = len(requests)
    await h.invoke_component(f"answer:again:{h.user_id}", message_id=thread, user_id=other)
    assert "Only the member who asked" in private_message(h)
    assert len(requests) == asked
    h.assert_no_errors()


async def test_chat_buttons_after_a_restart(chat, settings, engine):
    bot, h, requests = chat
    await h.invoke_slash("chat", {"message": "My name is Ada."})
    opening = h.recorder.last("start_thread").message_id
    message = h.recorder.messages[opening]
    # A new bot process on the same database: it never saw this answer being written.
    restarted = HFBot(settings, engine)
    h2 = await FakeDiscord.create(restarted, guild_id=h.guild_id, channel_id=h.channel_id, user_id=h.user_id)
    try:
        h2.recorder.messages[opening] = message
        await h2.invoke_component(f"answer:again:{h.user_id}", message_id=opening)
        h2.assert_no_errors()
        assert (requests[-1].prompt, requests[-1].history, requests[-1].system) == (
            "My name is Ada.",
            (),
            "You are a helpful assistant.",
        )
        regenerated = h2.recorder.messages[opening]["embeds"][0]
        # Still the conversation's first answer: the thread reads it back from the Prompt field.
        assert regenerated["fields"] == [{"name": "Prompt", "value": "My name is Ada.", "inline": False}]
        assert regenerated["title"] == "Chat" and "write in this thread" in regenerated["footer"]["text"]
    finally:
        await h2.close()


async def test_a_chat_answer_that_fails_becomes_the_error(chat, engine, monkeypatch):
    bot, h, requests = chat
    await h.invoke_slash("chat", {"message": "Hi"})
    thread = h.recorder.last("start_thread").message_id
    first = h.recorder.messages[thread]["embeds"][0]["description"]
    real = engine.executor.run
    wrap_outcomes(
        monkeypatch,
        engine,
        lambda task, outcome, chunk: (
            failure(WorkerCrashed("The model restarted. Please try again."))
            if isinstance(outcome, GenerationResult)
            else outcome
        ),
    )
    asked = await h.dispatch_message(f"<@{h.bot_id}> hello?", channel_id=thread)
    failed = answer_of(h, asked.id)
    assert "The model restarted" in failed["embeds"][0]["description"] and failed["embeds"][0]["title"] != "Chat"
    assert failed["components"] == []  # no buttons on an error
    monkeypatch.setattr(engine.executor, "run", real)
    await h.dispatch_message(f"<@{h.bot_id}> again", channel_id=thread)
    h.assert_no_errors()
    # The error is not read back as the assistant's turn.
    assert requests[-1].history == (("user", "Hi"), ("assistant", first), ("user", "hello?"))


@pytest.mark.parametrize("read", ["history", "fetch_message"])
async def test_a_conversation_discord_fails_to_read_is_answered_with_why(chat, read):
    """Discord fails reading the thread (its 5xx): the member is told to send the message again, not left
    waiting for an answer that never comes."""
    bot, h, requests = chat
    await h.invoke_slash("chat", {"message": "My name is Ada."})
    thread = h.recorder.last("start_thread").message_id
    h.recorder.fail_next(read, 503, 0, "Service Unavailable")
    message = await h.dispatch_message(f"<@{h.bot_id}> What is my name?", channel_id=thread)
    told = answer_of(h, message.id)["embeds"][0]
    assert told["title"] == "Please try again" and "send your message again" in told["description"]
    assert len(requests) == 1  # nothing ran on a conversation that could not be read
    assert_no_pings(h)


async def test_a_thread_answer_discord_fails_to_update_does_not_stay_writing(chat):
    """Discord fails an edit of a streaming answer in a thread (its 5xx): the answer says what happened
    instead of "writing…" for ever."""
    bot, h, requests = chat
    await h.invoke_slash("chat", {"message": "My name is Ada."})
    thread = h.recorder.last("start_thread").message_id
    h.recorder.fail_next("edit_message", 503, 0, "Service Unavailable")
    message = await h.dispatch_message(f"<@{h.bot_id}> What is my name?", channel_id=thread)
    told = answer_of(h, message.id)["embeds"][0]
    assert told["title"] == "Please try again" and "send your message again" in told["description"]
    assert_no_pings(h)


async def test_a_conversation_keeps_the_model_it_was_started_with(chat, settings):
    bot, h, requests = chat
    default, other = settings.engine.allowed("generation")
    assert [c["value"] for c in await h.invoke_autocomplete("chat", {"message": "hi", "model": "other"}, "model")] == [
        other
    ]
    await h.invoke_slash("chat", {"message": "My name is Ada.", "model": other})
    thread = h.recorder.last("start_thread").message_id
    assert h.recorder.messages[thread]["embeds"][0]["footer"]["text"].startswith(f"{other} · ")
    await h.dispatch_message(f"<@{h.bot_id}> What is my name?", channel_id=thread)
    h.assert_no_errors()
    assert [r.model for r in requests] == [other, other]  # the thread's turn went to the conversation's model
    await h.invoke_slash("chat", {"message": "Hello"})  # a new conversation: the default again
    assert requests[-1].model == ""


# --- CHAT_THREADS ----------------------------------------------------------------------------


@pytest.mark.parametrize("chat_threads", [False, True])
async def test_chat_threads_alone_decides_whether_thread_messages_are_read(
    make_bot, settings, engine, monkeypatch, chat_threads
):
    """AUTOTAG=true asks for the Message Content intent too, so the bot sees every message's text: whether a thread
    message without a mention is answered is still CHAT_THREADS's call, as .env.example says."""
    bot, h, requests = await chat_bot(make_bot, settings, engine, monkeypatch, autotag=True, chat_threads=chat_threads)
    assert bot.intents.message_content
    await h.invoke_slash("chat", {"message": "My name is Ada."})
    thread = h.recorder.last("start_thread").message_id
    plain = await h.dispatch_message("I like tea.", channel_id=thread)
    h.assert_no_errors()
    assert len(requests) == (2 if chat_threads else 1)
    if chat_threads:
        assert requests[-1].prompt == "I like tea." and answer_of(h, plain.id)["embeds"][0]["title"] == "Chat"
        return
    # Off: a mention is read, and a reply to an answer works either way.
    mentioned = await h.dispatch_message(f"<@{h.bot_id}> I like tea.", channel_id=thread)
    assert requests[-1].prompt == "I like tea." and len(requests[-1].history) == 2
    answer = int(answer_of(h, mentioned.id)["id"])
    replied = await h.dispatch_message("And coffee.", channel_id=thread, reference=answer)
    assert requests[-1].prompt == "And coffee." and answer_of(h, replied.id)["embeds"][0]["title"] == "Chat"
    h.assert_no_errors()


# --- permissions ---------------------------------------------------------------------------


def warnings_about(caplog: pytest.LogCaptureFixture, permission: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and f"Missing {permission}" in r.getMessage()
    ]


async def test_without_read_message_history_the_member_is_told_and_the_log_says_it_once(chat, caplog):
    bot, h, requests = chat
    h.set_overwrite(h.channel_id, h.bot_id, deny=discord.Permissions(read_message_history=True))
    moderator = h.add_member(
        name="mod", roles=[h.add_role("mods", permissions=discord.Permissions(manage_messages=True))]
    )
    await h.invoke_slash("chat", {"message": "Count with me: one."})
    opening = h.recorder.last("edit_original").message_id
    # The opening answer says it can't go on as it should, and why.
    assert "I'm missing Read Message History here" in h.recorder.messages[opening]["embeds"][0]["footer"]["text"]

    with caplog.at_level(logging.WARNING):
        for said in ("two", "three"):
            await h.dispatch_message(f"<@{h.bot_id}> {said}", reference=opening)
            told = h.recorder.last("send_message")
            assert told.channel_id == h.channel_id and told.payload.get("message_reference") is None
            assert "I can't answer in this channel: I'm missing the Read Message History permission" in told.content
    h.assert_no_errors()
    assert len(requests) == 1  # no turn was queued without the history to read
    assert len(warnings_about(caplog, "Read Message History")) == 1  # once, not per message

    await h.invoke_slash("status", {}, user_id=moderator)
    listed = h.recorder.last("response").text()
    assert "Conversations (`/chat`): missing Read Message History" in listed
    assert "Slash commands (the minimum): missing" not in listed
    await h.invoke_slash("status", {})  # a member who is no moderator: no permissions listed
    assert "My permissions in this channel" not in h.recorder.last("response").text()


async def test_without_send_messages_in_threads_no_thread_is_opened_and_the_log_says_so(chat, caplog):
    bot, h, requests = chat
    h.set_overwrite(h.channel_id, h.bot_id, deny=discord.Permissions(send_messages_in_threads=True))
    with caplog.at_level(logging.WARNING):
        await h.invoke_slash("chat", {"message": "Hello"})
    assert h.recorder.last("start_thread") is None  # a thread it could not answer in would be a dead end
    opening = h.recorder.last("edit_original").message_id
    footer = h.recorder.messages[opening]["embeds"][0]["footer"]["text"]
    assert "reply to this answer to go on" in footer and "Send Messages in Threads" in footer
    assert len(warnings_about(caplog, "Send Messages in Threads")) == 1
    await h.dispatch_message(f"<@{h.bot_id}> and then?", reference=opening)  # a reply chain in the channel works
    assert len(requests) == 2 and requests[-1].history[0] == ("user", "Hello")
    h.assert_no_errors()


async def test_a_thread_the_bot_can_no_longer_speak_in_gets_one_log_line(chat, caplog):
    bot, h, requests = chat
    await h.invoke_slash("chat", {"message": "Hello"})
    thread = h.recorder.last("start_thread").message_id
    h.set_overwrite(h.channel_id, h.bot_id, deny=discord.Permissions(send_messages_in_threads=True))
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            await h.dispatch_message(f"<@{h.bot_id}> still there?", channel_id=thread)
    h.assert_no_errors()
    assert len(requests) == 1 and h.recorder.of_kind("send_message") == []  # it can't speak there: only the log
    assert len(warnings_about(caplog, "Send Messages in Threads")) == 1


async def test_a_reply_discord_refuses_is_caught(chat, caplog):
    """Discord refuses what the bot's cached permissions allowed (changed meanwhile, a locked thread)."""
    bot, h, requests = chat
    await h.invoke_slash("chat", {"message": "Hello"})
    thread = h.recorder.last("start_thread").message_id
    h.recorder.fail_next("send_message", 403, 50013, "Missing Permissions")
    with caplog.at_level(logging.WARNING):
        await h.dispatch_message(f"<@{h.bot_id}> still there?", channel_id=thread)
    h.assert_no_errors()  # no "Ignoring exception in on_message"
    assert [r for r in caplog.records if "Missing Permissions" in r.getMessage()]
    again = await h.dispatch_message(f"<@{h.bot_id}> and now?", channel_id=thread)
    assert answer_of(h, again.id)["embeds"][0]["title"] == "Chat"  # the next message is answered as before
    await h.invoke_slash("chat", {"message": "Hello again"})
    other = h.recorder.last("start_thread").message_id
    h.recorder.fail_next("history", 403, 50001, "Missing Access")  # reading the thread back is refused
    with caplog.at_level(logging.WARNING):
        await h.dispatch_message(f"<@{h.bot_id}> hello?", channel_id=other)
    h.assert_no_errors()
    assert [r for r in caplog.records if r.levelno == logging.WARNING and "Missing Access" in r.getMessage()]
    assert len(requests) == 4  # the refused ones queued nothing


def never_finished(monkeypatch: pytest.MonkeyPatch, engine: Engine) -> None:
    """Every answer stops at its length, so Continue is always offered (the tiny model's random weights may
    write the end token early); the text stays the model's."""
    wrap_outcomes(
        monkeypatch,
        engine,
        lambda task, outcome, chunk: (
            dataclasses.replace(outcome, finish_reasons=["length"] * len(outcome.texts))
            if isinstance(outcome, GenerationResult)
            else outcome
        ),
    )


def asker(message: dict) -> int:
    """The member an answer's buttons belong to."""
    return int(button_ids(message)[0].rsplit(":", 1)[1])


async def answer_messages(bot: HFBot, h: FakeDiscord, last_id: int) -> list[dict]:
    """An answer's messages, oldest first: those its last message's stored answer names, then that one."""
    stored = json.loads((await bot.store.answers.get(last_id))[0])
    return [h.recorder.messages[message_id] for message_id in [*stored.get("earlier", []), last_id]]


async def continued_into(bot: HFBot, h: FakeDiscord, first_id: int, messages: int) -> list[dict]:
    """Press Continue on an answer's last message until the answer fills `messages` messages; those messages."""
    last_id = first_id
    for _ in range(12):
        chain = await answer_messages(bot, h, last_id)
        if len(chain) >= messages:
            return chain
        owner = asker(chain[-1])
        await h.invoke_component(f"answer:more:{owner}", message_id=last_id, user_id=owner)
        h.assert_no_errors()
        last_id = h.recorder.find_component(f"answer:more:{owner}")[0]  # the newest message with the buttons
    raise AssertionError(f"the answer never filled {messages} messages: {[m['embeds'] for m in chain]}")


async def check_pages(bot: HFBot, h: FakeDiscord, chain: list[dict]) -> list[str]:
    """A long answer's messages: each within Discord's limits, the whole text across them, the footer and the
    buttons on the last only. Returns their texts."""
    pages = [m["embeds"][0]["description"] for m in chain]
    assert all(len(page) <= 4096 and not m["content"] for page, m in zip(pages, chain))
    assert {m["embeds"][0]["title"] for m in chain} == {"Chat"}
    _, text = await bot.store.answers.get(int(chain[-1]["id"]))
    assert "".join(pages) == text.strip()  # in order, nothing cut
    owner = asker(chain[-1])
    assert [button_ids(m) for m in chain] == [[]] * (len(chain) - 1) + [
        [f"answer:again:{owner}", f"answer:more:{owner}"]
    ]
    assert [bool(m["embeds"][0].get("footer")) for m in chain] == [False] * (len(chain) - 1) + [True]
    sent = h.recorder.of_kind("response", "followup", "edit_original", "send_message", "edit_message")
    assert all(len(embed.get("description") or "") <= 4096 for r in sent for embed in r.embeds)
    stored = json.loads((await bot.store.answers.get(int(chain[-1]["id"])))[0])
    assert stored["earlier"] == [int(m["id"]) for m in chain[:-1]]  # Regenerate finds them after a restart
    return pages


async def test_a_long_generate_answer_goes_on_in_follow_up_messages(chat, engine, monkeypatch):
    bot, h, requests = chat
    never_finished(monkeypatch, engine)
    options = {"prompt": "Tell me a long story.", "mode": "chat", "max_new_tokens": 256, "temperature": 1.0}
    await h.invoke_slash("generate", options)
    chain = await continued_into(bot, h, h.recorder.last("edit_original").message_id, 2)
    await check_pages(bot, h, chain)

    # Regenerate replaces the whole answer: the earlier messages go, the new one is written in the last.
    await h.invoke_component(f"answer:again:{h.user_id}", message_id=int(chain[-1]["id"]))
    h.assert_no_errors()
    assert all(int(m["id"]) not in h.recorder.messages for m in chain[:-1])
    assert requests[-1].continue_answer is None
    assert "again" in button_ids(h.recorder.messages[int(chain[-1]["id"])])[0]


async def test_a_long_chat_answer_in_a_thread_is_read_back_whole(chat, engine, monkeypatch):
    bot, h, requests = chat
    never_finished(monkeypatch, engine)
    await h.invoke_slash("chat", {"message": "Tell me a story."})
    thread = h.recorder.last("start_thread").message_id
    bot.settings = dataclasses.replace(bot.settings, chat_max_new_tokens=256)
    asked = await h.dispatch_message(f"<@{h.bot_id}> Go on, a long one.", channel_id=thread)
    chain = await continued_into(bot, h, int(answer_of(h, asked.id)["id"]), 2)
    pages = await check_pages(bot, h, chain)
    assert {m["channel_id"] for m in chain} == {str(thread)}  # the answer goes on in its thread
    assert all(int(m["message_reference"]["message_id"]) == int(p["id"]) for p, m in zip(chain, chain[1:]))

    await h.dispatch_message(f"<@{h.bot_id}> Thanks!", channel_id=thread)
    h.assert_no_errors()
    assert requests[-1].history[-2:] == (("user", "Go on, a long one."), ("assistant", "\n".join(pages)))


async def test_a_long_opening_answer_goes_on_in_its_thread(chat, engine, monkeypatch):
    bot, h, requests = chat
    never_finished(monkeypatch, engine)
    bot.settings = dataclasses.replace(bot.settings, chat_max_new_tokens=256)
    await h.invoke_slash("chat", {"message": "Tell me a long story."})
    thread = h.recorder.last("start_thread").message_id
    chain = await continued_into(bot, h, thread, 2)
    pages = await check_pages(bot, h, chain)
    assert [m["channel_id"] for m in chain[1:]] == [str(thread)] * (len(chain) - 1)  # read with the thread

    await h.dispatch_message(f"<@{h.bot_id}> Thanks!", channel_id=thread)
    h.assert_no_errors()
    assert requests[-1].history == (("user", "Tell me a long story."), ("assistant", "\n".join(pages)))
