"""Discord's AutoMod through the real CommandTree and gateway parser, on an SQLite file and on PostgreSQL: an
AUTO_MODERATION_ACTION_EXECUTION payload enters the review queue, and keyword rules proposed from confirmed tags
are created (the HTTP call recorded) only after a member with Manage Server presses Create."""

from __future__ import annotations

import time

import discord

from bot.automod import MAX_KEYWORD_CHARS, propose
from bot.storage import Tag

from .test_moderation import ADMIN, MOD, Env, Start, click, start  # noqa: F401 (a fixture)

SPAM = ["free nitro giveaway click here", "click for free nitro", "nitro giveaway, free, click now", "free nitro"]
QUESTIONS = ["how do I reset my password", "where do I reset the app", "how do I log in", "how to reset it"]


def tags(guild_id: int, texts: dict[str, list[str]], moderator: int = 42) -> list[Tag]:
    now = time.time()
    return [
        Tag(guild_id, 10, 1000 + i, 5, label, None, "embedding", moderator, False, now, text)
        for i, (label, text) in enumerate((label, text) for label, group in texts.items() for text in group)
    ]


def test_keywords_are_each_labels_distinctive_words_within_discords_limits() -> None:
    long_word = "a" * (MAX_KEYWORD_CHARS + 1)
    confirmed = tags(1, {"spam": [*SPAM, f"{long_word} free"] * 1, "question": QUESTIONS})
    confirmed.append(Tag(1, 10, 9, 5, "spam", 0.9, "embedding", 7, True, 0.0, "free free free"))  # an auto-tag
    [spam, question] = propose(confirmed, ["spam", "question"], rules_in_use=0)
    assert (spam.label, spam.messages, spam.rule_name) == ("spam", 5, "Auto-tag: spam")
    # "giveaway" is in two spam messages only: too few
    assert set(spam.keywords) == {"free", "nitro", "click"} and long_word not in spam.keywords
    assert set(question.keywords) == {"how", "reset"}  # "do" is too short; "I" too
    assert [p.label for p in propose(confirmed, ["spam", "question"], rules_in_use=5)] == ["spam"]
    assert propose(confirmed, ["spam", "question"], rules_in_use=6) == []


async def watched(start: Start) -> tuple[Env, int]:
    env = await start()
    await env.labels(("spam", "🚫"), ("question",))
    await env.slash("labelset store_text", {"enabled": True})
    log_channel = env.h.add_channel("mod-log")
    await env.slash("autotag enable", {"channel": env.h.channel_id, "log_channel": log_channel})
    return env, log_channel


async def test_automods_actions_enter_the_review_queue(start: Start) -> None:
    env, log_channel = await watched(start)
    rule = env.h.add_automod_rule("No spam", ["spam"])
    author = env.h.add_member(name="spammer")
    for action_type in (1, 2):  # one rule blocks and alerts: AutoMod sends an event for each action
        await env.h.dispatch_automod_action(
            "free spam here", user_id=author, rule_id=rule, keyword="spam", action_type=action_type
        )
    [entry] = [r for r in env.h.recorder.of_kind("send_message") if r.channel_id == log_channel]
    assert "AutoMod acted: review it" in entry.text() and "AutoMod blocked a message by" in entry.text()
    assert "(rule No spam, keyword “spam”). Is it **spam**? score 0.83" in entry.text()
    await click(env, "confirm", message_id=entry.message_id)
    [(_, example)] = await env.store.examples(env.guild_id)
    assert (example.label, example.positive, example.text) == ("spam", True, "free spam here")

    await env.h.dispatch_automod_action("", user_id=author, rule_id=78, keyword="x")  # no text: nothing to learn
    assert len([r for r in env.h.recorder.of_kind("send_message") if r.channel_id == log_channel]) == 1
    env.h.assert_no_errors()


async def test_keyword_rules_are_proposed_and_created_only_on_confirmation(start: Start) -> None:
    env, log_channel = await watched(start)
    await env.store.add_tags(tags(env.guild_id, {"spam": SPAM, "question": QUESTIONS}, env.h.user_id))
    await env.slash("automod propose")
    assert "I need the Manage Server permission" in env.said()
    powers = discord.Permissions(view_channel=True, send_messages=True, manage_guild=True)
    env.h.add_member(
        env.h.bot_id, "HarnessBot", roles=[env.h.add_role("bot", permissions=powers, position=3)], bot=True
    )
    for i in range(5):  # the server has five keyword rules already: room for one
        env.h.add_automod_rule(f"rule {i}", ["x"])

    await env.slash("automod propose")
    said = env.said()
    assert "Proposed AutoMod keyword rules" in said and "**Auto-tag: spam**" in said and "`nitro`" in said
    assert "Auto-tag: question" not in said and "5 of Discord's 6 keyword rules in use" in said
    assert env.h.recorder.of_kind("create_automod_rule") == []

    await env.h.invoke_component("automod:create", permissions=MOD)  # Manage Messages is not Manage Server
    assert "Not allowed" in env.said() and "manage guild" in env.said()
    assert env.h.recorder.of_kind("create_automod_rule") == []
    await env.h.invoke_component("automod:create", permissions=ADMIN)
    [created] = env.h.recorder.of_kind("create_automod_rule")
    body = created.body
    assert body["name"] == "Auto-tag: spam" and body["trigger_type"] == 1 and body["event_type"] == 1
    assert set(body["trigger_metadata"]["keyword_filter"]) == {"free", "nitro", "click"}
    assert body["actions"] == [{"type": 2, "metadata": {"channel_id": str(log_channel)}}]  # flag, never block
    assert "confirmed by" in created.reason and "AutoMod rules created" in env.said()
