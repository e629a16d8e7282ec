"""/similar: the cosine similarity of two to ten texts, through the real worker on the tiny encoder."""

from __future__ import annotations

import pytest

from bot.commands import build_request, render_result
from bot.engine import InvalidInput
from bot.settings import Settings
from bot.specs.similarity import SimilarityRequest

from .test_moderation import MEMBER, MOD, REAL_WORKER_TIMEOUT, Borrowed, click, start  # noqa: F401

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


async def test_details_give_each_texts_tokens_norm_and_size(tiny_engine):
    result = await tiny_engine.submit(SimilarityRequest(TEXTS[:2], details=True), user="similar")
    plain = await tiny_engine.submit(SimilarityRequest(TEXTS[:2]), user="similar")
    assert sum(result.similarity, []) == pytest.approx(sum(plain.similarity, []), abs=1e-6)  # nothing else changes
    assert [d.dims for d in result.details] == [64, 64]  # the tiny encoder's hidden size
    assert all(d.tokens > 2 and d.norm > 0 for d in result.details)
    field = render_result(result).fields[1]
    assert "mean pooling" in field[0] and f"**#1** {result.details[0].tokens} tokens" in field[1]
    assert plain.details is None and len(render_result(plain).fields) == 1


# --- moderators: the stored tagged messages closest to a message ------------------------------------


async def tag(env, text: str, label: str) -> None:
    """A member's message, tagged `label` by a moderator through "Tag message" (which keeps its embedding)."""
    message = env.h.make_message(text, author_id=env.h.add_member(name="member"))
    await env.h.invoke_message_menu("Tag message", message, permissions=MOD)
    await click(env, "pick", [label])


@pytest.mark.parametrize("store_text", [False, True])
async def test_moderators_see_the_closest_tagged_messages(start, tiny_engine, store_text):
    env = await start(executor=Borrowed(tiny_engine), timeout=REAL_WORKER_TIMEOUT)
    await env.labels(("spam",), ("question",))
    await env.slash("labelset store_text", {"enabled": True})
    await tag(env, "Buy cheap watches now, click this link", "spam")
    await tag(env, "How do I reset my password?", "question")
    await tag(env, "How do I reset my password?", "spam")  # another message: a second neighbour with the same text
    assert all(t.text for t in await env.store.tags(env.guild_id))
    # Turned off since: the texts kept before stay in the database, but are no longer shown.
    await env.slash("labelset store_text", {"enabled": store_text})

    asked = env.h.make_message("How do I reset my password?", author_id=env.h.add_member(name="asker"))
    env.h.recorder.clear()
    await env.h.invoke_message_menu("Similar tagged messages", asked, permissions=MOD)
    shown = env.h.recorder.last("edit_original")
    assert env.h.recorder.records[0].ephemeral  # for the moderator only
    entries = [line for line in shown.embeds[0]["description"].splitlines() if not line.startswith("  ")]
    # The same text first (cosine 1.00), each with its label and a link to its message; the other text last.
    assert len(entries) == 3, entries
    assert all(entry.startswith("`██████████` 1.00") for entry in entries[:2]), entries
    assert not entries[2].startswith("`██████████` 1.00") and "**spam**" in entries[2]
    for t in await env.store.tags(env.guild_id):
        assert f"/{t.channel_id}/{t.message_id})" in shown.text()
    assert "3 tagged messages compared" in shown.embeds[0]["footer"]["text"]
    assert ("Buy cheap watches" in shown.text()) is store_text  # texts only while the server keeps them
    env.h.assert_no_errors()


async def test_the_closest_tagged_messages_are_for_moderators_with_stored_tags(start, tiny_engine):
    env = await start(executor=Borrowed(tiny_engine), timeout=REAL_WORKER_TIMEOUT)
    asked = env.h.make_message("anything", author_id=env.h.add_member(name="asker"))
    await env.h.invoke_message_menu("Similar tagged messages", asked, permissions=MEMBER, validate=False)
    reply = env.h.recorder.last("response")
    assert reply.ephemeral and "Not allowed" in reply.text() and "manage messages" in reply.text()
    await env.h.invoke_message_menu("Similar tagged messages", asked, permissions=MOD)
    reply = env.h.recorder.last("response")
    assert reply.ephemeral and "No tagged message of this server has a stored embedding yet" in reply.text()
