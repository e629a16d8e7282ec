"""`details` on /sentiment: the pipeline's tokens, raw logits, softmax and id2label for the user's own
sentence, through the real CommandTree and the real worker (tiny DistilBert classifier)."""
from __future__ import annotations

import math
import re

from transformers import AutoConfig, AutoTokenizer

from .test_commands_discord import assert_answered, assert_within_limits, engine, env, make_bot, settings  # noqa: F401


async def test_sentiment_details_show_tokens_logits_softmax_and_labels(env, tiny_models):
    bot, h = env
    text = "I love this bot"
    await h.invoke_slash("sentiment", {"text": text, "details": True})
    embed = assert_answered(h)
    assert_within_limits(embed)
    tokens, classes = [f["value"] for f in embed["fields"]]
    expected = AutoTokenizer.from_pretrained(tiny_models["sentiment"]).tokenize(text, add_special_tokens=True)
    assert tokens.split(" │ ") == expected  # the tokenizer's own split, [CLS] and [SEP] included
    id2label = AutoConfig.from_pretrained(tiny_models["sentiment"]).id2label
    rows = re.findall(r"`(\d+)` (\S+): logit ([+-][\d.]+) → ([\d.]+)", classes)
    assert [(int(i), label) for i, label, _, _ in rows] == sorted(id2label.items())
    logits = [float(logit) for _, _, logit, _ in rows]
    total = sum(math.exp(x) for x in logits)
    for (_, _, _, shown), logit in zip(rows, logits):  # the shown probabilities are the softmax of the shown logits
        assert abs(float(shown) - math.exp(logit) / total) < 2e-3
    assert "classifier head" in classes


async def test_sentiment_without_details_has_no_fields(env):
    bot, h = env
    await h.invoke_slash("sentiment", {"text": "I love this bot"})
    assert not assert_answered(h).get("fields")


async def test_fill_details_show_the_logits_at_the_mask(env, tiny_models):
    bot, h = env
    await h.invoke_slash("fill", {"text": "Paris is the <mask> of France.", "top_k": 3, "details": True})
    embed = assert_answered(h)
    tokens, classes = [f["value"] for f in embed["fields"]]
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["fill_mask"])
    assert tokens.split(" │ ") == tokenizer.convert_ids_to_tokens(tokenizer("Paris is the <mask> of France.")["input_ids"])
    rows = re.findall(r"`(\d+)` (.+): logit ([+-][\d.]+) → ([\d.]+)", classes)
    assert len(rows) == 3
    for token_id, token, _, _ in rows:  # each row is a vocabulary id and its token
        assert tokenizer.decode([int(token_id)]) == token
    shown = [float(p) for *_, p in rows]
    candidates = re.findall(r"`[█░]{10}` ([\d.]+)", embed["description"])
    assert shown == sorted(shown, reverse=True) and [f"{p:.2f}" for p in shown] == candidates
