"""The moderators' feature without Discord: validation, label requests, learned labels' training
data, and rendering of label sets, suggestions, tags, reviews, the stats and report charts (PNG)
and the tag exports (CSV, JSON Lines, Parquet).

Replies are the command layer's `Reply`, so they are drawn like every other answer.
Text uses Discord markup (<#channel>, <@user>, <t:time:R>) since only the cog shows it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from .engine.errors import InvalidInput
from .engine.request import MAX_TEXT_CHARS
from .reply import Reply, bar, clip, quote
from .specs.learned_labels import (
    LEARNED,
    NONE_OF_THESE,
    Example,
    LabelEvaluation,
    LabelMessageRequest,
    LabelMessageResult,
    TrainedLabels,
)
from .specs.zero_shot import DEFAULT_TEMPLATE, MAX_LABEL_CHARS, MAX_LABELS
from .storage import FineTunedEncoder, GuildConfig, Label, LabelModel, Review, Tag, Watch

MESSAGE_LINK = re.compile(r"https://(?:(?:ptb|canary)\.)?discord(?:app)?\.com/channels/(\d+|@me)/(\d+)/(\d+)")
CSV_COLUMNS = (
    "time_utc",
    "channel_id",
    "message_id",
    "author_id",
    "label",
    "score",
    "method",
    "tagged_by",
    "auto",
    "link",
    "text",
)
# /tags export format:jsonl, one object a line, as Hugging Face `datasets` loads it (load_dataset("json", ...)).
JSONL_COLUMNS = ("text", "label", "confirmed", "score", "method", "channel_id", "message_id", "time", "embedding_model")
EXPORT_FORMATS = {
    "csv": "CSV (spreadsheets)",
    "jsonl": "JSON Lines (Hugging Face datasets, pandas)",
    "parquet": "Parquet (Hugging Face datasets, pandas, typed columns)",
}
MAX_TIMEOUT = timedelta(days=28)  # Discord refuses longer timeouts
TIMEOUTS = {
    "60 seconds": 60,
    "10 minutes": 600,
    "1 hour": 3600,
    "1 day": 86400,
    "1 week": 7 * 86400,
    "28 days": int(MAX_TIMEOUT.total_seconds()),
}
METHOD_NAMES = {
    LEARNED: "learned labels (trained on this server's tags)",
    "embedding": "zero-shot (embedding similarity)",
    "nli": "zero-shot (NLI)",
}


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
        raise InvalidInput(
            f"The description is {len(description)} characters; "
            f"with the label “{clip(label, 40)}” it can be at most {max(room, 0)}."
        )
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


def label_request(
    text: str,
    config: GuildConfig,
    model: LabelModel | None,
    embedding_model: str,
    encoder: FineTunedEncoder | None = None,
) -> LabelMessageRequest:
    """The server's learned labels where its model fits the label set, zero-shot for the rest.

    For zero-shot, NLI models understand bare label names; a small embedding model (MiniLM) compares topics,
    so a label described by a typical message ("question: How do I change my settings?") is matched far
    better, and the bare text ("{}") works better there than the NLI-style "This example is {}.".
    The server's fine-tuned encoder and its head replace the linear head where it fits and did better on held-out
    examples."""
    names = require_labels(config)
    head = model.head if model is not None and model.fits(config, embedding_model) else None
    adapter = None
    if encoder is not None and encoder.better and encoder.fits(config, embedding_model):
        head, adapter = encoder.head, encoder.adapter
    if config.method == "nli":
        return LabelMessageRequest(
            text, names, names, method="nli", hypothesis_template=DEFAULT_TEMPLATE, head=head, encoder=adapter
        )
    return LabelMessageRequest(
        text, names, tuple(label_prompt(label) for label in config.labels), head=head, encoder=adapter
    )


def label_key(name: str) -> str:
    """A short, stable key for a label name: a button's custom_id has room for it (100 characters in all)."""
    return hashlib.sha1(name.casefold().encode()).hexdigest()[:8]


