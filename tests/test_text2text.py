"""The seed's text2text example: flan-t5 in the online profile's generation list, and its prompt shape
through /generate's command layer and the real worker on a tiny T5 (greedy, so the answer is exactly
what `model.generate` decodes)."""

from __future__ import annotations

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from bot.commands import build_request
from bot.settings import Settings

PROMPT = "question: What is 42 ? context: 42 is the answer to life, the universe and everything"
NEW_TOKENS = 12


def test_flan_t5_is_an_online_generation_choice():
    allowed = Settings.from_env({}, profile="online").engine.allowed("generation")
    assert allowed[0] == "HuggingFaceTB/SmolLM2-135M-Instruct" and "google/flan-t5-base" in allowed
    request = build_request(
        "generate", {"prompt": PROMPT, "model": "google/flan-t5-base"}, Settings.from_env({}, profile="online")
    )
    assert request.model == "google/flan-t5-base" and request.prompt == PROMPT


async def test_the_seeds_question_context_prompt_is_answered_by_the_seq2seq_model(tiny_t5_engine, tiny_models):
    settings = Settings.from_env({}, profile="offline")  # the command layer only; the engine names its own model
    request = build_request("generate", {"prompt": PROMPT, "temperature": 0.0, "max_new_tokens": NEW_TOKENS}, settings)
    job = tiny_t5_engine.submit_job(request, user="t5")
    streamed = "".join([delta async for sequence, delta in job.chunks() if sequence == 0])
    result = await job.result()

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["t5"])
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_models["t5"]).eval()
    with torch.inference_mode():
        ids = model.generate(**tokenizer(PROMPT, return_tensors="pt"), max_new_tokens=NEW_TOKENS, do_sample=False)
    expected = tokenizer.decode(ids[0], skip_special_tokens=True)
    assert expected.strip()  # the tiny model says something, so the comparison means something
    assert result.texts == [expected] and streamed == expected
    assert result.prompt == PROMPT  # seq2seq: the answer is not a continuation of the prompt
