"""The moderators' feature without Discord: validation, label requests, and rendering
of label sets, suggestions, tags, the stats chart (PNG) and the CSV export.

Replies are the command layer's `Reply`, so they are drawn like every other answer.
Text uses Discord markup (<#channel>, <@user>, <t:time:R>) since only the cog shows it.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import re
from collections.abc import Sequence
from datetime import datetime, timezone

from .commands import Reply, bar, clip, quote, render_result
from .engine import ZeroShotRequest, ZeroShotResult
from .engine.errors import InvalidInput
from .engine.requests.base import MAX_TEXT_CHARS
from .engine.requests.zero_shot import MAX_LABEL_CHARS, MAX_LABELS
from .storage import GuildConfig, Label, Tag, Watch

MESSAGE_LINK = re.compile(r"https://(?:(?:ptb|canary)\.)?discord(?:app)?\.com/channels/(\d+|@me)/(\d+)/(\d+)")
CSV_COLUMNS = ("time_utc", "channel_id", "message_id", "author_id", "label", "score", "method", "tagged_by", "auto", "link", "text")


# --- input -----------------------------------------------------------------------------------

def validate_label(name: str) -> str:
    label = " ".join(name.split())  # one line, single spaces: it is shown in menus and charts
    if not label:
        raise InvalidInput("The label is empty.")
    if len(label) > MAX_LABEL_CHARS:
        raise InvalidInput(f"The label is {len(label)} characters long; labels are at most {MAX_LABEL_CHARS}.")
    return label


def validate_emoji(emoji: str | None) -> str | None:
    """A unicode emoji or a custom one (<:name:id>); Discord has the last word when reacting."""
    if emoji is None or not emoji.strip():
        return None
    emoji = emoji.strip()
    if re.fullmatch(r"<a?:\w{2,32}:\d{15,21}>", emoji):
        return emoji
    if len(emoji) > 16 or any(c.isspace() for c in emoji) or emoji.isascii():
        raise InvalidInput(f"“{clip(emoji, 40)}” is not an emoji. Give one emoji, like 🚫, or a server emoji.")
    return emoji


def validate_description(label: str, description: str | None) -> str | None:
    """The label and its description go to the model together, within the engine's label limit."""
    if description is None or not description.strip():
        return None
    description = " ".join(description.split())
    room = MAX_LABEL_CHARS - len(label) - 2
    if len(description) > room:
        raise InvalidInput(f"The description is {len(description)} characters; with the label “{clip(label, 40)}” it can be at most {max(room, 0)}.")
    return description


def message_text(content: str) -> str:
    """The text a message is labeled by; Nitro messages (up to 4000 characters) are cut to the model's limit."""
    if not content.strip():
        raise InvalidInput("That message has no text to label (images, files and embeds are not read).")
    return content.strip()[:MAX_TEXT_CHARS]


def require_labels(config: GuildConfig) -> tuple[str, ...]:
    if not config.labels:
        raise InvalidInput("This server has no labels yet. A moderator can add some with /labelset add.")
    return tuple(label.name for label in config.labels)


def label_prompt(label: Label) -> str:
    return f"{label.name}: {label.description}" if label.description else label.name


def label_request(text: str, config: GuildConfig) -> ZeroShotRequest:
    """NLI models understand bare label names; a small embedding model (MiniLM) compares topics, so a label
    described by a typical message ("question: How do I change my settings?") is matched far better, and
    the bare text ("{}") works better there than the NLI-style "This example is {}."."""
    names = require_labels(config)
    if config.method == "nli":
        return ZeroShotRequest(text, names, method="nli")
    return ZeroShotRequest(text, tuple(label_prompt(label) for label in config.labels), method="embedding", hypothesis_template="{}")


def named(result: ZeroShotResult, config: GuildConfig) -> ZeroShotResult:
    """The result of `label_request` with label names in place of the prompts sent to the model."""
    names = {label_prompt(label): label.name for label in config.labels}
    return dataclasses.replace(result, labels=[names.get(label, label) for label in result.labels])


