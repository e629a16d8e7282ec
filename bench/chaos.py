"""The chaos run: a busy server's mixed traffic through the real bot and its CommandTree, while faults
strike at random (bench/faults.py): the worker killed or stalled, the database locked by another
process, the generation server killed and restarted, Discord's HTTP calls failing.

    python -m bench.chaos [--short | --long] [--seed N] [--no-server]

Tiny models (tests/model_factory.py) in the real worker process, a real SQLite file, the real
`transformers serve` on 127.0.0.1 for chat (not in --short), and the fake Discord of
tests/discord_harness.py: real Interaction objects from raw payloads, the HTTP layer a recorder.
It ends with a report; --long also writes bench/CHAOS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any

import discord

from bot.client import HFBot
from bot.embeds import COLOURS
from bot.engine import Engine
from bot.settings import Settings
from bot.specs.generation import WRITING
from tests.discord_harness import FakeDiscord, Record
from tests.model_factory import build_all
from tests.openai_server import Server

from .faults import SERVER_ERROR, UNKNOWN_INTERACTION, Faults

log = logging.getLogger("bench.chaos")

MOD = discord.Permissions(view_channel=True, send_messages=True, manage_messages=True, read_message_history=True)
TOLD = {COLOURS["busy"].value, COLOURS["error"].value}  # a refusal or an error: the member knows what happened
REQUEST_TIMEOUT = 60.0  # REQUEST_TIMEOUT: no request waits longer for its answer
STUCK_AFTER = REQUEST_TIMEOUT + 30.0  # seconds without a final answer: stuck
EXPIRED_AGE = 16 * 60.0  # an interaction older than Discord's 15 minutes
LABELS = (("question", "❓"), ("bug", "🐛"), ("spam", "🚫"), ("praise", None))
TAGGED = re.compile(r"Tagged https://discord\.com/channels/\d+/\d+/(\d+) as \*\*(.+?)\*\*")
AUTO_TAGGED = re.compile(r"\*\*(.+?)\*\* [\d.]+")
AUTO_TAGGED_MESSAGE = re.compile(r"\(https://discord\.com/channels/\d+/\d+/(\d+)\)")
# Members' texts; some try to ping, which the bot must never do.
TEXTS = (
    "How do I reset my password? The login page keeps failing",
    "The app crashes when I open settings @everyone",
    "Buy cheap followers now!!! <@&{role}> click here",
    "Thanks <@{user}>, the new release is great",
    "What a goal in the last minute! @here",
    "Is the server down again? It keeps timing out",
)


@dataclass(frozen=True)
class Profile:
    traffic_seconds: float  # at least: the traffic goes on until a whole round of faults is over
    requests_per_second: float
    fault_gap: tuple[float, float]  # seconds between faults
    server: bool  # a real `transformers serve` for chat, killed and restarted among the faults


PROFILES = {
    "short": Profile(20.0, 3.0, (1.0, 3.0), server=False),
    "default": Profile(150.0, 3.0, (3.0, 10.0), server=True),
    "long": Profile(600.0, 3.0, (3.0, 12.0), server=True),
}


@dataclass
class Sent:
    """One interaction sent to the bot, and the work it started."""

    kind: str
    interaction_id: int  # or a member's message id, for `channel_id`'s messages
    work: list[asyncio.Task[Any]]
    expired: bool = False
    channel_id: int | None = None  # a member's message in this channel, answered by a reply


@dataclass
class Report:
    profile: str
    seed: int
    seconds: float
    sent: int = 0
    outcomes: Counter = field(default_factory=Counter)  # answered, told, discord_refused, stuck, silent
    by_kind: dict[str, Counter] = field(default_factory=dict)
    faults: Counter = field(default_factory=Counter)
    acknowledged_tags: int = 0
    tags_found: int = 0
    lost_tags: list[tuple[int, str]] = field(default_factory=list)
    pings: int = 0
    errors_logged: int = 0
    discord_misuse: int = 0  # calls Discord itself would refuse that no fault caused (e.g. a second response)
    recovery_seconds: float | None = None  # from the end of the last fault to normal answers of every kind
    examples: dict[str, str] = field(default_factory=dict)  # one example per bad outcome
    told: Counter = field(default_factory=Counter)  # what members were told, by message title
    discord_failures: Counter = field(default_factory=Counter)  # the injected failures that hit a call, by call

    @property
    def passed(self) -> bool:
        return (
            not self.lost_tags
            and self.outcomes["stuck"] == 0
            and self.outcomes["silent"] == 0
            and self.pings == 0
            and self.recovery_seconds is not None
        )

    def render(self) -> str:
        o = self.outcomes
        lines = [
            f"# Chaos run ({self.profile}, seed {self.seed}, {self.seconds:.0f} s)",
            "",
            f"- requests sent: {self.sent}",
            f"- answered: {o['answered']}",
            f"- told what happened (a refusal or an error message): {o['told']}",
            f"- refused by Discord itself (a failed first answer or an expired token; Discord shows "
            f"'interaction failed'): {o['discord_refused']}",
            f"- stuck (no final answer within {STUCK_AFTER:.0f} s, or left 'thinking'/'writing'): {o['stuck']}",
            f"- silent (no answer and no fault to explain it): {o['silent']}",
            f"- acknowledged tags: {self.acknowledged_tags}, found in the database: {self.tags_found}, "
            f"lost: {len(self.lost_tags)}",
            f"- pings (a message that may mention @everyone, a role or a user): {self.pings}",
            f"- errors logged with a traceback (other than Discord's 5xx): {self.errors_logged}; "
            f"calls Discord would refuse: {self.discord_misuse}",
            "- serving every kind normally again "
            + (
                f"{self.recovery_seconds:.1f} s after the last fault"
                if self.recovery_seconds is not None
                else "NOT within the probe window"
            ),
            "- faults: " + ", ".join(f"{kind} ×{n}" for kind, n in sorted(self.faults.items())),
            "- Discord failures that hit a call: "
            + (", ".join(f"{kind} ×{n}" for kind, n in sorted(self.discord_failures.items())) or "none"),
            "",
            "| request | " + " | ".join(OUTCOMES) + " |",
            "|---|" + "---|" * len(OUTCOMES),
        ]
        for kind, counts in sorted(self.by_kind.items()):
            lines.append(f"| {kind} | " + " | ".join(str(counts[name]) for name in OUTCOMES) + " |")
        if self.told:
            lines.append("\nWhat members were told: " + "; ".join(f"{t} ×{n}" for t, n in self.told.most_common()))
        for outcome, example in self.examples.items():
            lines.append(f"\nExample of {outcome}: {example}")
        lines.append("\nTargets " + ("met." if self.passed else "NOT met."))
        return "\n".join(lines)


OUTCOMES = ("answered", "told", "discord_refused", "stuck", "silent")


def bot_env(models: dict[str, Path], data: Path, server: Server | None) -> dict[str, str]:
    env = {
        "SENTIMENT_MODEL": str(models["sentiment"]),
        "GENERATION_MODEL": str(models["llama"]),
        "ZERO_SHOT_MODEL": str(models["nli"]),
        "FILL_MASK_MODEL": str(models["fill_mask"]),
        "EMBEDDING_MODEL": str(models["embedding"]),
        "NER_MODEL": str(models["ner"]),
        "MODEL_CACHE_DIR": str(data / "models"),
        "DATABASE_PATH": str(data / "bot.sqlite3"),
        "DEVICE": "cpu",
        "DTYPE": "float32",
        "TORCH_THREADS": "1",
        "STALL_TIMEOUT": "5",  # the watchdog acts within seconds (tiny models: a step takes milliseconds)
        "REQUEST_TIMEOUT": str(REQUEST_TIMEOUT),
        "AUTOTAG": "true",
        "CHAT_MAX_NEW_TOKENS": "12",
    }
    if server is not None:
        env |= {"GENERATION_BACKEND": "openai", "OPENAI_BASE_URL": server.base_url, "OPENAI_MODEL": server.model}
        env["OPENAI_TIMEOUT"] = "15"
    return env


class Tracebacks(logging.Handler):
    """Keeps errors logged with a traceback (an apology in chat, or a crash in a background task)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        # Discord's own 5xx (after discord.py's retries) is apologised for with an error id: not the bot's fault.
        if record.exc_info and not isinstance(record.exc_info[1], discord.DiscordServerError):
            self.seen.append(record)


