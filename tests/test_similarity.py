"""/similar: the cosine similarity of two to ten texts, through the real worker on the tiny encoder."""

from __future__ import annotations

import pytest

from bot.commands import build_request, render_result
from bot.engine import InvalidInput
from bot.settings import Settings
from bot.specs.similarity import SimilarityRequest

TEXTS = ("The match went to extra time.", "The game needed extra time.", "Bake the bread for an hour.")


async def test_a_symmetric_matrix_with_ones_on_the_diagonal(tiny_engine):
    result = await tiny_engine.submit(SimilarityRequest((*TEXTS, TEXTS[0])), user="similar")
    m = result.similarity
    assert len(m) == 4 and all(len(row) == 4 for row in m)
    assert all(m[i][i] == pytest.approx(1.0, abs=1e-4) for i in range(4))
    assert all(m[i][j] == pytest.approx(m[j][i], abs=1e-5) for i in range(4) for j in range(4))
    assert m[0][3] == pytest.approx(1.0, abs=1e-4)  # the same text twice
    assert all(-1.0 <= value <= 1.0 for row in m for value in row)
    assert "Closest: **#1** and **#4** (1.00)" in render_result(result).text


async def test_each_request_gets_its_own_matrix_whatever_shares_its_pass(tiny_engine):
    alone = await tiny_engine.submit(SimilarityRequest(TEXTS[:2]), user="a")
    together = [tiny_engine.submit_job(SimilarityRequest(t), user=u) for t, u in ((TEXTS[:2], "a"), (TEXTS, "b"))]
    first, second = [await job.result() for job in together]
    assert sum(first.similarity, []) == pytest.approx(sum(alone.similarity, []), abs=1e-5)
    assert len(second.similarity) == 3


@pytest.mark.parametrize(
    ("texts", "message"),
    [("only one text", "That is 1 text; give me 2 to 10"), (" | ".join(["a"] * 11), "That is 11 texts")],
)
def test_too_few_or_too_many_texts_are_refused_with_how_to_write_them(texts, message):
    with pytest.raises(InvalidInput, match=message):
        build_request("similar", {"texts": texts}, Settings.from_env({}, profile="offline"))
