"""Calibrated policies without Discord: the threshold a policy acts from, derived from the precision a moderator
asks for on the server's cross-validated examples; which policy acts on a message's scores (live and in a dry
run); the audit reason; the per-channel cap on alerts during a raid; and the replies. cogs/policies.py is the
Discord side."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta

from .moderation import duration_name, jump_url, label_prompt, training_examples
from .reply import Reply, clip
from .specs.learned_labels import EvaluateLabelsRequest, Example
from .storage import EVERY_CHANNEL, GuildConfig, Policy, Scored

# Weakest first: when several labels' policies match one message, the strongest action is taken.
ACTIONS = {
    "log": "log only",
    "alert": "alert in the review queue",
    "delete": "delete the message",
    "timeout": "time the author out",
}
MIN_POSITIVES = 5  # a precision measured on fewer of a label's examples says too little
ALERTS_PER_WINDOW = 5  # auto-tag log entries per watched channel per window; more are summarized (a raid)
ALERT_WINDOW = 60.0  # seconds
NOTABLE_SHIFT = 0.05  # a retraining that moves a threshold this much (or more) is told to the moderators


@dataclass(frozen=True)
class Calibration:
    threshold: float
    precision: float  # of the held-out examples at or above the threshold, the share that had the label
    recall: float  # of the label's held-out examples, the share at or above the threshold
    flagged: int  # held-out examples at or above the threshold
    positives: int  # the label's examples


def held_out_points(
    pairs: Sequence[tuple[int, Example]], held_out: Sequence[list[float] | None], labels: Sequence[str], label: str
) -> list[tuple[float, bool]]:
    """(held-out score of `label`, whether the message has it) for every message whose answer about `label`
    is known: tagged with it (True); tagged with another label, "None of these", or "Not this" for it (False).
    `held_out` is aligned with `pairs` (an evaluation of exactly these examples), each row in `labels`' order."""
    column = [name.casefold() for name in labels].index(label.casefold())
    has: dict[int, set[str]] = {}
    lacks: dict[int, set[str]] = {}
    score: dict[int, float] = {}
    for (message_id, example), scores in zip(pairs, held_out):
        if scores is None:
            continue
        score.setdefault(message_id, scores[column])  # one point per message, whichever example scored it
        if example.positive:
            has.setdefault(message_id, set()).add(example.label.casefold())
        else:
            lacks.setdefault(message_id, set()).add(example.label.casefold())
    key = label.casefold()
    points = []
    for message_id, value in score.items():
        tagged = has.get(message_id, set())
        if key in tagged:
            points.append((value, True))
        elif tagged or key in lacks.get(message_id, set()):  # another label or None of these (NONE_OF_THESE)
            points.append((value, False))
    return points


def calibrate(points: Sequence[tuple[float, bool]], target_precision: float) -> Calibration | str:
    """The lowest threshold (the most recall) whose held-out precision is at least `target_precision`; or why
    there is none, in words for the moderator."""
    positives = sum(truth for _, truth in points)
    if positives < MIN_POSITIVES:
        return (
            f"it has {positives} cross-validated examples; a precision needs at least {MIN_POSITIVES}. "
            "Tag more messages with it (or answer reviews), then set the policy again"
        )
    ranked = sorted(points, key=lambda point: -point[0])
    best: Calibration | None = None
    right = 0
    for flagged, (score, truth) in enumerate(ranked, 1):
        right += truth
        if flagged < len(ranked) and ranked[flagged][0] == score:
            continue  # a threshold takes every example of the same score
        if right / flagged >= target_precision:
            best = Calibration(score, right / flagged, right / positives, flagged, positives)
    if best is None:
        return (
            f"no threshold was right {100 * target_precision:.0f}% of the time on your examples. "
            "Ask for a lower precision, or add examples where the bot goes wrong"
        )
    return best


def evaluation(
    pairs: Sequence[tuple[int, Example]], config: GuildConfig, min_examples: int
) -> tuple[list[tuple[int, Example]], EvaluateLabelsRequest]:
    """The cross-validation thresholds are derived from: the examples of the server's labels (and "None of
    these"), one example per pair so that the evaluation's held_out lines up with the pairs returned."""
    kept = [(m, e) for m, e in pairs if config.label(e.label) or not e.label]
    request = EvaluateLabelsRequest(
        tuple(label.name for label in config.labels),
        tuple(label_prompt(label) for label in config.labels),
        training_examples(kept, config),
        min_examples,
    )
    return kept, request


def recalibrated(policy: Policy, calibration: Calibration | str) -> Policy:
    """The policy at its asked precision on new examples: its new threshold, or, where the precision can't be
    met, its old one kept but paused (log only) with why."""
    if isinstance(calibration, str):
        return replace(policy, paused=calibration)
    c = calibration
    return replace(policy, threshold=c.threshold, precision=c.precision, recall=c.recall, paused=None)