def label_by_key(config: GuildConfig, key: str) -> Label:
    label = next((label for label in config.labels if label_key(label.name) == key), None)
    if label is None:
        raise InvalidInput(
            "That label has been removed from the label set since this was suggested. Run “Tag message” again."
        )
    return label


def score_of(result: LabelMessageResult, label: str) -> tuple[float | None, str]:
    """A label's score and method in a result; (None, method of the top label) for a label added since."""
    for name, score, method in zip(result.labels, result.scores, result.methods):
        if name.casefold() == label.casefold():
            return score, method
    return None, result.methods[0]


def training_examples(pairs: Sequence[tuple[int, Example]], config: GuildConfig) -> tuple[Example, ...]:
    """The examples of the current label set, under the set's spelling of each name. Examples of a removed
    label are kept in the database (it may come back) but not trained on."""
    names = {label.name.casefold(): label.name for label in config.labels} | {NONE_OF_THESE: NONE_OF_THESE}
    return tuple(
        Example(names[e.label.casefold()], e.positive, e.text, e.vector, e.vector_model)
        for _, e in pairs
        if e.label.casefold() in names
    )


def identical_labels(pairs: Sequence[tuple[int, Example]], config: GuildConfig) -> list[tuple[str, str]]:
    """Pairs of labels tagged on exactly the same messages: no model can tell them apart."""
    messages: dict[str, set[int]] = {}
    for message_id, e in pairs:
        if e.positive and e.label != NONE_OF_THESE:
            messages.setdefault(e.label.casefold(), set()).add(message_id)
    names = [label.name for label in config.labels if label.name.casefold() in messages]
    return [
        (a, b) for i, a in enumerate(names) for b in names[i + 1 :] if messages[a.casefold()] == messages[b.casefold()]
    ]


def timeout_duration(value: str) -> timedelta:
    """A timeout menu value (seconds) -> a duration Discord accepts."""
    if not value.isdigit() or int(value) < 1:
        raise InvalidInput("Pick a timeout duration from the menu.")
    duration = timedelta(seconds=int(value))
    if duration > MAX_TIMEOUT:
        raise InvalidInput(f"Discord allows timeouts of at most {MAX_TIMEOUT.days} days.")
    return duration


def duration_name(duration: timedelta) -> str:
    seconds = int(duration.total_seconds())
    return next((name for name, value in TIMEOUTS.items() if value == seconds), str(duration))


def audit_reason(moderator: str, action: str, subject: str) -> str:
    return clip(f"{action} by {moderator} from the auto-tag log ({subject})", 512)  # Discord's audit-log reason limit


def known_label(config: GuildConfig, name: str) -> Label:
    label = config.label(name)
    if label is None:
        names = ", ".join(label.name for label in config.labels) or "none yet"
        raise InvalidInput(
            f"There is no label “{clip(name, 100)}” in this server's label set. Labels: {clip(names, 1500)}."
        )
    return label


def auto_labels(result: LabelMessageResult, threshold: float) -> list[tuple[str, float, str]]:
    """The labels an auto-tag keeps, with score and method: every one scoring at or above the threshold."""
    return [
        (label, score, method)
        for label, score, method in zip(result.labels, result.scores, result.methods)
        if score >= threshold
    ]


def parse_message_ref(value: str, guild_id: int) -> int:
    """A message id, or a message link of this guild -> the message id."""
    value = value.strip().strip("<>")
    if value.isdigit():
        return int(value)
    link = MESSAGE_LINK.fullmatch(value)
    if link is None:
        raise InvalidInput(
            "Give a message id (a number) or a message link (right-click the message → Copy Message Link)."
        )
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
    footer = (
        f"{len(config.labels)}/{MAX_LABELS} labels · method {config.method} · "
        f"auto-tag threshold {config.threshold:.2f} · "
        f"message text {'stored' if config.store_text else 'not stored'} · review from {config.review_threshold:.2f}"
    )
    return Reply(title, lines, footer=footer, tone="info")


def labelled_by(method: str) -> str:
    return f"Labelled by {METHOD_NAMES.get(method, method)}"


