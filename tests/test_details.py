"""`details` on /sentiment, /fill and /label: the pipeline's tokens, raw logits, softmax and id2label for the
user's own sentence, through the real CommandTree and the real worker (tiny DistilBert classifier, RoBERTa
masked LM, BART NLI, BERT encoder)."""

from __future__ import annotations

import math
import re

import pytest
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


def shown_rows(embed: dict) -> tuple[str, list[tuple[int, str, float, float]], str]:
    """(tokens field, [(id, label, logit, probability)], what the logits are) of a details answer."""
    tokens, classes = [f["value"] for f in embed["fields"]]
    rows = [
        (int(i), label, float(logit), float(p))
        for i, label, logit, p in re.findall(r"`(\d+)` (.+?): logit ([+-][\d.]+) → ([\d.]+)", classes)
    ]
    return tokens, rows, classes.split("\nlogits: ", 1)[1]


def softmax(logits: list[float]) -> list[float]:
    total = sum(math.exp(x) for x in logits)
    return [math.exp(x) / total for x in logits]


def ranked_scores(embed: dict) -> list[str]:
    return re.findall(r"[█░]{10}` ([\d.]+)", embed["description"])


async def test_label_details_nli(env, tiny_models):
    bot, h = env
    text, labels = "Our keeper saved two penalties.", ["sports", "politics", "cooking"]
    await h.invoke_slash("label", {"text": text, "labels": ", ".join(labels), "method": "nli", "details": True})
    embed = assert_answered(h)
    assert_within_limits(embed)
    tokens, rows, logits_are = shown_rows(embed)
    assert [(i, label) for i, label, _, _ in rows] == list(enumerate(labels))  # one logit per label, in the asked order
    shown = [p for *_, p in rows]
    for p, expected in zip(shown, softmax([logit for _, _, logit, _ in rows])):  # softmax across the labels
        assert abs(p - expected) < 2e-3
    assert ranked_scores(embed) == [f"{p:.2f}" for p in sorted(shown, reverse=True)]
    best = labels[max(range(len(labels)), key=shown.__getitem__)]
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["nli"])
    assert tokens.split(" │ ") == tokenizer.convert_ids_to_tokens(
        tokenizer(text, f"This example is {best}.")["input_ids"]
    )
    assert "entailment logit" in logits_are and "2 entailment" in logits_are and "This example is {}." in logits_are


async def test_label_details_nli_multi_label(env):
    bot, h = env
    await h.invoke_slash(
        "label",
        {
            "text": "The budget vote failed.",
            "labels": "politics, weather",
            "method": "nli",
            "multi_label": True,
            "details": True,
        },
    )
    embed = assert_answered(h)
    _, rows, logits_are = shown_rows(embed)
    contradiction = [float(x) for x in re.search(r"contradiction logits: ([^)]*)\)", logits_are)[1].split()]
    for (_, _, entail, p), contra in zip(rows, contradiction):  # each label alone: entailment vs contradiction
        assert abs(p - softmax([contra, entail])[1]) < 2e-3
    assert ranked_scores(embed) == [f"{p:.2f}" for p in sorted((p for *_, p in rows), reverse=True)]
    assert "not a softmax across labels" in logits_are


@pytest.mark.parametrize("multi_label", [False, True])
async def test_label_details_embedding(env, tiny_models, multi_label):
    bot, h = env
    text = "I cooked ramen for dinner."
    await h.invoke_slash(
        "label",
        {"text": text, "labels": "food, travel", "method": "embedding", "multi_label": multi_label, "details": True},
    )
    embed = assert_answered(h)
    tokens, rows, logits_are = shown_rows(embed)
    assert tokens.split(" │ ") == AutoTokenizer.from_pretrained(tiny_models["embedding"]).tokenize(
        text, add_special_tokens=True
    )
    assert [label for _, label, _, _ in rows] == ["food", "travel"] and "cosine similarity" in logits_are
    logits, shown = [logit for _, _, logit, _ in rows], [p for *_, p in rows]
    # multi_label: each score is the cosine (the logit / 20) clipped to [0, 1]; else the softmax of the scaled cosines
    expected = [min(1.0, max(0.0, x / 20)) for x in logits] if multi_label else softmax(logits)
    for p, e in zip(shown, expected):
        assert abs(p - e) < 2e-3
    assert ranked_scores(embed) == [f"{p:.2f}" for p in sorted(shown, reverse=True)]


async def test_label_without_details_has_no_fields(env):
    bot, h = env
    await h.invoke_slash("label", {"text": "great goal", "labels": "sports, politics"})
    assert not assert_answered(h).get("fields")


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
    assert tokens.split(" │ ") == tokenizer.convert_ids_to_tokens(
        tokenizer("Paris is the <mask> of France.")["input_ids"]
    )
    rows = re.findall(r"`(\d+)` (.+): logit ([+-][\d.]+) → ([\d.]+)", classes)
    assert len(rows) == 3
    for token_id, token, _, _ in rows:  # each row is a vocabulary id and its token
        assert tokenizer.decode([int(token_id)]) == token
    shown = [float(p) for *_, p in rows]
    candidates = re.findall(r"`[█░]{10}` ([\d.]+)", embed["description"])
    assert shown == sorted(shown, reverse=True) and [f"{p:.2f}" for p in shown] == candidates