def notable(before: Policy, after: Policy) -> bool:
    """Whether moderators are told of a recalibration: paused or resumed, or the threshold moved NOTABLE_SHIFT."""
    moved = round(abs(after.threshold - before.threshold), 6)  # 0.83 - 0.78 is 0.04999… in floats
    return (before.paused is None) != (after.paused is None) or moved >= NOTABLE_SHIFT


def acting(policy: Policy) -> Policy:
    """What the policy does now: a paused policy only logs."""
    return replace(policy, action="log", timeout_seconds=None) if policy.paused else policy


def policy_for(policies: Sequence[Policy], label: str, watched_id: int) -> Policy | None:
    """A channel's own policy for a label, else the server's."""
    matching = [p for p in policies if p.label.casefold() == label.casefold()]
    own = next((p for p in matching if p.channel_id == watched_id), None)
    return own or next((p for p in matching if p.channel_id == EVERY_CHANNEL), None)


def decide(policies: Sequence[Policy], scores: dict[str, float], watched_id: int) -> tuple[Policy, float] | None:
    """The policy that acts on a message's scores (as it acts now: a paused one logs): of those whose threshold a
    label reached, the strongest action (then the higher score); None when none did."""
    acts = [acting(p) for p in policies]
    reached = [
        (policy, score)
        for label, score in scores.items()
        if (policy := policy_for(acts, label, watched_id)) is not None and score >= policy.threshold
    ]
    strength = list(ACTIONS)
    return max(reached, key=lambda pair: (strength.index(pair[0].action), pair[1]), default=None)


def asks_moderators(policy: Policy) -> bool:
    """Whether the policy's log entry is a review of its label (alert, delete, timeout): then the ordinary
    review queue leaves the message to it."""
    return policy.action != "log"


def replay(policies: Sequence[Policy], scored: Sequence[Scored]) -> list[tuple[Policy, list[tuple[Scored, float]]]]:
    """The dry run: for each policy, the messages it would have acted on."""
    acted: dict[tuple[str, int], list[tuple[Scored, float]]] = {}
    for message in scored:
        decided = decide(policies, message.scores, message.watched_id)
        if decided is not None:
            policy, score = decided
            acted.setdefault((policy.label.casefold(), policy.channel_id), []).append((message, score))
    return [(p, acted.get((p.label.casefold(), p.channel_id), [])) for p in policies]


def timeout_of(policy: Policy) -> timedelta:
    return timedelta(seconds=policy.timeout_seconds or 0)


def action_name(policy: Policy) -> str:
    if policy.action == "timeout":
        return f"time the author out for {duration_name(timeout_of(policy))}"
    return ACTIONS[policy.action]


def where(policy: Policy) -> str:
    return "every watched channel" if policy.channel_id == EVERY_CHANNEL else f"<#{policy.channel_id}>"


def describe(policy: Policy) -> str:
    """A policy in one line, as moderators set it."""
    p = policy
    line = (
        f"**{p.label}** in {where(p)} → {action_name(p)} from score **{p.threshold:.2f}** "
        f"(asked: right {100 * p.target_precision:.0f}% of the time; on your examples precision "
        f"{100 * p.precision:.0f}%, recall {100 * p.recall:.0f}%)"
    )
    return line + (" — **paused, log only**: the asked precision can't be met on the new examples" if p.paused else "")


def audit_reason(policy: Policy, score: float, message_id: int) -> str:
    """What Discord's audit log shows for an automatic action: label, score and policy."""
    p = policy
    scope = "every watched channel" if p.channel_id == EVERY_CHANNEL else f"channel {p.channel_id}"
    return clip(
        f"Automatic {p.action} by the policy for “{p.label}” in {scope}: score {score:.2f} ≥ {p.threshold:.2f} "
        f"(calibrated to {100 * p.target_precision:.0f}% precision), message {message_id}",
        512,  # Discord's audit-log reason limit
    )


@dataclass
class _Window:
    start: float
    posted: int = 0
    held: Counter[str] = field(default_factory=Counter)