def render_suggestion(result: LabelMessageResult) -> Reply:
    width = max(len(label) for label in result.labels)
    lines = [quote(result.text), ""]
    lines += [
        f"`{label.ljust(width)} {bar(score)}` {score:.2f}{' · learned' if method == LEARNED else ''}"
        for label, score, method in zip(result.labels, result.scores, result.methods)
    ]
    lines += ["", f"Confirm **{result.labels[0]}**, pick another label, or choose none."]
    return Reply("Tag this message?", lines, footer=f"{labelled_by(result.methods[0])} · {result.model}")


def render_tagged(tag: Tag, note: str | None = None) -> Reply:
    score = "" if tag.score is None else f" (score {tag.score:.2f})"
    lines = [f"Tagged {jump_url(tag.guild_id, tag.channel_id, tag.message_id)} as **{tag.label}**{score}."]
    if note:
        lines.append(note)
    return Reply("Tag saved", lines, footer=labelled_by(tag.method), tone="ok")


def render_trained(trained: TrainedLabels, identical: Sequence[tuple[str, str]], min_examples: int) -> Reply:
    lines = []
    if trained.head is None:
        lines.append(f"Nothing learned yet: {trained.reason}. Until then every label uses zero-shot.")
    else:
        learned = ", ".join(f"**{label}**" for label in trained.head.labels)
        lines.append(f"Learned labels: {learned}, from {trained.used} examples in {trained.seconds * 1000:.0f} ms.")
    waiting = [f"{label} ({n}/{min_examples})" for label, n in trained.counts.items() if n < min_examples]
    if waiting:
        lines.append(f"Zero-shot until they have {min_examples} examples: {', '.join(waiting)}.")
    lines += identical_notes(identical)
    lines += skipped_notes(trained.skipped)
    return Reply(
        "Learned labels trained" if trained.head else "Learned labels", lines, tone="ok" if trained.head else "info"
    )


def identical_notes(identical: Sequence[tuple[str, str]]) -> list[str]:
    return [
        f"⚠️ **{a}** and **{b}** were tagged on exactly the same messages, so they can't be told apart. "
        "Undo the wrong tags (/tags undo) or remove one label."
        for a, b in identical
    ]


def skipped_notes(skipped: int) -> list[str]:
    return [
        f"{skipped} examples were skipped: stored without text, and without a vector of the current embedding model."
    ] * bool(skipped)


def render_report(
    evaluation: LabelEvaluation,
    identical: Sequence[tuple[str, str]],
    min_examples: int,
    fine_tuning: str | None = None,
    curve: str | None = None,
) -> Reply:
    """`curve`: bot.learning.render_curve's lines."""
    e = evaluation
    width = max(len(label) for label in e.labels)
    lines = [
        f"`{label.ljust(width)}` {n} examples{f' · zero-shot until {min_examples}' if n < min_examples else ''}"
        for label, n in zip(e.labels, e.counts)
    ]
    learned = (
        f"learned labels **{100 * e.learned_accuracy:.0f}%**"
        if e.learned_accuracy is not None
        else "learned labels: not measurable yet "
        f"(each example is held out in turn, so a label needs {min_examples + 1})"
    )
    fields = [
        (
            "Right on your own examples (cross-validated)",
            f"{learned} · zero-shot {100 * e.zero_shot_accuracy:.0f}% ({e.evaluated} examples)",
        )
    ]
    confused = sorted(
        (
            (e.confusion[t][p], e.labels[t], e.labels[p])
            for t in range(len(e.labels))
            for p in range(len(e.labels))
            if t != p and e.confusion[t][p]
        ),
        reverse=True,
    )[:3]
    if curve is not None:
        fields.append(("Learning curve: accuracy by examples per label (cross-validated)", curve))
    if fine_tuning is not None:
        fields.append(("Fine-tuned encoder", fine_tuning))
    if confused:
        fields.append(("Most confused", "\n".join(f"**{t}** taken for **{p}**: {n}×" for n, t, p in confused)))
    fields.append(("Needs more examples", needs_more(e, min_examples)))
    lines += identical_notes(identical)
    lines += skipped_notes(e.skipped)
    return Reply("Learned labels report", lines, fields=fields, footer=e.model, tone="info")


