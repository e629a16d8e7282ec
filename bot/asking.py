"""The "Help me learn" questions without Discord: which scored messages the bot is unsure of, and the server's learning
state as /learn status shows it. cogs/asking.py asks; the review queue (cogs/reviews.py) takes the answers."""

from __future__ import annotations

from .reply import Reply, bar
from .specs.learned_labels import LabelMessageResult
from .storage import GuildConfig, LabelModel

UNSURE_MARGIN = 0.1  # top two labels closer than this: the bot can't tell them apart


def unsure(result: LabelMessageResult) -> str | None:
    """Why the bot is unsure of a message's labels (learned labels and zero-shot disagree, or the top two labels
    are close), or None when it is sure enough not to ask."""
    top = result.labels[0]
    if result.zero_shot_label is not None and result.zero_shot_label != top:
        return f"learned labels say **{top}**, zero-shot says **{result.zero_shot_label}**"
    if len(result.labels) > 1 and result.scores[0] - result.scores[1] < UNSURE_MARGIN:
        return (
            f"**{top}** {result.scores[0]:.2f} and **{result.labels[1]}** {result.scores[1]:.2f} "
            "are too close to tell apart"
        )
    return None


def render_learning(
    config: GuildConfig,
    counts: dict[str, int],
    model: LabelModel | None,
    embedding_model: str,
    min_examples: int,
    asked: int,
    per_day: int,
) -> Reply:
    """The server's learning state: examples per label against what learning needs, the learned model, and
    how many questions the bot asked in the last 24 hours."""
    learned = set(model.head.labels) if model is not None and model.fits(config, embedding_model) else set()
    width = max((len(label.name) for label in config.labels), default=0)
    lines = [
        f"`{label.name.ljust(width)} {bar(min(n, min_examples) / min_examples)}` {n} examples · "
        + ("learned" if label.name in learned else f"zero-shot until {min_examples}")
        for label in config.labels
        for n in [counts.get(label.name.casefold(), 0)]
    ] or ["No labels yet. Add some with /labelset add."]
    if model is not None and learned:
        lines.append(f"\nLast trained on {model.examples} examples <t:{int(model.trained_at)}:R>.")
    if per_day == 0:
        asking = "off on this bot (its owner set ASK_PER_DAY=0)"
    elif config.ask:
        asking = f"on · {asked} of {per_day} questions in the last 24 hours"
    else:
        asking = "off for this server (turn it on with /learn ask enabled:True)"
    fields = [("Help me learn", asking)]
    return Reply("Learning", lines, fields=fields, footer=embedding_model, tone="info")
