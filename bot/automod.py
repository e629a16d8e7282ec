"""Discord's AutoMod without Discord: keyword rules proposed from moderators' confirmed tags (each label's most
distinctive words), within Discord's limits, and the replies. cogs/automod.py is the Discord side: AutoMod's
actions into the review queue, and the rules created once a moderator confirms them."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from .reply import Reply, clip, quote
from .storage import Review, Tag

# Discord's limits (developer docs, Auto Moderation → Trigger Metadata Field Limits).
MAX_KEYWORD_RULES = 6  # keyword rules per server
MAX_KEYWORDS = 1000  # keywords per rule
MAX_KEYWORD_CHARS = 60
MAX_REGEX_PATTERNS = 10  # per rule; not proposed: keywords read better and match whole words
MAX_REGEX_CHARS = 260
MAX_RULE_NAME_CHARS = 100
KEYWORDS_PER_LABEL = 20  # proposed per rule: a moderator reads them all before confirming
MIN_MESSAGES = 3  # a word must be in at least this many of the label's messages
MIN_RATIO = 3.0  # and that many times more frequent in them than in the other labels' messages
RULE_PREFIX = "Auto-tag: "
WORD = re.compile(r"[^\W\d_][\w'-]{2,}")  # three characters or more, starting with a letter


@dataclass(frozen=True)
class Proposal:
    label: str
    keywords: tuple[str, ...]
    messages: int  # the label's confirmed messages with text

    @property
    def rule_name(self) -> str:
        return clip(f"{RULE_PREFIX}{self.label}", MAX_RULE_NAME_CHARS)


def words(text: str) -> set[str]:
    return {w.casefold() for w in WORD.findall(text) if len(w) <= MAX_KEYWORD_CHARS}


def share(k: int, n: int) -> float:
    """The share of n messages with a word, smoothed: a word seen in none of few messages is not infinitely rare."""
    return (k + 1) / (n + 2)


def propose(tags: Sequence[Tag], labels: Sequence[str], rules_in_use: int) -> list[Proposal]:
    """One keyword rule per label, for as many labels as the server has keyword rules left (most confirmed tags
    first): each label's words found in at least MIN_MESSAGES of its confirmed messages and MIN_RATIO times more
    often there (smoothed share of messages) than in the other labels' messages."""
    texts: dict[str, list[set[str]]] = {label.casefold(): [] for label in labels}
    for tag in tags:
        if not tag.auto and tag.text and tag.label.casefold() in texts:
            texts[tag.label.casefold()].append(words(tag.text))
    counts = {label: Counter(w for message in messages for w in message) for label, messages in texts.items()}
    total = sum(len(messages) for messages in texts.values())
    proposals = []
    for label in labels:
        key = label.casefold()
        mine, n = counts[key], len(texts[key])
        others = sum((counts[other] for other in counts if other != key), Counter())
        rest = total - n
        ratios = {w: share(k, n) / share(others[w], rest) for w, k in mine.items() if k >= MIN_MESSAGES}
        ratios = {w: ratio for w, ratio in ratios.items() if ratio >= MIN_RATIO}
        ranked = sorted(ratios, key=lambda w: (-ratios[w], -mine[w], w))[: min(KEYWORDS_PER_LABEL, MAX_KEYWORDS)]
        if ranked:
            proposals.append(Proposal(label, tuple(ranked), n))
    proposals.sort(key=lambda p: -p.messages)
    return proposals[: max(MAX_KEYWORD_RULES - rules_in_use, 0)]


def render_proposals(proposals: Sequence[Proposal], rules_in_use: int, without_text: bool) -> Reply:
    lines = [
        f"**{p.rule_name}** ({p.messages} confirmed messages): {', '.join(f'`{w}`' for w in p.keywords)}"
        for p in proposals
    ]
    if not lines:
        why = (
            "this server keeps no message text (/labelset store_text), and keywords are read from it"
            if without_text
            else f"no word is in at least {MIN_MESSAGES} of a label's confirmed messages and "
            f"{MIN_RATIO:.0f}× rarer in the others'"
            if rules_in_use < MAX_KEYWORD_RULES
            else f"the server already has Discord's maximum of {MAX_KEYWORD_RULES} keyword rules"
        )
        return Reply("No AutoMod rules to propose", [f"Nothing to propose: {why}."], tone="info")
    lines += [
        "",
        "Each rule flags matching messages (Send Alert to the log channel, nothing blocked); "
        "AutoMod's alerts come back to the review queue. Nothing is created until you press Create.",
    ]
    return Reply(
        "Proposed AutoMod keyword rules",
        lines,
        footer=f"{rules_in_use} of Discord's {MAX_KEYWORD_RULES} keyword rules in use",
        tone="info",
    )


def render_created(created: Sequence[str], failed: Sequence[str]) -> Reply:
    lines = [f"Created **{name}**." for name in created] + [f"⚠️ {note}" for note in failed]
    return Reply(
        "AutoMod rules created" if created else "No AutoMod rule created", lines, tone="ok" if created else "error"
    )


ACTION_NAMES = {1: "blocked", 2: "flagged", 3: "timed out the author of", 4: "blocked the interactions of"}


def render_automod_review(review: Review, action_type: int, rule: str, keyword: str | None, text: str) -> Reply:
    r = review
    matched = f", keyword “{clip(keyword, 60)}”" if keyword else ""
    return Reply(
        "AutoMod acted: review it",
        [
            f"AutoMod {ACTION_NAMES.get(action_type, 'acted on')} a message by <@{r.author_id}> in <#{r.channel_id}> "
            f"(rule {clip(rule, 100)}{matched}). Is it **{r.label}**? score {r.score:.2f}",
            quote(text),
            "Confirm it, pick the right label, or say it is not this: each answer teaches the bot.",
        ],
        tone="busy",
    )
