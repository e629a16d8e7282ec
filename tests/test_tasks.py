"""Every task through the real worker process on tiny random-weight models.

The weights are random, so the tests check structure (labels, shapes, limits, sums),
batching (a batched request must equal the same request run alone) and errors, not
whether an answer is "right" (see test_real_models.py for that).
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from bot.engine import InvalidInput, ModelUnavailable
from bot.engine.request import Request
from bot.engine.tasks.fill_mask import WORD
from bot.specs.fill_mask import CAUSAL, FillMaskRequest
from bot.specs.generation import GenerationRequest
from bot.specs.sentiment import SentimentRequest
from bot.specs.tokenize import TokenizeRequest
from bot.specs.zero_shot import ZeroShotRequest

from .conftest import MISSING_MODEL_ID, lone_generate

TIMEOUT = 120.0
# Batched and alone agree exactly on CPU (padding is masked out); the tiny random models score
# different inputs only ~1e-6..1e-5 apart, so a looser tolerance would not notice mixed-up rows.
SAME = 1e-6


async def run_together(engine, requests: list[Request]) -> list[Any]:
    """Submit all at once (one user each; of about one length, or the padding cap splits the pass) so they
    share one forward pass (classification) or decode side by side (generation); results or errors, in order."""
    before = len(engine.metrics.batch_sizes[requests[0].task])
    jobs = [engine.submit_job(request, user=f"batch-user-{i}") for i, request in enumerate(requests)]
    outcomes = await asyncio.wait_for(asyncio.gather(*(job.result() for job in jobs), return_exceptions=True), TIMEOUT)
    sizes = list(engine.metrics.batch_sizes[requests[0].task])[before:]
    if not requests[0].streams:
        assert sizes == [len(requests)], f"expected one batch of {len(requests)}, got batches {sizes}"
    return outcomes


async def run_alone(engine, request: Request) -> Any:
    return await asyncio.wait_for(engine.submit(request, user="alone"), TIMEOUT)


def by_label(result) -> dict[str, float]:
    return dict(zip(result.labels, result.scores))


# --- sentiment ---------------------------------------------------------------------------


async def test_sentiment_labels_and_scores(tiny_engine, tiny_models):
    first = SentimentRequest(("I loved this movie, it was wonderful.", "The food was terrible.", "It is Monday."))
    second = SentimentRequest(("What a fantastic concert!", "Never again."))
    results = await run_together(tiny_engine, [first, second])
    for request, result in zip([first, second], results):
        assert result.method == "classifier" and result.model == str(tiny_models["sentiment"])
        assert [s.text for s in result.sentences] == list(request.texts)
        for sentence in result.sentences:
            assert set(sentence.scores) == {"NEGATIVE", "POSITIVE"}
            assert sum(sentence.scores.values()) == pytest.approx(1.0, abs=1e-5)
            assert sentence.label == max(sentence.scores, key=sentence.scores.get)
            assert sentence.score == sentence.scores[sentence.label]
    # Flattened into one forward and regrouped: the same numbers as each request alone.
    for request, batched in zip([first, second], results):
        alone = await run_alone(tiny_engine, request)
        for a, b in zip(alone.sentences, batched.sentences):
            assert a.scores == pytest.approx(b.scores, abs=SAME)


# --- zero-shot ---------------------------------------------------------------------------


async def test_zero_shot_nli_single_label_scores_sum_to_one(tiny_engine, tiny_models):
    labels = ("sports", "politics", "cooking", "technology")
    result = await run_alone(tiny_engine, ZeroShotRequest("Our keeper saved two penalties.", labels))
    assert result.method == "nli" and result.model == str(tiny_models["nli"]) and not result.multi_label
    assert sorted(result.labels) == sorted(labels)
    assert result.scores == sorted(result.scores, reverse=True)
    assert sum(result.scores) == pytest.approx(1.0, abs=1e-5)


async def test_zero_shot_nli_multi_label_scores_are_independent(tiny_engine):
    text = "The senator cooked pasta for the team."
    many = await run_alone(tiny_engine, ZeroShotRequest(text, ("sports", "politics", "cooking"), multi_label=True))
    one = await run_alone(tiny_engine, ZeroShotRequest(text, ("politics",), multi_label=True))
    assert many.multi_label and all(0.0 <= s <= 1.0 for s in many.scores)
    assert many.scores == sorted(many.scores, reverse=True)
    # Each label is judged on its own: the other labels do not change its score.
    assert by_label(many)["politics"] == pytest.approx(one.scores[0], abs=SAME)
    # A single-label request with one label is certain by construction; multi-label is not.
    single = await run_alone(tiny_engine, ZeroShotRequest(text, ("politics",)))
    assert single.scores == [pytest.approx(1.0)]
    assert not math.isclose(one.scores[0], 1.0, abs_tol=1e-3)


async def test_zero_shot_nli_batch_with_different_label_counts_is_regrouped(tiny_engine):
    requests = [
        ZeroShotRequest("The match went to penalties.", ("sports", "politics")),
        ZeroShotRequest("Parliament voted on the budget today.", ("sports", "politics", "finance")),
        ZeroShotRequest("I cooked ramen for dinner.", ("food", "travel", "music", "health", "science")),
        ZeroShotRequest("The new phone keeps crashing.", ("technology", "weather", "sports"), multi_label=True),
        ZeroShotRequest("A short one on letters.", ("a",), hypothesis_template="This text is about {}."),
    ]
    batched = await run_together(tiny_engine, requests)
    for request, result in zip(requests, batched):
        assert sorted(result.labels) == sorted(request.labels) and result.text == request.text
        alone = await run_alone(tiny_engine, request)
        assert by_label(result) == pytest.approx(by_label(alone), abs=SAME)
        if not request.multi_label:
            assert sum(result.scores) == pytest.approx(1.0, abs=1e-5)


async def test_zero_shot_embedding_method(tiny_engine, tiny_models):
    labels = ("sports", "politics", "cooking")
    requests = [
        ZeroShotRequest("The match went to penalties.", labels, method="embedding"),
        ZeroShotRequest("I cooked ramen for dinner.", labels, method="embedding", multi_label=True),
        ZeroShotRequest("Hello there, how are you?", ("greeting", "question"), method="embedding"),
    ]
    batched = await run_together(tiny_engine, requests)
    single, multi, other = batched
    for result in batched:
        assert result.method == "embedding" and result.model == str(tiny_models["embedding"])
        assert result.scores == sorted(result.scores, reverse=True)
    assert sorted(single.labels) == sorted(labels) and sum(single.scores) == pytest.approx(1.0, abs=1e-5)
    assert sum(other.scores) == pytest.approx(1.0, abs=1e-5)
    assert multi.multi_label and all(0.0 <= s <= 1.0 for s in multi.scores)
    for request, result in zip(requests, batched):
        assert by_label(result) == pytest.approx(by_label(await run_alone(tiny_engine, request)), abs=SAME)


# --- fill-mask ---------------------------------------------------------------------------


@pytest.mark.parametrize("placeholder", ["[MASK]", "<mask>", "___"])
async def test_fill_mask_placeholders(tiny_engine, tiny_models, placeholder):
    text = f"Paris is the {placeholder} of France."
    result = await run_alone(tiny_engine, FillMaskRequest(text, top_k=4))
    assert result.text == text and result.model == str(tiny_models["fill_mask"])
    assert len(result.candidates) == 4
    scores = [c.score for c in result.candidates]
    assert scores == sorted(scores, reverse=True) and all(0 < s <= 1 for s in scores)
    for candidate in result.candidates:
        assert candidate.token and candidate.token in candidate.sequence
        assert candidate.sequence == text.replace(placeholder, candidate.token)
        assert placeholder not in candidate.sequence and "<mask>" not in candidate.sequence


async def test_fill_mask_placeholders_mean_the_same_mask(tiny_engine):
    texts = ["Paris is the [MASK] of France.", "Paris is the <mask> of France.", "Paris is the ____ of France."]
    results = await run_together(tiny_engine, [FillMaskRequest(t, top_k=3) for t in texts])
    tokens = [[c.token for c in r.candidates] for r in results]
    assert tokens[0] == tokens[1] == tokens[2]
    assert [c.score for c in results[0].candidates] == pytest.approx([c.score for c in results[2].candidates], abs=1e-5)


# --- tokenize ----------------------------------------------------------------------------


async def test_tokenize_flags_special_tokens(tiny_engine, tiny_models):
    result = await run_alone(tiny_engine, TokenizeRequest("Hello world, the match was great!", role="sentiment"))
    assert result.model == str(tiny_models["sentiment"])
    assert result.tokens[0] == "[CLS]" and result.tokens[-1] == "[SEP]"
    assert result.special == [True] + [False] * (len(result.tokens) - 2) + [True]
    assert len(result.ids) == len(result.tokens) == len(result.special)
    assert "hello world" in result.decoded  # DistilBert lowercases

    roberta = await run_alone(tiny_engine, TokenizeRequest("Hello world", role="fill_mask"))
    assert (roberta.tokens[0], roberta.tokens[-1]) == ("<s>", "</s>") and roberta.special[0] and roberta.special[-1]

    gpt2 = await run_alone(tiny_engine, TokenizeRequest("Hello world", role="generation"))
    assert gpt2.model == str(tiny_models["gpt2"])
    assert not any(gpt2.special) and gpt2.decoded == "Hello world"  # gpt2 adds no special tokens


# --- generation --------------------------------------------------------------------------


def check_generation(result, request: GenerationRequest) -> None:
    n = request.num_return_sequences
    assert len(result.texts) == len(result.new_tokens) == len(result.finish_reasons) == n
    assert result.prompt == request.prompt and result.mode == request.mode
    for text, tokens, reason in zip(result.texts, result.new_tokens, result.finish_reasons):
        assert isinstance(text, str) and not text.startswith(request.prompt)
        assert 0 <= tokens <= request.max_new_tokens
        assert reason in ("stop", "length")
        if reason == "length":
            assert tokens == request.max_new_tokens


async def test_generation_gpt2_batch_pads_with_eos(tiny_engine, tiny_models):
    # gpt2 has no pad token; prompts of different lengths in one batch need one (eos is used).
    requests = [
        GenerationRequest("Hello", max_new_tokens=6, temperature=0),
        GenerationRequest(
            "Once upon a time, there was a little robot who wanted to learn.", max_new_tokens=6, temperature=0
        ),
    ]
    results = await run_together(tiny_engine, requests)
    for request, result in zip(requests, results):
        check_generation(result, request)
        assert result.model == str(tiny_models["gpt2"])
    assert sum(sum(r.new_tokens) for r in results) > 0


async def test_generation_num_return_sequences(tiny_engine):
    request = GenerationRequest(
        "The weather in Paris", max_new_tokens=8, num_return_sequences=3, temperature=1.0, seed=3
    )
    result = await run_alone(tiny_engine, request)
    check_generation(result, request)
    assert len(set(result.texts)) == 3  # each sequence is sampled on its own


async def test_generation_per_request_token_limits_in_one_batch(tiny_engine, tiny_models):
    requests = [
        GenerationRequest("Hello", max_new_tokens=3, temperature=0),
        GenerationRequest("The capital of France is", max_new_tokens=12, temperature=0),
        GenerationRequest("Why is the sky blue?", max_new_tokens=7, num_return_sequences=2, temperature=0),
    ]
    results = await run_together(tiny_engine, requests)
    for request, result in zip(requests, results):
        check_generation(result, request)
        # Greedy: each row is what a lone `generate` with its own limit writes, and ends for the same reason.
        text, tokens, reason = lone_generate(tiny_models["gpt2"], request.prompt, request.max_new_tokens)
        n = request.num_return_sequences
        assert (result.texts, result.new_tokens, result.finish_reasons) == ([text] * n, [tokens] * n, [reason] * n)


async def test_generation_same_seed_same_text(tiny_engine):
    def request(seed: int) -> GenerationRequest:
        return GenerationRequest("Tell me a story", max_new_tokens=16, temperature=1.2, top_p=1.0, seed=seed)

    first = await run_alone(tiny_engine, request(7))
    second = await run_alone(tiny_engine, request(7))
    assert first.texts == second.texts and first.new_tokens == second.new_tokens
    others = [(await run_alone(tiny_engine, request(seed))).texts[0] for seed in (8, 9)]
    assert len({first.texts[0], *others}) > 1  # the seed does steer sampling


async def test_generation_same_seed_is_reproducible_next_to_another_request_with_that_seed(tiny_engine):
    requests = [
        GenerationRequest(prompt, max_new_tokens=12, temperature=1.0, seed=42)
        for prompt in ("Tell me a story", "Why is the sky blue?")
    ]
    jobs = [tiny_engine.submit_job(request, user=f"seed-user-{i}") for i, request in enumerate(requests)]
    together = await asyncio.wait_for(asyncio.gather(*(job.result() for job in jobs)), TIMEOUT)
    for request, result in zip(requests, together):
        assert result.texts == (await run_alone(tiny_engine, request)).texts


async def test_generation_streaming_matches_final_text(tiny_engine):
    request = GenerationRequest("Once upon a time", max_new_tokens=40, num_return_sequences=2, temperature=1.0, seed=11)
    job = tiny_engine.submit_job(request, user="streamer")
    chunks = [chunk async for chunk in job.chunks()]
    result = await asyncio.wait_for(job.result(), TIMEOUT)
    check_generation(result, request)
    for sequence in range(2):
        streamed = "".join(text for seq, text in chunks if seq == sequence)
        assert streamed == result.texts[sequence]
    assert sum(1 for seq, _ in chunks if seq == 0) > 1  # streamed in pieces, not at the end


async def test_generation_chat_mode_without_chat_template_is_invalid(tiny_engine):
    chat = GenerationRequest("What is the capital of France?", mode="chat", max_new_tokens=4, temperature=0)
    complete = GenerationRequest("What is the capital of France?", max_new_tokens=4, temperature=0)
    error, fine = await run_together(tiny_engine, [chat, complete])
    assert isinstance(error, InvalidInput)
    assert "no chat template" in str(error) and "mode: complete" in str(error)
    check_generation(fine, complete)  # the other request in the batch is unaffected


async def test_generation_llama_chat_and_complete(tiny_llama_engine, tiny_models):
    chat = GenerationRequest("What is the capital of France?", mode="chat", max_new_tokens=10, temperature=0)
    complete = GenerationRequest("The capital of France is", max_new_tokens=5, temperature=0)
    results = await run_together(tiny_llama_engine, [chat, complete])
    for request, result in zip([chat, complete], results):
        check_generation(result, request)
        assert result.model == str(tiny_models["llama"])
    job = tiny_llama_engine.submit_job(
        GenerationRequest("Hello!", mode="chat", max_new_tokens=12, temperature=0.8, seed=1), user="streamer"
    )
    streamed = "".join(text for _, text in [chunk async for chunk in job.chunks()])
    assert streamed == (await asyncio.wait_for(job.result(), TIMEOUT)).texts[0]


async def test_generation_t5_seq2seq(tiny_t5_engine, tiny_models):
    requests = [
        GenerationRequest("translate English to German: The house is wonderful.", max_new_tokens=5, temperature=0),
        GenerationRequest(
            "summarize: The council met on Tuesday to discuss the new park.",
            max_new_tokens=9,
            temperature=0,
            num_return_sequences=2,
        ),
    ]
    results = await run_together(tiny_t5_engine, requests)
    for request, result in zip(requests, results):
        check_generation(result, request)
        assert result.model == str(tiny_models["t5"])
    chat = await asyncio.gather(
        tiny_t5_engine.submit(GenerationRequest("Hi", mode="chat"), user="u"), return_exceptions=True
    )
    assert isinstance(chat[0], InvalidInput)


# --- unavailable models ------------------------------------------------------------------


async def test_fill_mask_without_a_configured_model(tiny_llama_engine):
    with pytest.raises(ModelUnavailable) as error:
        await run_alone(tiny_llama_engine, FillMaskRequest("Paris is the [MASK] of France."))
    assert "FILL_MASK_MODEL" in str(error.value) and "No fill-mask model is configured" in str(error.value)


async def test_fill_mask_with_a_causal_lm_fills_by_infilling(tiny_t5_engine, tiny_models):
    text = "Paris is the [MASK] of France."
    result = await run_alone(tiny_t5_engine, FillMaskRequest(text, top_k=5, details=True))
    details = result.details  # the candidates' sentence log-likelihoods, softmaxed over the candidates
    assert list(details.id2label.values()) == [c.token for c in result.candidates]
    assert details.probabilities == [c.score for c in result.candidates]
    assert details.logits == sorted(details.logits, reverse=True)
    assert result.method == CAUSAL and result.model == str(tiny_models["gpt2"])
    assert 0 < len(result.candidates) <= 5
    scores = [c.score for c in result.candidates]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1 + 1e-6
    for candidate in result.candidates:  # whole words, put back into the sentence
        assert WORD.fullmatch(candidate.token), candidate
        assert candidate.sequence == f"Paris is the {candidate.token} of France."


async def test_model_missing_offline_names_the_setting(tiny_t5_engine):
    for _ in range(2):  # the failure is remembered, and reported the same way again
        with pytest.raises(ModelUnavailable) as error:
            await run_alone(tiny_t5_engine, ZeroShotRequest("text", ("a", "b")))
        message = str(error.value)
        assert "ZERO_SHOT_MODEL" in message and MISSING_MODEL_ID in message and "Hub is unreachable" in message
    # The other roles of the same engine keep working.
    result = await run_alone(tiny_t5_engine, ZeroShotRequest("text", ("a", "b"), method="embedding"))
    assert sum(result.scores) == pytest.approx(1.0, abs=1e-5)
    # A heartbeat's snapshot of the loaded models can arrive after the unit that loaded one (a race in
    # the worker, reported): the next heartbeat has it.
    for _ in range(100):
        status = tiny_t5_engine.status()
        roles = {role for model in status.models for role in model.roles}
        if "embedding" in roles:
            break
        await asyncio.sleep(0.1)
    assert status.worker_alive and "zero_shot" not in roles and "embedding" in roles


async def test_status_lists_the_loaded_models(tiny_engine, tiny_models):
    await run_alone(tiny_engine, SentimentRequest(("ok",)))
    status = tiny_engine.status()
    assert status.worker_alive and status.device == "cpu" and status.dtypes["sentiment"] in ("float32", "bfloat16")
    model = status.models[0]  # the most recently used first
    assert model.model_id == str(tiny_models["sentiment"]) and "sentiment" in model.roles and model.megabytes > 0
    assert status.tasks["sentiment"].served >= 1


def test_padded_chunks_groups_similar_lengths_under_both_caps():
    from bot.engine.passes import padded_chunks

    lengths = [5, 50, 6, 49, 7, 48, 8, 47, 9, 46, 300, 10]
    chunks = padded_chunks(lengths, max_tokens=150, max_rows=4)
    assert sorted(i for chunk in chunks for i in chunk) == list(range(len(lengths)))
    for chunk in chunks:
        assert len(chunk) <= 4
        assert len(chunk) * max(lengths[i] for i in chunk) <= 150 or len(chunk) == 1
    # Sorted first, so each pass holds neighbours in length; 9 and 10 are not padded to 46,
    # and 46..49 fit 4 rows but not the 150-token cap.
    assert [sorted(lengths[i] for i in chunk) for chunk in chunks] == [
        [5, 6, 7, 8],
        [9, 10],
        [46, 47, 48],
        [49, 50],
        [300],
    ]