def known_label(config: GuildConfig, name: str) -> Label:
    label = config.label(name)
    if label is None:
        names = ", ".join(label.name for label in config.labels) or "none yet"
        raise InvalidInput(f"There is no label “{clip(name, 100)}” in this server's label set. Labels: {clip(names, 1500)}.")
    return label


def auto_labels(result: ZeroShotResult, threshold: float) -> list[tuple[str, float]]:
    """The labels an auto-tag keeps: every one scoring at or above the threshold."""
    return [(label, score) for label, score in zip(result.labels, result.scores) if score >= threshold]


def parse_message_ref(value: str, guild_id: int) -> int:
    """A message id, or a message link of this guild -> the message id."""
    value = value.strip().strip("<>")
    if value.isdigit():
        return int(value)
    link = MESSAGE_LINK.fullmatch(value)
    if link is None:
        raise InvalidInput("Give a message id (a number) or a message link (right-click the message → Copy Message Link).")
    if link.group(1) != str(guild_id):
        raise InvalidInput("That link points to a message in another server (or a DM); tags are kept per server.")
    return int(link.group(3))


def jump_url(guild_id: int, channel_id: int, message_id: int) -> str:
    return f"https://discord.com/channels/{guild_id}/{channel_id}/{message_id}"


# --- replies ---------------------------------------------------------------------------------

def _label_line(label: Label) -> str:
    description = f" — {label.description}" if label.description else ""
    return f"{label.emoji + ' ' if label.emoji else ''}**{label.name}**{description}"


def render_labelset(config: GuildConfig, title: str = "Label set") -> Reply:
    lines = [f"{i}. {_label_line(label)}" for i, label in enumerate(config.labels, 1)]
    if not lines:
        lines = ["No labels yet. Add some with /labelset add."]
    footer = (f"{len(config.labels)}/{MAX_LABELS} labels · method {config.method} · auto-tag threshold {config.threshold:.2f} · "
              f"message text {'stored' if config.store_text else 'not stored'}")
    return Reply(title, lines, footer=footer, tone="info")


def render_suggestion(result: ZeroShotResult) -> Reply:
    reply = render_result(result)  # the same ranked bars as /label
    reply.title = "Tag this message?"
    reply.lines.append("")
    reply.lines.append(f"Confirm **{result.labels[0]}**, pick another label, or choose none.")
    return reply


def render_tagged(tag: Tag, note: str | None = None) -> Reply:
    score = "" if tag.score is None else f" (score {tag.score:.2f})"
    lines = [f"Tagged {jump_url(tag.guild_id, tag.channel_id, tag.message_id)} as **{tag.label}**{score}."]
    if note:
        lines.append(note)
    return Reply("Tag saved", lines, tone="ok")


def render_watches(watches: Sequence[Watch], config: GuildConfig, enabled: bool) -> Reply:
    lines = []
    for watch in watches:
        threshold = f"{watch.threshold:.2f}" if watch.threshold is not None else f"{config.threshold:.2f} (server default)"
        log_to = f" · log to <#{watch.log_channel_id}>" if watch.log_channel_id else ""
        lines.append(f"<#{watch.channel_id}> · threshold {threshold}{log_to}")
    if not lines:
        lines = ["No channel is auto-tagged. Turn one on with /autotag enable."]
    if not enabled:
        lines.append("")
        lines.append(AUTOTAG_OFF)
    return Reply("Auto-tagged channels", lines, footer=f"method {config.method}", tone="info")


AUTOTAG_OFF = ("⚠️ Auto-tagging is turned off on this bot: its owner has to set AUTOTAG=true, which needs the "
               "privileged Message Content intent (Developer Portal → Bot).")