class Chaos:
    """The server's members and moderators, the faults, and what was sent to the bot."""

    def __init__(self, h: FakeDiscord, faults: Faults, rng: Random) -> None:
        self.h, self.faults, self.rng = h, faults, rng
        self.sent: list[Sent] = []
        self.members = [h.add_member(name=f"member{i}") for i in range(40)]
        self.moderators = [h.add_member(name=f"moderator{i}") for i in range(4)]
        self.role = h.add_role("helpers")
        self.support = h.add_channel("support")
        self.mod_log = h.add_channel("mod-log")

    def text(self) -> str:
        return self.rng.choice(TEXTS).format(role=self.role, user=self.rng.choice(self.members))

    def track(self, kind: str, interaction: discord.Interaction, expired: bool = False) -> Sent:
        sent = Sent(kind, interaction.id, self.h.take_work(), expired)
        self.sent.append(sent)
        return sent

    async def setup(self) -> None:
        for name, emoji in LABELS:
            await self.h.invoke_slash(
                "labelset add", {"label": name} | ({"emoji": emoji} if emoji else {}), permissions=MOD
            )
        await self.h.invoke_slash(
            "autotag enable", {"channel": self.support, "threshold": 0.2, "log_channel": self.mod_log}, permissions=MOD
        )
        self.h.assert_no_errors()

    # --- traffic -----------------------------------------------------------------------------
    async def slash(self, kind: str, name: str, options: dict[str, Any], **kwargs: Any) -> Sent:
        self.h.take_work()  # others' tasks: not this request's
        user = self.rng.choice(self.members)
        interaction = await self.h.invoke_slash(name, options, user_id=user, wait=False, **kwargs)
        return self.track(kind, interaction, expired=kwargs.get("age", 0) > 0)

    async def sentiment(self) -> None:
        await self.slash("sentiment", "sentiment", {"text": self.text()})

    async def label(self) -> None:
        await self.slash("label", "label", {"text": self.text(), "labels": "sports, politics, support, spam"})

    async def tokens(self) -> None:
        await self.slash("tokens", "tokens", {"text": self.text()})

    async def chat(self) -> None:
        await self.slash("chat", "chat", {"message": self.text()})

    async def expired(self) -> None:
        """A member's command that reaches the bot after its token expired (a backlog, a gateway replay)."""
        await self.slash("expired", "sentiment", {"text": self.text()}, age=EXPIRED_AGE)

    async def tag(self) -> None:
        """A moderator's "Tag message", then a click on "Tag as ..." once the suggestion is shown."""
        message = self.h.make_message(self.text(), author_id=self.rng.choice(self.members))
        self.h.take_work()
        moderator = self.rng.choice(self.moderators)
        menu = await self.h.invoke_message_menu("Tag message", message, user_id=moderator, permissions=MOD, wait=False)
        suggestion = self.track("tag message", menu)
        await wait_for(suggestion.work)
        shown = self.h.recorder.messages.get(self.original_of(menu.id) or 0) or {}
        button = next(
            (
                item["custom_id"]
                for row in shown.get("components") or []
                for item in row.get("components", [])
                if item.get("custom_id", "").startswith("mod:tag:")
            ),
            None,
        )
        if button is None:
            return  # told why not (judged with the menu's interaction)
        self.h.take_work()
        click = await self.h.invoke_component(
            button, message_id=self.original_of(menu.id), user_id=moderator, permissions=MOD, wait=False
        )
        self.track("tag click", click)

    async def thread_chat(self) -> None:
        """A member goes on with a conversation in a /chat answer's thread."""
        threads = [r.message_id for r in self.h.recorder.of_kind("start_thread") if r.error is None]
        if not threads:
            return await self.chat()
        thread = self.rng.choice(threads)
        self.h.take_work()
        message = await self.h.dispatch_message(
            f"<@{self.h.bot_id}> {self.text()}", author_id=self.rng.choice(self.members), channel_id=thread, wait=False
        )
        self.sent.append(Sent("chat in a thread", message.id, self.h.take_work(), channel_id=thread))

    async def chatter(self) -> None:
        """A member writes in the auto-tagged channel."""
        self.h.take_work()
        await self.h.dispatch_message(
            self.text(), author_id=self.rng.choice(self.members), channel_id=self.support, wait=False
        )

    def original_of(self, interaction_id: int) -> int | None:
        for record in reversed(self.h.recorder.records):
            if record.interaction_id == interaction_id and record.message_id and record.error is None:
                return record.message_id
        return None

    ACTIONS = (
        ("sentiment", 5),
        ("label", 3),
        ("tokens", 2),
        ("chat", 2),
        ("thread_chat", 2),
        ("tag", 2),
        ("chatter", 4),
    )

    async def traffic(self, rate: float, storm_over: asyncio.Event) -> None:
        names, weights = zip(*self.ACTIONS)
        running: set[asyncio.Task[Any]] = set()
        while not storm_over.is_set():
            action = getattr(self, self.rng.choices(names, weights)[0])
            task = asyncio.ensure_future(action())
            running.add(task)
            task.add_done_callback(running.discard)
            await asyncio.sleep(self.rng.expovariate(rate))
        await asyncio.gather(*running)

    async def chaos(self, seconds: float, gap: tuple[float, float], storm_over: asyncio.Event) -> None:
        """Faults at random intervals for `seconds`, in rounds of every kind in a random order (one round at
        least, so a short run meets every fault); then the traffic stops."""
        end = time.monotonic() + seconds
        await asyncio.sleep(self.rng.uniform(*gap))
        while True:
            kinds = list(self.faults.kinds)
            self.rng.shuffle(kinds)
            for kind in kinds:
                log.info("fault: %s", kind)
                await self.faults.inject(kind)
                await asyncio.sleep(self.rng.uniform(*gap))
            if time.monotonic() >= end:
                break
        storm_over.set()

    # --- after the storm -----------------------------------------------------------------------
    async def recovery(self, since: float, window: float = 120.0) -> float | None:
        """Seconds from `since` until one request of every kind is answered normally (probes a second apart)."""
        probes = ("sentiment", "label", "tokens", "chat", "tag")
        pending = set(probes)
        deadline = time.monotonic() + window
        while pending and time.monotonic() < deadline:
            for kind in list(pending):
                first = len(self.sent)
                await getattr(self, kind)()
                mine = self.sent[first:]
                await wait_for([t for s in mine for t in s.work])
                if mine and all(self.outcome(s)[0] == "answered" for s in mine):
                    pending.discard(kind)
                del self.sent[first:]  # probes are not part of the traffic's figures
            if pending:
                await asyncio.sleep(1.0)
        return None if pending else time.monotonic() - since

    def outcome(self, sent: Sent) -> tuple[str, str]:
        """(outcome, what the member saw) of one interaction, from what reached the fake Discord."""
        if not all(task.done() for task in sent.work):
            return "stuck", "its work was still running"
        if sent.channel_id is not None:
            return self.reply_outcome(sent)
        records = [r for r in self.h.recorder.records if r.interaction_id == sent.interaction_id]
        shown = [r for r in records if r.error is None and r.kind in ("response", "edit_original", "followup")]
        final: Record | None = None
        for record in shown:
            if record.kind != "response" or record.response_type in (4, 7):
                final = record
        if final is None:
            if any(r.response_type == 5 for r in shown):
                return "stuck", "left 'thinking…'"
            if sent.expired or any(r.error is not None for r in records):
                return "discord_refused", "Discord refused the bot's answer"
            return "silent", f"no answer ({[r.kind for r in records]})"
        return self.seen(self.h.recorder.messages.get(final.message_id or 0, final.payload))

    def reply_outcome(self, sent: Sent) -> tuple[str, str]:
        """A member's message answered by the bot's reply (its last state), or not."""
        replies = [
            m
            for m in self.h.recorder.messages.values()
            if int((m.get("message_reference") or {}).get("message_id") or 0) == sent.interaction_id
        ]
        if replies:
            return self.seen(replies[-1])
        posts = self.h.recorder.of_kind("send_message")
        if any(r.error is not None and r.channel_id == sent.channel_id for r in posts):
            return "discord_refused", "Discord refused the bot's reply"
        return "silent", "no reply"

    @staticmethod
    def seen(message: dict[str, Any]) -> tuple[str, str]:
        """What a member makes of the bot's message."""
        embeds = message.get("embeds") or []
        summary = " / ".join(
            filter(
                None,
                [message.get("content")] + [f"{e.get('title')}: {(e.get('description') or '')[:90]}" for e in embeds],
            )
        )
        if any((e.get("footer") or {}).get("text") == WRITING for e in embeds):
            return "stuck", f"left 'writing…': {summary}"
        if any(e.get("color") in TOLD for e in embeds):
            return "told", summary
        return "answered", summary


