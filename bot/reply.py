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


def split_text(text: str, limit: int) -> list[str]:
    """`text` in pieces of at most `limit` characters that join back into it, each ending at a line or word
    end where there is one in its second half. A piece never changes once the text has grown past it."""
    pieces = []
    while len(text) > limit:
        cut = max(text.rfind("\n", 0, limit), text.rfind(" ", 0, limit)) + 1
        if cut <= limit // 2:  # one very long word: cut it
            cut = limit
        pieces.append(text[:cut])
        text = text[cut:]
    return [*pieces, text]


def paginate(reply: Reply, limit: int = DESCRIPTION_LIMIT) -> list[Reply]:
    """A reply too long for one message as several: each with the title and a piece of the text, the fields
    on the first, the footer on the last."""
    pieces = split_text(reply.text, limit)
    return [
        Reply(
            reply.title,
            [piece],
            reply.fields if number == 0 else [],
            reply.footer if number == len(pieces) - 1 else "",
            reply.tone,
            reply.side_by_side,
        )
        for number, piece in enumerate(pieces)
    ]


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
