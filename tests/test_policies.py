"""Calibrated policies (/policy) through the real CommandTree, on an SQLite file and on PostgreSQL (the `backend`
fixture): a threshold derived from cross-validated precision, automatic timeout/delete/alert with audit reasons,
undoing a timeout, the dry run, and the per-channel cap on alerts during a raid (a clock the test moves).

The worker is tests/test_moderation.py's KeywordExecutor (a label scores high when its words are in the text),
taught to answer cross-validation as well: each example's held-out scores are its keyword scores."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import discord
import pytest

from bot.policies import (
    AlertLimiter,
    Calibration,
    calibrate,
    decide,
    evaluation,
    held_out_points,
    notable,
    recalibrated,
    replay,
)
from bot.specs.learned_labels import (
    EvaluateLabelsRequest,
    Example,
    LabelEvaluation,
    LabelMessageRequest,
    TrainedLabels,
    TrainLabelsRequest,
)
from bot.storage import EVERY_CHANNEL, Policy, Scored, Tag

from .test_moderation import (  # noqa: F401 (start: a fixture)
    MEMBER,
    MOD,
    Env,
    KeywordExecutor,
    Start,
    actions,
    click,
    start,
    suggest,
    trainings_done,
)

POWERS = discord.Permissions(view_channel=True, send_messages=True, manage_messages=True, moderate_members=True)


class CalibratingExecutor(KeywordExecutor):
    """KeywordExecutor that also cross-validates: an example's held-out scores are its keyword scores; a training
    learns nothing (keywords have no head), as the background retraining after an answer asks."""

    def label(self, r: Any) -> Any:
        if isinstance(r, TrainLabelsRequest):
            return TrainedLabels(None, {}, 0, 0, 0.0, "keywords")
        if not isinstance(r, EvaluateLabelsRequest):
            return super().label(r)
        held_out = []
        for example in r.examples:
            if example.text is None:
                held_out.append(None)
                continue
            result = super().label(LabelMessageRequest(example.text, r.labels, r.prompts))
            held_out.append([result.scores[result.labels.index(label)] for label in r.labels])
        n = len(r.labels)
        return LabelEvaluation(
            list(r.labels), [0] * n, None, None, [None] * n, [None] * n, [], 0, 0, "keywords", tuple(held_out)
        )


def policy(label: str, action: str, threshold: float, channel_id: int = EVERY_CHANNEL) -> Policy:
    return Policy(1, label, channel_id, action, 600 if action == "timeout" else None, 0.9, threshold, 0.9, 0.5, 2, 0.0)


def test_the_threshold_is_the_lowest_that_keeps_the_precision() -> None:
    # Six spam messages, one question that looks like spam, five plain questions; held-out scores of "spam".
    points = [(0.9, True)] * 4 + [(0.8, True), (0.8, False), (0.7, True)] + [(0.2, False)] * 5
    at_95 = calibrate(points, 0.95)
    assert (at_95.threshold, at_95.precision, at_95.recall, at_95.flagged) == (0.9, 1.0, 4 / 6, 4)
    at_80 = calibrate(points, 0.80)  # 0.7 keeps 6 of 7 right (86%): more recall at the asked precision
    assert (at_80.threshold, at_80.recall) == (0.7, 1.0) and at_80.precision == pytest.approx(6 / 7)
    assert "no threshold was right 100%" in calibrate([(0.9, True)] * 5 + [(0.95, False)], 1.0)
    assert "at least 5" in calibrate([(0.9, True)] * 4, 0.5)


def test_held_out_points_know_each_message_once() -> None:
    pairs = [
        (1, Example("spam", True)),
        (2, Example("question", True)),
        (3, Example("spam", False)),  # "Not this": not spam
        (4, Example("", True)),  # "None of these"
        (5, Example("question", False)),  # not a question, spam unknown: no point for spam
        (1, Example("offtopic", True)),  # a second tag of message 1: still one point
        (6, Example("spam", True)),  # skipped by the evaluation (no text nor vector)
    ]
    held_out = [[0.9, 0.1], [0.3, 0.7], [0.6, 0.4], [0.2, 0.2], [0.5, 0.5], [0.8, 0.2], None]
    assert held_out_points(pairs, held_out, ["Spam", "question"], "SPAM") == [
        (0.9, True),
        (0.3, False),
        (0.6, False),
        (0.2, False),
    ]


def test_the_strongest_matching_policy_acts_and_a_channel_policy_wins() -> None:
    policies = [policy("spam", "delete", 0.8), policy("spam", "log", 0.5, channel_id=7), policy("rude", "alert", 0.3)]
    assert decide(policies, {"spam": 0.85, "rude": 0.4}, watched_id=9)[0].action == "delete"
    assert decide(policies, {"spam": 0.85, "rude": 0.4}, watched_id=7)[0].action == "alert"  # the channel's: log
    assert decide(policies, {"spam": 0.7, "rude": 0.2}, watched_id=9) is None
    scored = [Scored(1, 9, 9, m, 5, {"spam": s, "rude": 0.0}, 0.0) for m, s in ((1, 0.9), (2, 0.7), (3, 0.81))]
    [(_, deleted), (_, logged), (_, alerted)] = replay(policies, scored)
    assert [m.message_id for m, _ in deleted] == [1, 3] and logged == [] and alerted == []


def test_a_recalibrated_policy_pauses_where_its_precision_fails_and_only_logs_then() -> None:
    before = policy("spam", "delete", 0.83)
    paused = recalibrated(before, "no threshold was right 90% of the time")
    assert paused.threshold == 0.83 and paused.action == "delete" and notable(before, paused)
    assert decide([paused], {"spam": 0.9}, watched_id=9)[0].action == "log"  # it still logs what it would do
    resumed = recalibrated(paused, Calibration(0.80, 0.92, 0.7, 10, 9))
    assert resumed.paused is None and resumed.threshold == 0.80 and notable(paused, resumed)
    assert notable(before, recalibrated(before, Calibration(0.78, 0.9, 0.8, 9, 9)))  # moved 0.05
    assert not notable(before, recalibrated(before, Calibration(0.79, 0.9, 0.8, 9, 9)))


def test_alerts_are_capped_per_channel_and_summarized_once_the_window_is_over() -> None:
    now = [0.0]
    limiter = AlertLimiter(per_window=2, window=60, clock=lambda: now[0])
    assert [limiter.admit(1, "spam → alert") for _ in range(4)] == [True, True, False, False]
    assert limiter.admit(2, "spam → alert")  # another channel has its own cap
    assert limiter.due() == []
    now[0] = 61
    [(channel, held)] = limiter.due()
    assert channel == 1 and held == {"spam → alert": 2} and limiter.due() == []
    assert limiter.admit(1, "spam → alert")


async def with_examples(start: Start) -> Env:
    """Labels spam and question, texts kept, and moderators' tags: six spam messages, one question that says
    "spam" (the keyword worker scores it as spam: a false flag) and five plain questions."""
    env = await start(executor=CalibratingExecutor())
    await env.labels(("spam",), ("question",))
    await env.slash("labelset store_text", {"enabled": True})
    texts = [(f"buy spam now {i}", "spam") for i in range(6)] + [("is spam allowed", "question")]
    texts += [(f"a question {i}", "question") for i in range(5)]
    now = time.time()
    tags = [
        Tag(env.guild_id, env.h.channel_id, 1000 + i, 5, label, None, "embedding", env.h.user_id, False, now, text)
        for i, (text, label) in enumerate(texts)
    ]
    await env.store.add_tags(tags)
    return env


def powers(env: Env) -> int:
    """The bot gets Manage Messages and Moderate Members; returns a moderator who has them too."""
    env.h.add_member(
        env.h.bot_id, "HarnessBot", roles=[env.h.add_role("bot", permissions=POWERS, position=3)], bot=True
    )
    return env.h.add_member(name="mod", roles=[env.h.add_role("mods", permissions=POWERS, position=2)])


async def test_a_timeout_policy_from_precision_acts_with_its_reason_and_can_be_undone(start: Start) -> None:
    env = await with_examples(start)
    log_channel = env.h.add_channel("mod-log")
    await env.slash("autotag enable", {"channel": env.h.channel_id, "threshold": 0.95, "log_channel": log_channel})
    options = {"label": "spam", "precision": 80, "action": "timeout"}

    await env.slash("policy set", options, permissions=MEMBER, validate=False)  # default_permissions overridden
    assert "Not allowed" in env.said() and "manage messages" in env.said()
    await env.slash("policy set", options)
    assert "I need the Moderate Members permission" in env.said()
    moderator = powers(env)
    await env.slash("policy set", options | {"precision": 95})
    assert "No policy for **spam** yet: no threshold was right 95%" in env.said()
    await env.slash("policy set", options)
    said = env.said()
    assert "Policy set" in said and "from score **0.83**" in said and "precision 86%, recall 100%" in said
    assert await env.bot.store.policies.policies(env.guild_id) != []
    env.h.app_command_errors.clear()  # the refusals above, each answered

    author = env.h.add_member(name="poster")
    message = await env.h.dispatch_message("spam now", author_id=author)
    timed_out = env.h.recorder.last("edit_member")
    assert timed_out.params["user_id"] == str(author) and timed_out.body["communication_disabled_until"]
    assert timed_out.reason == (
        "Automatic timeout by the policy for “spam” in every watched channel: score 0.83 ≥ 0.83 "
        f"(calibrated to 80% precision), message {message.id}"
    )
    # One log entry: the policy's, which also asks whether the label was right (the review queue leaves it to it).
    [entry] = [r for r in env.h.recorder.of_kind("send_message") if r.channel_id == log_channel]
    assert "Policy acted" in entry.text() and "10 minutes" in entry.text()
    assert actions(entry) == ["confirm", "reject", "untimeout", "relabel", "delete", "timeout"]

    await click(env, "untimeout", permissions=MEMBER)
    assert "Not allowed" in env.said() and len(env.h.recorder.of_kind("edit_member")) == 1
    env.h.app_command_errors.clear()
    await click(env, "untimeout", user_id=moderator, permissions=POWERS)
    undone = env.h.recorder.last("edit_member")
    assert undone.body["communication_disabled_until"] is None and undone.reason.startswith("Timeout removed by mod")
    assert "Timeout removed" in env.said()

    await env.h.dispatch_message("a question", author_id=author)  # below the threshold: nothing is done
    assert len(env.h.recorder.of_kind("edit_member")) == 2
    await env.slash("policy dryrun", {"days": 1})
    assert "would have acted on **1 message** by 1 author" in env.said() and "2 auto-tagged messages" in env.said()
    await env.slash("policy list")
    assert "**spam** in every watched channel → time the author out for 10 minutes" in env.said()
    await env.slash("policy remove", {"label": "spam"}, permissions=MEMBER, validate=False)
    assert "Not allowed" in env.said()
    env.h.app_command_errors.clear()
    await env.slash("policy remove", {"label": "spam"})
    assert "No policies" in env.said() and await env.bot.store.policies.policies(env.guild_id) == []
    env.h.assert_no_errors()


async def test_delete_and_alert_policies_and_a_raid_summarized(start: Start) -> None:
    env = await with_examples(start)
    log_channel = env.h.add_channel("mod-log")
    await env.slash("autotag enable", {"channel": env.h.channel_id, "threshold": 0.95, "log_channel": log_channel})
    powers(env)
    await env.slash("policy set", {"label": "spam", "precision": 80, "action": "delete", "channel": env.h.channel_id})
    await env.slash("policy set", {"label": "question", "precision": 80, "action": "alert"})
    assert "**question** in every watched channel → alert in the review queue from score **0.83**" in env.said()
    await env.slash("labelset threshold", {"value": 0.95, "review": 0.9})  # only the policies post
    now = [0.0]
    env.bot.log_limiter = AlertLimiter(per_window=2, clock=lambda: now[0])

    raid = [await env.h.dispatch_message(f"spam {i}", author_id=env.h.add_member()) for i in range(4)]
    deleted = env.h.recorder.of_kind("delete_message")
    assert [d.message_id for d in deleted] == [m.id for m in raid]  # every one deleted...
    assert all("Automatic delete by the policy for “spam”" in d.reason for d in deleted)
    entries = [r for r in env.h.recorder.of_kind("send_message") if r.channel_id == log_channel]
    assert len(entries) == 2 and all("Policy acted" in entry.text() for entry in entries)  # ...two entries only
    assert "can't be restored" in entries[0].text()

    now[0] = 61
    asked = await env.h.dispatch_message("a question", author_id=env.h.add_member())
    summary, alert = [r for r in env.h.recorder.of_kind("send_message") if r.channel_id == log_channel][2:]
    assert "2 more log entries" in summary.text() and "spam → delete ×2" in summary.text()
    assert "Alerted" in alert.text() and (await env.store.review(env.guild_id, asked.id)).label == "question"
    await click(env, "confirm", message_id=alert.message_id)  # an alert is answered like a review: an example
    assert any(m == asked.id and e.label == "question" for m, e in await env.store.examples(env.guild_id))
    env.h.assert_no_errors()


async def with_spam_alerts(start: Start) -> tuple[Env, int]:
    """A server with examples, auto-tagging its channel into a log channel, and an alert policy for spam."""
    env = await with_examples(start)
    log_channel = env.h.add_channel("mod-log")
    await env.slash("autotag enable", {"channel": env.h.channel_id, "threshold": 0.95, "log_channel": log_channel})
    await env.slash("policy set", {"label": "spam", "precision": 80, "action": "alert"})
    return env, log_channel


async def test_a_message_both_alerted_and_unsure_is_reviewed_once(start: Start) -> None:
    env, log_channel = await with_spam_alerts(start)
    message = await env.h.dispatch_message("spam now", author_id=env.h.add_member())  # 0.83: unsure and alerted
    [entry] = [r for r in env.h.recorder.of_kind("send_message") if r.channel_id == log_channel]
    assert "confirm" in str(entry.components) and (await env.store.review(env.guild_id, message.id)).label == "spam"
    env.h.assert_no_errors()


async def test_reviews_are_capped_in_a_raid_too(start: Start) -> None:
    env = await start()
    await env.labels(("spam",), ("question",))
    log_channel = env.h.add_channel("mod-log")
    await env.slash("autotag enable", {"channel": env.h.channel_id, "threshold": 0.95, "log_channel": log_channel})
    env.bot.log_limiter = AlertLimiter(per_window=1, clock=lambda: 0.0)
    _, second = [await env.h.dispatch_message("spam now", author_id=env.h.add_member()) for _ in range(2)]
    [entry] = [r for r in env.h.recorder.of_kind("send_message") if r.channel_id == log_channel]
    assert "Review this auto-tag" in entry.text() and await env.store.review(env.guild_id, second.id) is None
    assert env.bot.log_limiter.windows[env.h.channel_id].held == {"reviews": 1}


async def test_a_raid_summary_is_posted_when_the_window_ends_though_the_channel_goes_quiet(start: Start) -> None:
    env = await start()
    await env.labels(("spam",), ("question",))
    log_channel = env.h.add_channel("mod-log")
    await env.slash("autotag enable", {"channel": env.h.channel_id, "threshold": 0.5, "log_channel": log_channel})
    now, slept, window_over = [0.0], [], asyncio.Event()

    async def sleep(seconds: float) -> None:  # the limiter's clock moves when the test lets the window end
        slept.append(seconds)
        await window_over.wait()
        now[0] += seconds

    env.bot.log_limiter = AlertLimiter(per_window=1, clock=lambda: now[0], sleep=sleep)
    for i in range(3):
        now[0] = 10.0 * i
        await env.h.dispatch_message(f"spam now {i}", author_id=env.h.add_member())

    def entries() -> list[str]:
        return [r.text() for r in env.h.recorder.of_kind("send_message") if r.channel_id == log_channel]

    timers = env.bot.get_cog("AutoTag").summaries
    assert len(entries()) == 1 and list(timers) == [env.h.channel_id]  # one timer for the channel's two held
    await asyncio.sleep(0)
    assert slept == [50.0]  # held at 10 s: the window of 60 s started at 0 ends in 50
    window_over.set()
    await timers[env.h.channel_id]
    [_, summary] = entries()
    assert "2 more log entries about" in summary and "auto-tags ×2" in summary
    await asyncio.sleep(0)
    assert env.bot.log_limiter.due() == [] and timers[env.h.channel_id].done()
    await env.h.dispatch_message("spam again", author_id=env.h.add_member())  # a new window: posted, no summary
    assert len(entries()) == 3 and sum("more log entries" in entry for entry in entries()) == 1
    env.h.assert_no_errors()


async def test_a_retraining_moves_the_threshold_and_pauses_a_policy_it_cannot_keep(start: Start) -> None:
    env, log_channel = await with_spam_alerts(start)
    [before] = await env.bot.store.policies.policies(env.guild_id)
    assert before.threshold == pytest.approx(5 / 6) and before.paused is None

    def notices() -> list[str]:
        sent = [r.text() for r in env.h.recorder.of_kind("send_message") if r.channel_id == log_channel]
        return [text for text in sent if "Policies recalibrated" in text]

    async def answer(label: str, *texts: str) -> Policy:
        """Moderators tag messages (each answer retrains in the background); the policy after the retrainings."""
        for text in texts:
            await suggest(env, text)
            await click(env, "pick", [label])
        await trainings_done(env)
        [policy] = await env.bot.store.policies.policies(env.guild_id)
        return policy

    # Spam without the word: scored 0.5, right. 80% is now kept lower, at 0.5: more recall, told once.
    moved = await answer("spam", "free nitro 1", "free nitro 2", "free nitro 3")
    pairs, request = evaluation(
        await env.store.examples(env.guild_id), await env.store.config(env.guild_id), env.bot.settings.min_examples
    )
    result = CalibratingExecutor().label(request)
    expected = calibrate(held_out_points(pairs, result.held_out, result.labels, "spam"), 0.8)
    assert (moved.threshold, moved.precision, moved.recall) == (expected.threshold, expected.precision, 1.0)
    assert moved.threshold == pytest.approx(0.5) and moved.precision == pytest.approx(0.9) and moved.paused is None
    assert moved.action == "alert" and moved.target_precision == 0.8 and moved.set_at == before.set_at
    [notice] = notices()
    assert "**spam** in every watched channel → alert in the review queue from score **0.50** (was 0.83)" in notice
    assert "(asked 80%)" in notice  # the precision of the retraining that first moved it: after 1 to 3 answers

    # Questions that say "spam": false flags at 0.83. No threshold is right 80% of the time any more.
    paused = await answer("question", *(f"is spam allowed here {i}" for i in range(4)))
    assert paused.paused and "no threshold was right 80%" in paused.paused and paused.threshold == moved.threshold
    assert len(notices()) == 2 and "is **paused: log only** (it would alert in the review queue)" in notices()[1]
    await env.slash("policy list")
    assert "paused, log only" in env.said()
    await env.h.dispatch_message("spam now", author_id=env.h.add_member())  # 0.83: a paused alert only logs
    acted = [r.text() for r in env.h.recorder.of_kind("send_message") if "Policy acted" in r.text()]
    assert len(acted) == 1 and "Logged only." in acted[0] and "Alerted" not in acted[0]
    env.h.assert_no_errors()


async def test_scores_are_kept_without_text_and_purged_with_the_server(start: Start) -> None:
    env = await start()
    await env.labels(("spam",), ("question",))
    await env.slash("autotag enable", {"channel": env.h.channel_id})
    message = await env.h.dispatch_message("spam now", author_id=env.h.add_member())
    [scored] = await env.bot.store.policies.scored_since(env.guild_id, 0)
    assert scored.message_id == message.id and scored.scores == {"spam": pytest.approx(5 / 6), "question": 1 / 6}
    assert "spam now" not in str(await env.bot.store.database.fetch("SELECT * FROM scored_messages"))
    await env.bot.store.purge(env.guild_id)
    assert await env.bot.store.policies.scored_since(env.guild_id, 0) == []
