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
from typing import Any

import pytest
import pytest_asyncio
from transformers import AutoTokenizer

from bot.client import HFBot
from bot.engine import Engine
from bot.engine.errors import WorkerCrashed
from bot.engine.request import failure
from bot.engine.tasks.generation import chat_prompt_ids
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
    bot, h = await make_bot(settings, engine)
    bot.stream_interval = 0.0
    h.timeout = WAIT  # the first turn waits for the worker to load the model, on a busy machine too
    # Short answers (CHAT_MAX_NEW_TOKENS), so that a few turns fit the tiny Llama's 512 positions.
    bot.settings = dataclasses.replace(bot.settings, chat_max_new_tokens=8)
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