def render_fine_tuning(encoder: FineTunedEncoder | None, store_text: bool, fits: bool) -> str:
    """Both encoders' accuracy on the same held-out examples, and which one labels messages."""
    if not store_text:
        return "Unavailable: it learns from the text of tagged messages, and this server does not store it."
    if encoder is None or not fits:
        return "Not trained (for these labels and this model) yet: /labelset finetune."
    used = "in use" if encoder.better else "not used: the linear head did as well"
    return (
        f"fine-tuned **{100 * encoder.finetuned_accuracy:.0f}%** · linear head {100 * encoder.linear_accuracy:.0f}% "
        f"on {encoder.evaluated} held-out examples · {used} · adapter {len(encoder.adapter) // 1024} KB, "
        f"trained in {encoder.seconds:.0f} s"
    )


def needs_more(e: LabelEvaluation, min_examples: int) -> str:
    """The label to tag next: the one with the fewest examples under the minimum, else the one learned worst."""
    short = [(n, label) for label, n in zip(e.labels, e.counts) if n < min_examples]
    if short:
        n, label = min(short)
        return f"**{label}**: {n} of the {min_examples} examples it needs to be learned."
    recall, label = min((r, label) for label, r in zip(e.labels, e.learned_recall) if r is not None)
    return f"**{label}**: right {100 * recall:.0f}% of the time; a few more varied examples would help most."


def render_watches(watches: Sequence[Watch], config: GuildConfig, enabled: bool) -> Reply:
    lines = []
    for watch in watches:
        threshold = (
            f"{watch.threshold:.2f}" if watch.threshold is not None else f"{config.threshold:.2f} (server default)"
        )
        log_to = f" · log to <#{watch.log_channel_id}>" if watch.log_channel_id else ""
        lines.append(f"<#{watch.channel_id}> · threshold {threshold}{log_to}")
    if not lines:
        lines = ["No channel is auto-tagged. Turn one on with /autotag enable."]
    if not enabled:
        lines.append("")
        lines.append(AUTOTAG_OFF)
    return Reply("Auto-tagged channels", lines, footer=f"method {config.method}", tone="info")


AUTOTAG_OFF = (
    "⚠️ Auto-tagging is turned off on this bot: its owner has to set AUTOTAG=true, which needs the "
    "privileged Message Content intent (Developer Portal → Bot)."
)


def render_tags(tags: Sequence[Tag], title: str = "Recent tags") -> Reply:
    lines = []
    for t in tags:
        by = "auto" if t.auto else f"<@{t.tagged_by}>"
        score = "" if t.score is None else f" {t.score:.2f}"
        link = jump_url(t.guild_id, t.channel_id, t.message_id)
        line = (
            f"**{t.label}**{score} · [message]({link}) in <#{t.channel_id}> by <@{t.author_id}> "
            f"· tagged by {by} <t:{int(t.created_at)}:R>"
        )
        if t.text:
            line += f"\n  {quote(t.text, 120)}"
        lines.append(line)
    return Reply(title, lines or ["No tags match."], tone="info")


def render_nearest(
    tagged: Sequence[tuple[Tag, list[str]]], nearest: Sequence[tuple[int, float]], compared: int, store_text: bool
) -> Reply:
    """The stored tagged messages closest to a message: `tagged` holds each message (one of its tags, all its
    labels), `nearest` (index into it, cosine). Their text only while the server keeps texts (store_text)."""
    lines = []
    for index, cosine in nearest:
        t, labels = tagged[index]
        link = jump_url(t.guild_id, t.channel_id, t.message_id)
        named = ", ".join(f"**{label}**" for label in labels)
        line = (
            f"`{bar(max(cosine, 0.0))}` {cosine:.2f} · {named} · [message {t.message_id}]({link}) in <#{t.channel_id}>"
        )
        if store_text and t.text:
            line += f"\n  {quote(t.text, 120)}"
        lines.append(line)
    note = "" if store_text else " · texts are not kept (/labelset store_text): open the links"
    return Reply(
        "Similar tagged messages",
        lines or ["None of the stored embeddings comes from the current embedding model; tag a few messages again."],
        footer=f"cosine similarity of sentence embeddings · {compared} tagged messages compared{note}",
        tone="info",
    )


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
    return Reply(
        "Tags removed", [f"Removed {len(removed)} tag{'s' * (len(removed) != 1)} from message {message_id}: {labels}."]
    )


