"""/ner: named entities through the real worker on a tiny BERT token classifier (random weights, so
the tags are meaningless; what is checked is what the pipeline does with them)."""

from __future__ import annotations

import pytest

from bot.commands import render_result
from bot.engine import ModelUnavailable
from bot.specs.ner import AGGREGATION, NerRequest

TEXT = "Ada Lovelace worked with Charles Babbage in London."


@pytest.mark.parametrize("aggregation", AGGREGATION.values())
async def test_every_aggregation_gives_entities_that_point_into_the_text(tiny_engine, aggregation):
    result = await tiny_engine.submit(NerRequest(TEXT, aggregation), user="ner")
    assert result.entities and result.aggregation == aggregation and not result.truncated
    for entity in result.entities:
        assert TEXT[entity.start : entity.end] == entity.text and 0 <= entity.score <= 1
        # none: each token's own B-/I- tag; the others group word pieces into typed entities
        assert entity.type.startswith(("B-", "I-")) == (aggregation == "none")
    if aggregation == "first":  # a whole word is one entity: it never starts or ends inside a word
        assert all(not TEXT[e.start - 1 : e.start].isalnum() for e in result.entities if e.start)
    reply = render_result(result)
    assert f"`{result.entities[0].type}`" in reply.text and f"aggregation {aggregation}" in reply.footer


async def test_details_give_each_tokens_tag_logit_and_softmax(tiny_engine):
    result = await tiny_engine.submit(NerRequest(TEXT, details=True), user="ner")
    tags = result.details
    assert tags[0].token == "[CLS]" and tags[-1].token == "[SEP]"
    assert all(
        0 < t.probability <= 1 and t.tag in {"O", *(f"{p}-{k}" for p in "BI" for k in ["PER", "LOC", "ORG", "MISC"])}
        for t in tags
    )
    assert "Each token's best tag" in render_result(result).fields[0][0]


async def test_a_text_longer_than_the_model_reads_is_cut_and_says_so(tiny_engine):
    long = " ".join(["x"] * 999)  # 999 tokens in 1997 characters: past the 512 the model reads
    result = await tiny_engine.submit(NerRequest(long, "none"), user="ner")
    assert result.truncated and max(e.end for e in result.entities) < len(long)
    assert "cut to what the model reads" in render_result(result).footer


async def test_without_a_ner_model_the_member_is_told_which_setting(tiny_llama_engine):
    with pytest.raises(ModelUnavailable, match="NER_MODEL"):
        await tiny_llama_engine.submit(NerRequest(TEXT), user="ner")
