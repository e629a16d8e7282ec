"""The "Help me learn" questions through the real CommandTree and a real database (SQLite file and PostgreSQL,
the `backend` fixture): which auto-tagged messages the bot asks about, its daily cap on a moved clock, the
author rule, the server's off switch, and the answers, which only moderators may give and which become examples.

The stand-in worker (KeywordExecutor) scores a label 5 for each of its words in the text and 1 otherwise,
normalized: with three labels a message naming none scores 1/3 each (the bot can't tell them apart) and a
message naming one scores 5/7 for it."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from bot.specs.learned_labels import Example, LabelMessageRequest, LabelMessageResult
from bot.storage import DAY

from .test_moderation import MEMBER, VECTOR, Env, KeywordExecutor, Start, click, start  # noqa: F401 (fixture)

UNSURE = "nothing to see here"  # 1/3 each: the top two labels are tied


async def asking(start: Start, review: float = 0.8, **env_vars: Any) -> tuple[Env, int, list[float]]:
    """Three labels, auto-tag at 0.9, the review queue from `review` (above 5/7: only the bot's questions reach
    the log channel), a log channel; the asking cog's clock at 1 000 000, moved through the returned list."""
    env = await start(**env_vars)
    await env.labels(("spam",), ("question",), ("bug report",))
    await env.slash("labelset threshold", {"value": 0.9, "review": review})
    log_channel = env.h.add_channel("mod-log")
    await env.slash("autotag enable", {"channel": env.h.channel_id, "log_channel": log_channel})
    now = [1_000_000.0]
    env.bot.get_cog("Asking").clock = lambda: now[0]
    return env, log_channel, now


def questions(env: Env, log_channel: int) -> list[Any]:
    """The bot's "Help me learn" posts in the log channel, oldest first."""
    return [
        r for r in env.h.recorder.of_kind("send_message") if r.channel_id == log_channel and "Help me learn" in r.text()
    ]


async def test_the_bot_asks_about_what_it_is_unsure_of_and_the_answer_is_an_example(start: Start) -> None:
    env, log_channel, _ = await asking(start)
    author = env.h.add_member()
    await env.h.dispatch_message("buy spam now", author_id=author)  # 5/7 for spam: sure, so not asked
    assert questions(env, log_channel) == []
    unsure = await env.h.dispatch_message(UNSURE, author_id=author)
    [asked] = questions(env, log_channel)
    assert "I'm unsure: **spam** 0.33 and **question** 0.33 are too close to tell apart" in asked.text()
    assert f"by <@{author}>" in asked.text()

    await click(env, "confirm", permissions=MEMBER, message_id=asked.message_id)
    refusal = env.h.recorder.last("response")
    assert refusal.ephemeral and "Not allowed" in refusal.text() and "manage messages" in refusal.text()
    assert await env.store.examples(env.guild_id) == []

    await click(env, "relabel", ["question"], message_id=asked.message_id)
    assert dict(await env.store.examples(env.guild_id)) == {
        unsure.id: Example("question", True, None, VECTOR, "keywords")
    }
    assert "✅ tagged **question**" in env.h.recorder.last("edit_message").text()
    await env.slash("learn status")
    assert re.search(r"`question +█+░+` 1 examples · zero-shot until 5", env.said())
    env.h.assert_no_errors()


async def test_at_most_ask_per_day_in_any_24_hours(start: Start) -> None:
    env, log_channel, now = await asking(start, ASK_PER_DAY="2")
    first, second = env.h.add_member(), env.h.add_member()
    for author in (first, second, first):  # the third is over the day's two
        await env.h.dispatch_message(UNSURE, author_id=author)
        now[0] += 60
    assert len(questions(env, log_channel)) == 2
    now[0] = 1_000_000 + DAY - 1  # not yet a day after the first question
    await env.h.dispatch_message(UNSURE, author_id=second)
    assert len(questions(env, log_channel)) == 2
    now[0] = 1_000_000 + DAY + 30  # the first question is over a day old, the second is not
    await env.h.dispatch_message(UNSURE, author_id=first)
    assert len(questions(env, log_channel)) == 3
    await env.slash("learn status")
    assert "on · 2 of 2 questions in the last 24 hours" in env.said()
    env.h.assert_no_errors()


async def test_never_about_the_same_author_twice_in_a_row(start: Start) -> None:
    env, log_channel, _ = await asking(start)
    first, second = env.h.add_member(), env.h.add_member()
    for author in (first, first, second, second, first):
        await env.h.dispatch_message(UNSURE, author_id=author)
    assert [f"by <@{a}>" in q.text() for q, a in zip(questions(env, log_channel), (first, second, first))] == [True] * 3
    assert len(questions(env, log_channel)) == 3


async def test_a_server_that_turned_it_off_is_never_asked(start: Start) -> None:
    env, log_channel, _ = await asking(start)
    await env.slash("learn ask", {"enabled": False}, permissions=MEMBER, validate=False)  # an admin may show it
    assert "Not allowed" in env.h.recorder.last("response").text()
    assert (await env.store.config(env.guild_id)).ask  # the member changed nothing
    await env.slash("learn ask", {"enabled": False})
    assert "off for this server" in env.said()
    await env.h.dispatch_message(UNSURE, author_id=env.h.add_member())
    assert questions(env, log_channel) == []
    await env.slash("learn ask", {"enabled": True})
    await env.h.dispatch_message(UNSURE, author_id=env.h.add_member())
    assert len(questions(env, log_channel)) == 1


async def test_ask_per_day_zero_turns_it_off_on_the_bot(start: Start) -> None:
    env, log_channel, _ = await asking(start, ASK_PER_DAY="0")
    await env.h.dispatch_message(UNSURE, author_id=env.h.add_member())
    assert questions(env, log_channel) == []
    await env.slash("learn status")
    assert "its owner set ASK_PER_DAY=0" in env.said()


async def test_what_the_review_queue_takes_is_not_asked_again(start: Start) -> None:
    env, log_channel, _ = await asking(start, review=0.3)  # 1/3 reaches the review queue
    await env.h.dispatch_message(UNSURE, author_id=env.h.add_member())
    assert questions(env, log_channel) == []
    assert "Review this auto-tag" in env.h.recorder.last("send_message").text()
    assert await env.store.asked_since(env.guild_id, 0) == 0  # it used none of the day's questions


class Disagreeing(KeywordExecutor):
    """As KeywordExecutor, but zero-shot's top label is the second one where the text says "disagree"."""

    @staticmethod
    def label(r: LabelMessageRequest) -> LabelMessageResult:
        result = KeywordExecutor.label(r)
        return dataclasses.replace(result, zero_shot_label=result.labels[1]) if "disagree" in r.text else result


async def test_it_asks_where_learned_labels_and_zero_shot_disagree(start: Start) -> None:
    env, log_channel, _ = await asking(start, executor=Disagreeing())
    await env.h.dispatch_message("spam, I disagree", author_id=env.h.add_member())  # 5/7 for spam: a clear margin
    [asked] = questions(env, log_channel)
    assert "learned labels say **spam**, zero-shot says **question**" in asked.text()
    await env.h.dispatch_message("spam, agreed", author_id=env.h.add_member())
    assert len(questions(env, log_channel)) == 1


@pytest.mark.parametrize("variable", ["-1", "101", "five"])
def test_ask_per_day_is_validated(variable: str) -> None:
    from bot.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match="ASK_PER_DAY.*a whole number from 0 to 100"):
        Settings.from_env({"ASK_PER_DAY": variable}, profile="offline")