def render_autotag_log(tags: Sequence[Tag], text: str) -> Reply:
    first = tags[0]
    labels = ", ".join(f"**{t.label}** {t.score:.2f}" for t in tags)
    return Reply(
        "Auto-tagged",
        [
            f"{labels} · [message]({jump_url(first.guild_id, first.channel_id, first.message_id)}) "
            f"in <#{first.channel_id}> by <@{first.author_id}>",
            quote(text),
        ],
        footer=labelled_by(first.method),
        tone="info",
    )


def in_review_queue(result: LabelMessageResult, config: GuildConfig) -> bool:
    """An untagged message goes to the review queue when its top label reached the server's review threshold."""
    return result.scores[0] >= config.review_threshold


def render_review(review: Review, text: str, unsure: str | None = None) -> Reply:
    """A review of an auto-tag below the threshold, or (`unsure` says why) a "Help me learn" question."""
    r = review
    why = f"I'm unsure: {unsure}" if unsure else "below the auto-tag threshold"
    return Reply(
        "Help me learn" if unsure else "Review this auto-tag",
        [
            f"**{r.label}**? score {r.score:.2f}, {why} · "
            f"[message]({jump_url(r.guild_id, r.channel_id, r.message_id)}) in <#{r.channel_id}> "
            f"by <@{r.author_id}>",
            quote(text),
            "Confirm it, pick the right label, or say it is not this: each answer teaches the bot.",
        ],
        footer=labelled_by(r.method),
        tone="busy",
    )


def render_review_answer(review: Review, moderator_id: int, label: str | None) -> str:
    answer = f"✅ tagged **{label}**" if label else f"❌ not **{review.label}**"
    return f"{answer} by <@{moderator_id}>"


PURGE_PROMPT = Reply(
    "Delete this server's moderation data?",
    [
        "This deletes every tag, training example (text and vectors), learned model, pending review, policy, "
        "auto-tagged message's scores, the label set, the auto-tagged channels and the settings of this server. "
        "It cannot be undone."
    ],
    tone="error",
)


def render_purged(deleted: dict[str, int]) -> Reply:
    return Reply(
        "Moderation data deleted",
        [
            f"Deleted {deleted.get('tags', 0)} tags, {deleted.get('labels', 0)} labels, "
            f"{deleted.get('watched_channels', 0)} auto-tagged channels, "
            f"{deleted.get('rejections', 0)} other answers, {deleted.get('reviews', 0)} pending reviews, "
            f"{deleted.get('label_models', 0)} learned models, {deleted.get('policies', 0)} policies "
            f"and the scores of {deleted.get('scored_messages', 0)} auto-tagged messages."
        ],
    )


# --- files -----------------------------------------------------------------------------------

BLURPLE, GREY = "#5865F2", "#99AAB5"


