"""Fill-mask: the model's best guesses for one masked word, written `[MASK]`, `<mask>` or `___`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InvalidInput
from .base import PipelineDetails, Request, check_number, check_text

MASK_PATTERN = re.compile(r"\[MASK\]|<mask>|_{3,}", re.IGNORECASE)
MAX_TOP_K = 10
DEFAULT_TOP_K = 5
MASKED, CAUSAL = "masked language model", "causal-LM infilling"  # how the candidates were found


def fill_in(text: str, word: str) -> str:
    """The text with its mask replaced by `word` (taken literally, not as a regex replacement)."""
    return MASK_PATTERN.sub(lambda _: word, text, count=1)


@dataclass(frozen=True)
class FillMaskRequest(Request):
    task = "fill_mask"
    text: str
    top_k: int = DEFAULT_TOP_K
    details: bool = False  # also return what the pipeline did (tokens, logits, softmax, id -> token)
    model: str = ""  # one of FILL_MASK_MODELS; "": the default

    def validate(self) -> None:
        check_text(self.text)
        check_number(self.top_k, "top_k", 1, MAX_TOP_K, integer=True)
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
