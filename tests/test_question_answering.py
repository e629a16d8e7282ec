"""/ask and "Ask about this message": extractive question answering through the real worker on a tiny
DistilBERT QA model (random weights, so the spans are meaningless; what is checked is what is done with
the logits: windows, offsets, max_answer_len, the null score), the real CommandTree and the console."""

from __future__ import annotations

import io
import os

import discord
import numpy as np
import pytest
import pytest_asyncio
import torch
from transformers import AutoModelForQuestionAnswering, AutoTokenizer

from bot.commands import build_request, render_result
from bot.console import ConsoleApp
from bot.engine import Engine, InvalidInput, ModelUnavailable
from bot.engine.request import MAX_TEXT_CHARS
from bot.engine.tasks.question_answering import answer, windows
from bot.settings import Settings
from bot.specs.question_answering import QuestionAnsweringRequest

from .discord_harness import DEFERRED_CHANNEL_MESSAGE, MODAL
from .test_commands_discord import assert_answered, bot_env, make_bot, private_refusal, reset  # noqa: F401

QUESTION = "Who wrote the first program?"
CONTEXT = "Ada Lovelace wrote the first program for Charles Babbage's Analytical Engine in 1843."
LONG = " ".join([CONTEXT] * 23)  # about 1950 characters, more tokens than one window reads


def direct_logits(folder, question: str, context: str) -> tuple[torch.Tensor, torch.Tensor, object]:
    """The tiny model's own start and end logits for one window, run here alone without padding."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForQuestionAnswering.from_pretrained(folder).eval()
    encoding = tokenizer(question, context, return_tensors="pt")
    with torch.inference_mode():
        out = model(**encoding)
    return out.start_logits[0], out.end_logits[0], encoding


def pieces(encoding, char: int) -> list[int]:
    """The tokens of the context's word at `char`."""
    word = encoding.char_to_word(0, char, sequence_index=1)
    ids = encoding.word_ids(0)
    return [t for t, w in enumerate(ids) if w == word and encoding.sequence_ids(0)[t] == 1]


async def test_the_best_spans_point_into_the_context_with_the_models_own_logits(tiny_engine, tiny_models):
    request = QuestionAnsweringRequest(QUESTION, CONTEXT, top_k=3, details=True)
    # Batched with another member's longer request: padding must not change the logits.
    jobs = [
        tiny_engine.submit_job(request, user="a"),
        tiny_engine.submit_job(QuestionAnsweringRequest("Why?", LONG), user="b"),
    ]
    result, _ = [await job.result() for job in jobs]
    assert 1 <= len(result.spans) <= 3 and result.windows == 1
    assert [s.score for s in result.spans] == sorted((s.score for s in result.spans), reverse=True)
    start, end, encoding = direct_logits(tiny_models["qa"], QUESTION, CONTEXT)
    for span in result.spans:
        assert CONTEXT[span.start : span.end] == span.text and span.text.strip()
        # The span is widened to whole words: its logits are those of a word piece of its first and last word.
        first, last = (pieces(encoding, span.start), pieces(encoding, span.end - 1))
        assert min(abs(span.start_logit - float(start[t])) for t in first) < 1e-4
        assert min(abs(span.end_logit - float(end[t])) for t in last) < 1e-4
    assert result.null_logits == pytest.approx((float(start[0]), float(end[0])), abs=1e-4)
    reply = render_result(result)
    assert "**Q:**" in reply.text and "start and end logits" in reply.fields[0][0]


async def test_a_long_context_is_read_in_overlapping_windows(tiny_engine):
    result = await tiny_engine.submit(QuestionAnsweringRequest(QUESTION, LONG, top_k=5), user="ask")
    assert result.windows >= 2 and "overlapping windows" in render_result(result).footer
    assert all(LONG[s.start : s.end] == s.text for s in result.spans)
    assert len({(s.start, s.end) for s in result.spans}) == len(result.spans)  # a span two windows share counts once


async def test_max_answer_len_one_gives_single_words(tiny_engine):
    result = await tiny_engine.submit(
        QuestionAnsweringRequest(QUESTION, CONTEXT, top_k=5, max_answer_len=1), user="ask"
    )
    # One token, widened to its whole word as the pipeline's align_to_words does.
    assert result.spans and all(" " not in s.text for s in result.spans)


def test_no_answer_when_the_null_score_beats_every_span(tiny_models):
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["qa"])
    request = QuestionAnsweringRequest(QUESTION, CONTEXT, top_k=2)
    read = windows(tokenizer, request)
    length = len(read.encoding["input_ids"][0])
    logits = torch.zeros(length, 2)
    logits[0] = 8.0  # [CLS]: the model says the context holds no answer
    result = answer(request, read, [logits], "tiny")
    assert result.no_answer and result.null_score > result.spans[0].score
    assert "No answer found" in render_result(result).text
    logits[0] = -8.0
    assert not answer(request, read, [logits], "tiny").no_answer


