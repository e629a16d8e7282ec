"""A front-end-neutral answer (`Reply`) and the small text helpers every renderer shares.

Specs render their results into a Reply; the Discord client draws it as an embed, the console as a panel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .engine.request import PipelineDetails

DESCRIPTION_LIMIT = 4096  # Discord's embed description limit; the console keeps to it too


@dataclass
class Reply:
    """A title, body lines, named fields and a footer."""

    title: str
    lines: list[str] = field(default_factory=list)
    fields: list[tuple[str, str]] = field(default_factory=list)
    footer: str = ""
    tone: str = "ok"  # ok | error | busy | info: the front end picks a colour
    side_by_side: bool = False  # fields next to each other (/compare), not one under the other

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def bar(score: float, width: int = 10) -> str:
    filled = round(max(0.0, min(1.0, score)) * width)
    return "█" * filled + "░" * (width - filled)


def clip(text: str, limit: int) -> str:
    """Cut text to `limit` characters with a visible note, never mid-way silently."""
    if len(text) <= limit:
        return text
    note = "… [cut: {} more characters]"
    keep = limit - len(note.format(len(text)))  # the count never has more digits than the length
    return text[:keep] + note.format(len(text) - keep)


def quote(text: str, limit: int = 200) -> str:
    return "“" + clip(" ".join(text.split()), limit) + "”"


def render_details(text: str, d: PipelineDetails) -> list[tuple[str, str]]:
    """Tokens, then logits -> softmax per class id with its label: the pipeline on the user's own sentence."""
    classes = "\n".join(
        f"`{i}` {label}: logit {logit:+.3f} → {p:.3f}"
        for (i, label), logit, p in zip(d.id2label.items(), d.logits, d.probabilities)
    )
    return [
        (f"Tokens ({len(d.tokens)}) of {clip(text, 60)}", clip(" │ ".join(d.tokens), 300)),
        ("id2label: logits → softmax", clip(f"{classes}\nlogits: {d.logits_are}", 1024)),
    ]
