"""Named entities (token classification): who, where and what a text names, grouped from token tags by
the pipeline's aggregation strategies, or each token's own tag (`none`)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..engine.request import Option, Request, check_text
from ..reply import Reply, bar, clip, quote
from . import DETAILS, MODEL, TEXT, Command, Role, TaskSpec, register

# transformers' AggregationStrategy values: how token tags become entities.
AGGREGATION = Option(
    "aggregation",
    str,
    "How word pieces become entities: simple, first, average, max; none: each token's own tag",
    "simple",
    choices=("simple", "first", "average", "max", "none"),
)
DETAILED_TOKENS = 40  # `details` lists at most this many tokens (an embed field holds 1024 characters)


@dataclass(frozen=True)
class NerRequest(Request):
    task = "ner"
    worker = "bot.engine.tasks.ner:NerTask"
    text: str
    aggregation: str = AGGREGATION.default
    details: bool = False  # also return each token's tag, logit and softmax
    model: str = ""  # one of NER_MODELS; "": the default

    def validate(self) -> None:
        check_text(self.text)
        AGGREGATION.check(self.aggregation)


@dataclass(frozen=True)
class Entity:
    text: str  # as it stands in the text
    type: str  # PER, LOC, ORG, MISC... (with aggregation none: the token's own tag, e.g. B-PER)
    score: float
    start: int  # character offsets into the text
    end: int


@dataclass(frozen=True)
class TokenTag:
    token: str
    tag: str  # the best label
    logit: float
    probability: float  # its softmax


@dataclass(frozen=True)
class NerResult:
    text: str
    entities: list[Entity]
    aggregation: str
    model: str
    truncated: bool = False  # the text was longer than the model reads: entities come from its start
    details: list[TokenTag] | None = None


def marked(text: str, entities: list[Entity]) -> str:
    """The text with each entity in bold and typed: **Paris** `LOC`."""
    out, at = [], 0
    for entity in sorted(entities, key=lambda e: e.start):
        if entity.start < at:
            continue  # overlapping (aggregation none on word pieces): the first one is marked
        out += [text[at : entity.start], f"**{text[entity.start : entity.end]}** `{entity.type}`"]
        at = entity.end
    return "".join([*out, text[at:]])


def render(r: NerResult) -> Reply:
    found = [f"`{e.type:<6}` `{bar(e.score)}` {e.score:.2f} — {quote(e.text, 80)}" for e in r.entities]
    lines = [clip(marked(r.text, r.entities), 2000), "", *(found or ["No entities found."])]
    fields = []
    if r.details:
        rows = [f"{t.token} → {t.tag} (logit {t.logit:+.2f}, p {t.probability:.2f})" for t in r.details]
        more = f"\n… and {len(r.details) - DETAILED_TOKENS} more" if len(r.details) > DETAILED_TOKENS else ""
        fields.append(("Each token's best tag: logit → softmax", clip("\n".join(rows[:DETAILED_TOKENS]) + more, 1024)))
    note = " · the text was cut to what the model reads" if r.truncated else ""
    return Reply("Named entities", lines, fields=fields, footer=f"{r.model} · aggregation {r.aggregation}{note}")


ROLE = Role(
    "ner",
    online="dslim/bert-base-NER",
    description="a token-classification model (CoNLL-03 tags: PER, LOC, ORG, MISC); the offline profile has none",
)

register(
    TaskSpec(
        NerRequest,
        NerResult,
        render,
        roles=(ROLE,),
        commands=(
            Command(
                "ner",
                "Find the names in a text: people, places, organisations (named-entity recognition).",
                (
                    replace(TEXT, description="The text to look for names in"),
                    AGGREGATION,
                    replace(DETAILS, description="Show each token's tag, logit and softmax"),
                    MODEL,
                ),
                lambda settings, o: NerRequest(o["text"], o["aggregation"], o["details"], model=o["model"]),
                role=ROLE.name,
                compare="text",
                example={"text": "Ada Lovelace worked with Charles Babbage in London."},
            ),
        ),
    )
)