async def wait_for(tasks: list[asyncio.Task[Any]], timeout: float = STUCK_AFTER) -> None:
    if tasks:
        await asyncio.wait(tasks, timeout=timeout)


def acknowledged_tags(h: FakeDiscord, mod_log: int) -> set[tuple[int, str]]:
    """(message id, label) of every tag the bot said it saved: to a moderator, or in the auto-tag log."""
    found: set[tuple[int, str]] = set()
    for record in h.recorder.message_records():
        if record.error is not None:
            continue
        for embed in record.embeds:
            text = embed.get("description") or ""
            if embed.get("title") == "Tag saved":
                found.update((int(m), label) for m, label in TAGGED.findall(text))
            elif embed.get("title") == "Auto-tagged" and record.channel_id == mod_log:
                message = AUTO_TAGGED_MESSAGE.search(text)
                found.update((int(message[1]), label) for label in AUTO_TAGGED.findall(text.split("·")[0]))
    return found


def stored_tags(database: Path) -> set[tuple[int, str]]:
    with sqlite3.connect(database) as db:
        return {(m, label) for m, label in db.execute("SELECT message_id, label FROM tags")}


def pings(h: FakeDiscord) -> int:
    """Messages whose allowed_mentions would let Discord ping anyone."""
    return sum(1 for r in h.recorder.message_records() if (r.content or r.embeds) and may_ping(r.allowed_mentions))