def test_spans_never_cover_the_question(tiny_models):
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["qa"])
    request = QuestionAnsweringRequest(QUESTION, CONTEXT, top_k=5)
    read = windows(tokenizer, request)
    question_token = int(np.argmax(read.p_masks[0][1:])) + 1  # the first masked token after [CLS]
    logits = torch.zeros(len(read.p_masks[0]), 2)
    logits[question_token] = 20.0  # the question's words get by far the highest logits
    result = answer(request, read, [logits], "tiny")
    assert all(CONTEXT[s.start : s.end] == s.text for s in result.spans)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"question": QUESTION, "context": "   "}, "The context is empty"),
        ({"question": " ", "context": CONTEXT}, "The question is empty"),
        ({"question": QUESTION, "context": "x" * (MAX_TEXT_CHARS + 1)}, "The context is too long"),
        ({"question": QUESTION, "context": CONTEXT, "max_answer_len": 0}, "max_answer_len must be between 1 and 100"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(options, message):
    with pytest.raises(InvalidInput, match=message):
        build_request("ask", options, Settings.from_env({}, profile="online"))


async def test_a_question_that_leaves_no_room_for_the_context_says_so(tiny_engine):
    with pytest.raises(InvalidInput, match=r"The question is too long \(\d+ tokens\).*keep the question under"):
        await tiny_engine.submit(QuestionAnsweringRequest(" ".join(["why"] * 300), CONTEXT), user="ask")


async def test_without_a_qa_model_the_member_is_told_which_setting(tiny_llama_engine):
    assert Settings.from_env({}, profile="offline").engine.models["question_answering"] == ""
    with pytest.raises(ModelUnavailable, match="QUESTION_ANSWERING_MODEL"):
        await tiny_llama_engine.submit(QuestionAnsweringRequest(QUESTION, CONTEXT), user="ask")


# ------------------------------------------------------------------------- Discord, /compare, console


@pytest.fixture(scope="module")
def settings(tiny_models, tmp_path_factory) -> Settings:
    """Two QA models to choose from: the tiny one, and the same files under another folder name."""
    data = tmp_path_factory.mktemp("ask-data")
    other = data / "qa-copy"
    os.symlink(tiny_models["qa"], other)
    env = bot_env(tiny_models, str(data), QUESTION_ANSWERING_MODELS=f"{tiny_models['qa']},{other}")
    return Settings.from_env(env)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def engine(settings):
    async with Engine(settings.engine) as engine:
        yield engine


async def test_ask_through_discord_then_status_lists_it(make_bot, settings, engine):
    bot, h = await make_bot(settings, engine)
    await h.invoke_slash("ask", {"question": QUESTION, "context": CONTEXT, "details": True})
    embed = assert_answered(h)
    assert embed["title"] == "Answer" and "**Q:**" in embed["description"]
    assert embed["footer"]["text"].startswith(str(settings.engine.models["question_answering"]))
    reset(h)
    await h.invoke_slash("status")
    fields = {f["name"]: f["value"] for f in h.recorder.records[0].embeds[0]["fields"]}
    assert "served 1 · failed 0" in fields["question_answering"]


async def test_a_model_not_in_the_list_is_refused_privately(make_bot, settings, engine):
    bot, h = await make_bot(settings, engine)
    await h.invoke_slash("ask", {"question": QUESTION, "context": CONTEXT, "model": "someone/else"})
    assert "someone/else" in private_refusal(h)["description"]


async def test_ask_about_a_message_takes_the_question_from_a_modal(make_bot, settings, engine):
    bot, h = await make_bot(settings, engine)
    message = h.make_message(CONTEXT)
    await h.invoke_message_menu("Ask about this message", message)
    shown = h.recorder.last("response")
    assert shown.response_type == MODAL
    reset(h)
    await h.submit_modal({"question": QUESTION})
    assert h.recorder.records[0].response_type == DEFERRED_CHANNEL_MESSAGE
    embed = assert_answered(h)
    assert embed["title"] == "Answer" and QUESTION in embed["description"]


async def test_asking_about_a_message_without_text_or_with_an_empty_question_is_refused(
    make_bot,
    settings,
    engine,
):
    bot, h = await make_bot(settings, engine)
    await h.invoke_message_menu("Ask about this message", h.make_message(""))
    assert "no text to read" in private_refusal(h)["description"]
    reset(h)
    await h.invoke_message_menu("Ask about this message", h.make_message(CONTEXT))
    reset(h)
    await h.submit_modal({"question": "   "})
    assert "The question is empty" in private_refusal(h)["description"]


async def test_compare_two_qa_models_side_by_side(make_bot, settings, engine):
    bot, h = await make_bot(settings, engine)
    await h.invoke_slash("compare", {"task": "ask", "text": CONTEXT, "question": QUESTION})
    embed = assert_answered(h)
    assert embed["title"] == "Compare: ask" and len(embed["fields"]) == 2
    assert all("**Q:**" in field["value"] for field in embed["fields"])


async def test_the_console_asks_and_refuses_like_discord(settings, engine):
    app = ConsoleApp(settings, engine, out=io.StringIO(), json_mode=True)
    done = await app.run_line(f"/ask question: {QUESTION} context: {CONTEXT} top_k: 2", 1)
    assert done["ok"] and done["result"]["question"] == QUESTION and 1 <= len(done["result"]["spans"]) <= 2
    refused = await app.run_line(f"/ask question: {QUESTION} context: {CONTEXT} top_k: 9", 2)
    assert not refused["ok"] and "top_k must be between 1 and 5" in refused["error"]["message"]


async def test_unloading_the_cog_removes_its_message_menu(make_bot, settings, engine):
    bot, h = await make_bot(settings, engine)
    menu = "Ask about this message"
    assert bot.tree.get_command(menu, type=discord.AppCommandType.message) is not None
    await bot.unload_extension("cogs.question_answering")
    assert bot.tree.get_command(menu, type=discord.AppCommandType.message) is None
    assert bot.tree.get_command("ask") is None
    await bot.load_extension("cogs.question_answering")  # and back, as on a reload
    assert bot.tree.get_command(menu, type=discord.AppCommandType.message) is not None