class AlertLimiter:
    """At most `per_window` log entries per watched channel per `window` seconds; the rest are counted and
    summarized once the window is over (a raid posts one summary instead of a flood). `sleep` waits in
    `clock`'s seconds: the summary's timer (cogs/autotag.py) sleeps through it."""

    def __init__(
        self,
        per_window: int = ALERTS_PER_WINDOW,
        window: float = ALERT_WINDOW,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.per_window, self.window, self.clock, self.sleep = per_window, window, clock, sleep
        self.windows: dict[int, _Window] = {}

    def admit(self, channel_id: int, what: str) -> bool:
        """Whether an entry about `channel_id` may be posted now; if not, `what` is counted for the summary."""
        now = self.clock()
        current = self.windows.get(channel_id)
        if current is None or now - current.start >= self.window:
            if current is not None and current.held:
                return self._held(current, what)  # the summary is due: it goes out first, with this one in it
            current = self.windows[channel_id] = _Window(now)
        if current.posted < self.per_window:
            current.posted += 1
            return True
        return self._held(current, what)

    @staticmethod
    def _held(window: _Window, what: str) -> bool:
        window.held[what] += 1
        return False

    def ends_in(self, channel_id: int) -> float:
        """Seconds until the window of `channel_id` is over (0 when it is, or there is none)."""
        current = self.windows.get(channel_id)
        return 0.0 if current is None else max(0.0, current.start + self.window - self.clock())

    def due(self, channels: Collection[int] | None = None) -> list[tuple[int, Counter[str]]]:
        """The summaries of windows that are over (of `channels`, default all), each once: (channel, entries
        held back by kind)."""
        now = self.clock()
        out = [
            (channel_id, window.held)
            for channel_id, window in self.windows.items()
            if window.held and now - window.start >= self.window and (channels is None or channel_id in channels)
        ]
        for channel_id, _ in out:
            self.windows[channel_id] = _Window(now)
        return out


# --- replies ---------------------------------------------------------------------------------


def render_policies(policies: Sequence[Policy], title: str = "Policies") -> Reply:
    lines = [describe(p) for p in policies] or ["No policies. Set one with /policy set."]
    return Reply(
        title,
        lines,
        footer="thresholds are derived from cross-validated precision on this server's examples",
        tone="info",
    )


def render_recalibrated(changes: Sequence[tuple[Policy, Policy]]) -> Reply:
    """The policies a retraining moved notably (before, after)."""
    lines = []
    for before, after in changes:
        name = f"**{after.label}** in {where(after)}"
        if after.paused:
            lines.append(
                f"{name} is **paused: log only** (it would {action_name(after)}): {after.paused}. "
                "It acts again once a retraining meets the precision; or set it again with a lower one."
            )
        else:
            again = "acts again: " if before.paused else ""
            lines.append(
                f"{name} → {again}{action_name(after)} from score **{after.threshold:.2f}** "
                f"(was {before.threshold:.2f}); "
                f"on your examples precision {100 * after.precision:.0f}% (asked {100 * after.target_precision:.0f}%), "
                f"recall {100 * after.recall:.0f}%."
            )
    return Reply(
        "Policies recalibrated",
        lines,
        footer="retrained on new examples: thresholds follow each policy's asked precision",
        tone="info",
    )


def render_policy_set(policy: Policy, calibration: Calibration) -> Reply:
    c = calibration
    return Reply(
        "Policy set",
        [
            describe(policy),
            f"On your {c.positives} examples of **{policy.label}**, held out in turn: {c.flagged} scored "
            f"{c.threshold:.2f} or more, {100 * c.precision:.0f}% of them rightly; "
            f"{100 * c.recall:.0f}% of the label's examples reach it (the rest are left to moderators).",
            "Try it on the last days of messages first: /policy dryrun.",
        ],
        tone="ok",
    )


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"


def render_dry_run(results: Sequence[tuple[Policy, list[tuple[Scored, float]]]], scored: int, days: int) -> Reply:
    lines = []
    for policy, acted in results:
        authors = plural(len({message.author_id for message, _ in acted}), "author")
        line = f"{describe(policy)}\n→ would have acted on **{plural(len(acted), 'message')}** by {authors}"
        shown = [
            f"[{score:.2f}]({jump_url(m.guild_id, m.channel_id, m.message_id)})"
            for m, score in sorted(acted, key=lambda pair: -pair[1])[:5]
        ]
        lines.append(line + (f": {', '.join(shown)}" if shown else ""))
    return Reply(
        "Policies, dry run",
        lines or ["No policies to replay. Set one with /policy set."],
        footer=f"{scored} auto-tagged messages of the last {days} days replayed; nothing was done",
        tone="info",
    )


def render_acted(policy: Policy, score: float, scored: Scored, done: str) -> Reply:
    m = scored
    return Reply(
        "Policy acted",
        [
            f"**{policy.label}** {score:.2f} · [message]({jump_url(m.guild_id, m.channel_id, m.message_id)}) "
            f"in <#{m.channel_id}> by <@{m.author_id}>",
            done,
        ],
        footer=f"policy: {clip(describe(policy).replace('**', ''), 300)}",
        tone="busy",
    )


def render_summary(channel_id: int, held: Counter[str]) -> Reply:
    total = sum(held.values())
    kinds = ", ".join(f"{what} ×{n}" for what, n in held.most_common())
    return Reply(
        "Many log entries at once",
        [
            f"{total} more log entries about <#{channel_id}> were held back so the log is not flooded "
            f"(at most {ALERTS_PER_WINDOW} a minute per watched channel): {kinds}.",
            "Policies' deletes and timeouts were still done, each in the audit log; the held-back reviews and "
            "alerts were not queued.",
        ],
        tone="error",
    )


ALERTED_NOTE = "Alerted: confirm the label, pick another, or say it is not this."
DELETED_NOTE = "Deleted automatically. A deleted message can't be restored; the reason is in the audit log."