def _figure(width: float, rows: int) -> Any:
    """A figure for one bar per label (Agg: no display, no global pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, 1.2 + 0.35 * rows), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Any) -> bytes:
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


def _bars(axes: Any, labels: Sequence[str], values: Sequence[float], title: str, xlabel: str) -> None:
    bars = axes.barh([clip(label, 30) for label in labels], values, color=BLURPLE)
    axes.bar_label(bars, padding=3)
    axes.set_xlabel(xlabel)
    axes.set_title(title)
    axes.spines[["top", "right"]].set_visible(False)


def stats_chart(counts: Sequence[tuple[str, int]], days: int) -> bytes:
    """A horizontal bar chart of tags per label, as PNG bytes."""
    figure = _figure(6.4, len(counts))
    axes = figure.subplots()
    _bars(
        axes,
        [label for label, _ in reversed(counts)],
        [n for _, n in reversed(counts)],  # most used at the top
        f"Tags per label, last {days} days",
        "tags",
    )
    axes.xaxis.get_major_locator().set_params(integer=True)
    return _png(figure)


def report_chart(e: LabelEvaluation) -> bytes:
    """Examples per label, and per label how often each method is right on the held-out examples (PNG)."""
    figure = _figure(9.6, 2 * len(e.labels))
    examples, accuracy = figure.subplots(1, 2, sharey=True)
    labels = list(reversed(e.labels))  # the label set's first label at the top
    _bars(examples, labels, list(reversed(e.counts)), "Examples per label", "examples")
    examples.xaxis.get_major_locator().set_params(integer=True)
    rows = range(len(labels))
    for offset, name, recalls, color in (
        (0.2, "learned labels", e.learned_recall, BLURPLE),
        (-0.2, "zero-shot", e.zero_shot_recall, GREY),
    ):
        values = [100 * (r or 0.0) for r in reversed(recalls)]
        accuracy.barh([y + offset for y in rows], values, height=0.4, color=color, label=name)
    accuracy.set_xlim(0, 100)
    accuracy.set_xlabel("% right (cross-validated)")
    accuracy.set_title("Right per label")
    accuracy.legend(loc="lower right", fontsize="small")
    accuracy.spines[["top", "right"]].set_visible(False)
    return _png(figure)


def _cell(value: str) -> str:
    # A cell starting with = + - @ is run as a formula by spreadsheets: message text is untrusted.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")


def dataset_rows(tags: Sequence[tuple[Tag, str | None]]) -> list[dict[str, Any]]:
    """(tag, the embedding model of its kept vector) as the rows of the JSON Lines and Parquet exports:
    `confirmed` is a moderator's tag (a training example), not an auto-tag; `embedding_model` made the
    example's vector (auto-tags keep none); `time` is UTC."""
    return [
        dict(
            zip(
                JSONL_COLUMNS,
                (
                    t.text,
                    t.label,
                    not t.auto,
                    t.score,
                    t.method,
                    t.channel_id,
                    t.message_id,
                    datetime.fromtimestamp(t.created_at, timezone.utc).replace(microsecond=0),
                    model,
                ),
            )
        )
        for t, model in tags
    ]


def tags_jsonl(rows: Sequence[dict[str, Any]]) -> bytes:
    """dataset_rows as JSON Lines, `time` in ISO 8601."""
    return "".join(
        json.dumps(row | {"time": row["time"].isoformat()}, ensure_ascii=False) + "\n" for row in rows
    ).encode()


def tags_parquet(rows: Sequence[dict[str, Any]]) -> bytes:
    """dataset_rows as a Parquet file, with a fixed schema: an export of only auto-tags still types `text`."""
    import pyarrow as pa  # heavy: imported by the export only
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("text", pa.string()),
            ("label", pa.string()),
            ("confirmed", pa.bool_()),
            ("score", pa.float64()),
            ("method", pa.string()),
            ("channel_id", pa.int64()),
            ("message_id", pa.int64()),
            ("time", pa.timestamp("ms", tz="UTC")),  # Parquet has no seconds unit
            ("embedding_model", pa.string()),
        ]
    )
    out = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(list(rows), schema=schema), out)
    return out.getvalue()


def tags_csv(tags: Sequence[Tag]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for t in tags:
        writer.writerow(
            [
                _utc(t.created_at),
                t.channel_id,
                t.message_id,
                t.author_id,
                _cell(t.label),
                "" if t.score is None else f"{t.score:.4f}",
                t.method,
                t.tagged_by,
                "yes" if t.auto else "no",
                jump_url(t.guild_id, t.channel_id, t.message_id),
                _cell(t.text or ""),
            ]
        )
    return out.getvalue().encode("utf-8-sig")  # the BOM makes Excel read UTF-8