def render_tags(tags: Sequence[Tag], title: str = "Recent tags") -> Reply:
    lines = []
    for t in tags:
        by = "auto" if t.auto else f"<@{t.tagged_by}>"
        score = "" if t.score is None else f" {t.score:.2f}"
        line = f"**{t.label}**{score} · [message]({jump_url(t.guild_id, t.channel_id, t.message_id)}) in <#{t.channel_id}> by <@{t.author_id}> · tagged by {by} <t:{int(t.created_at)}:R>"
        if t.text:
            line += f"\n  {quote(t.text, 120)}"
        lines.append(line)
    return Reply(title, lines or ["No tags match."], tone="info")


def render_stats(counts: Sequence[tuple[str, int]], days: int) -> Reply:
    total = sum(n for _, n in counts)
    if not total:
        return Reply("Tag stats", [f"No tags in the last {days} days."], tone="info")
    width = max(len(label) for label, _ in counts)
    lines = [f"`{clip(label, 40).ljust(min(width, 40))} {bar(n / counts[0][1])}` {n}" for label, n in counts]
    return Reply("Tag stats", lines, footer=f"{total} tags in the last {days} days", tone="info")


def render_undo(removed: Sequence[Tag], message_id: int) -> Reply:
    if not removed:
        return Reply("Nothing to undo", [f"Message {message_id} has no tags in this server."], tone="info")
    labels = ", ".join(f"**{t.label}**" for t in removed)
    return Reply("Tags removed", [f"Removed {len(removed)} tag{'s' * (len(removed) != 1)} from message {message_id}: {labels}."])


def render_autotag_log(tags: Sequence[Tag]) -> Reply:
    first = tags[0]
    labels = ", ".join(f"**{t.label}** {t.score:.2f}" for t in tags)
    return Reply("Auto-tagged", [f"{labels} · [message]({jump_url(first.guild_id, first.channel_id, first.message_id)}) "
                                 f"in <#{first.channel_id}> by <@{first.author_id}>"], footer=f"method {first.method}", tone="info")


PURGE_PROMPT = Reply("Delete this server's moderation data?",
                     ["This deletes every tag, the label set, the auto-tagged channels and the settings of this server. "
                      "It cannot be undone."], tone="error")


def render_purged(deleted: dict[str, int]) -> Reply:
    return Reply("Moderation data deleted", [f"Deleted {deleted.get('tags', 0)} tags, {deleted.get('labels', 0)} labels and "
                                             f"{deleted.get('watched_channels', 0)} auto-tagged channels."])


# --- files -----------------------------------------------------------------------------------

def stats_chart(counts: Sequence[tuple[str, int]], days: int) -> bytes:
    """A horizontal bar chart of tags per label, as PNG bytes (Agg: no display, no global pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = [clip(label, 30) for label, _ in reversed(counts)]  # most used at the top
    values = [n for _, n in reversed(counts)]
    figure = Figure(figsize=(6.4, 1.2 + 0.35 * len(counts)), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    bars = axes.barh(labels, values, color="#5865F2")
    axes.bar_label(bars, padding=3)
    axes.set_xlabel("tags")
    axes.set_title(f"Tags per label, last {days} days")
    axes.spines[["top", "right"]].set_visible(False)
    axes.xaxis.get_major_locator().set_params(integer=True)
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


def _cell(value: str) -> str:
    # A cell starting with = + - @ is run as a formula by spreadsheets: message text is untrusted.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def tags_csv(tags: Sequence[Tag]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for t in tags:
        writer.writerow([
            datetime.fromtimestamp(t.created_at, timezone.utc).isoformat(timespec="seconds"), t.channel_id, t.message_id,
            t.author_id, _cell(t.label), "" if t.score is None else f"{t.score:.4f}", t.method, t.tagged_by,
            "yes" if t.auto else "no", jump_url(t.guild_id, t.channel_id, t.message_id), _cell(t.text or ""),
        ])
    return out.getvalue().encode("utf-8-sig")  # the BOM makes Excel read UTF-8