def may_ping(allowed: dict[str, Any] | None) -> bool:
    allowed = allowed or {}
    return allowed.get("parse") != [] or any(allowed.get(key) for key in ("users", "roles", "replied_user"))


def discord_misuse(h: FakeDiscord, injected: set[tuple[int, int]]) -> int:
    """Failed calls that no injected fault explains (Discord would refuse them from any bot)."""
    expired = (404, 10015), UNKNOWN_INTERACTION[:2]
    return sum(
        1
        for r in h.recorder.records
        if isinstance(r.error, discord.HTTPException)
        and (r.error.status, r.error.code) not in injected
        and (r.error.status, r.error.code) not in expired
    )


async def run(profile_name: str, seed: int, models: dict[str, Path], data: Path, server: bool | None = None) -> Report:
    profile = PROFILES[profile_name]
    rng = Random(seed)
    started = time.monotonic()
    report = Report(profile_name, seed, 0.0)
    generation_server = None
    if profile.server if server is None else server:
        generation_server = Server(models["llama"])
        await asyncio.to_thread(generation_server.wait_ready)
    settings = Settings.from_env(bot_env(models, data, generation_server), profile="offline")
    engine = Engine(settings.engine)
    bot = HFBot(settings, engine)
    tracebacks = Tracebacks()
    logging.getLogger().addHandler(tracebacks)
    h = await FakeDiscord.create(bot, timeout=STUCK_AFTER)
    faults = Faults(engine, h.recorder, settings.database_path, rng, generation_server)
    chaos = Chaos(h, faults, rng)
    faults.send_expired = chaos.expired
    try:
        await chaos.setup()
        storm_over = asyncio.Event()
        await asyncio.gather(
            chaos.traffic(profile.requests_per_second, storm_over),
            chaos.chaos(profile.traffic_seconds, profile.fault_gap, storm_over),
        )
        await wait_for([t for s in chaos.sent for t in s.work])
        last_fault = max((f.ended for f in faults.done), default=started)
        report.recovery_seconds = await chaos.recovery(last_fault)
        for sent in chaos.sent:
            outcome, seen = chaos.outcome(sent)
            report.outcomes[outcome] += 1
            report.by_kind.setdefault(sent.kind, Counter())[outcome] += 1
            if outcome == "told":
                report.told[re.sub(r"\d+", "N", seen)] += 1  # "about 48 s" and "about 52 s" are one message
            if outcome in ("stuck", "silent"):
                report.examples.setdefault(outcome, f"{sent.kind}: {seen}")
        report.sent = len(chaos.sent)
        report.faults = Counter(f.kind for f in faults.done)
        report.pings = pings(h)
        report.errors_logged = len(tracebacks.seen)
        for record in tracebacks.seen[:3]:
            log.warning("logged: %s", record.getMessage(), exc_info=record.exc_info)
        injected = {SERVER_ERROR[:2], UNKNOWN_INTERACTION[:2]}
        report.discord_misuse = discord_misuse(h, injected)
        report.discord_failures = Counter(
            f"{r.kind} {r.error.status}"
            for r in h.recorder.records
            if isinstance(r.error, discord.HTTPException) and (r.error.status, r.error.code) in injected
        )
        acknowledged = acknowledged_tags(h, chaos.mod_log)
    finally:
        faults.release()
        logging.getLogger().removeHandler(tracebacks)
        await h.close()
        await engine.close()
        if generation_server is not None:
            generation_server.stop()
    stored = stored_tags(settings.database_path)
    report.acknowledged_tags, report.tags_found = len(acknowledged), len(acknowledged & stored)
    report.lost_tags = sorted(acknowledged - stored)
    report.seconds = time.monotonic() - started
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--short", action="store_true", help="about a minute, no generation server (CI)")
    length.add_argument("--long", action="store_true", help="ten minutes of traffic; writes bench/CHAOS.md")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-server", action="store_true", help="chat on the local worker, no `transformers serve`")
    args = parser.parse_args(argv)
    profile = "short" if args.short else "long" if args.long else "default"
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log.setLevel(logging.INFO)
    with tempfile.TemporaryDirectory(prefix="chaos-") as folder:
        data = Path(folder)
        models = build_all(data / "tiny-models", size="tiny")
        report = asyncio.run(run(profile, args.seed, models, data, server=False if args.no_server else None))
    text = report.render()
    print(text)
    if args.long:
        (Path(__file__).parent / "CHAOS.md").write_text(text + "\n")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
