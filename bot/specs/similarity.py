"""Sentence similarity (feature extraction): the cosine similarity of every pair of two to ten texts,
from mean-pooled sentence embeddings."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..engine.errors import InvalidInput
from ..engine.request import Request, check_text, estimate_tokens, split_sentences
from ..reply import Reply, clip, quote
from . import MODEL, TEXT, Command, TaskSpec, register
from .zero_shot import EMBEDDING

MIN_TEXTS, MAX_TEXTS = 2, 10


@dataclass(frozen=True)
class SimilarityRequest(Request):
    task = "similarity"
    worker = "bot.engine.tasks.similarity:SimilarityTask"
    texts: tuple[str, ...]
    model: str = ""  # one of EMBEDDING_MODELS; "": the default

    def validate(self) -> None:
        for text in self.texts:
            check_text(text)
        if not MIN_TEXTS <= len(self.texts) <= MAX_TEXTS:
            raise InvalidInput(
                f"That is {len(self.texts)} text{'s' * (len(self.texts) != 1)}; give me {MIN_TEXTS} to {MAX_TEXTS}, "
                "separated by | or new lines (e.g. `A cat sleeps | A kitten naps`)."
            )

    def model_role(self) -> str:
        return EMBEDDING.name

    def cost(self) -> int:
        return sum(estimate_tokens(t) for t in self.texts)

    def rows(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class SimilarityResult:
    texts: list[str]
    similarity: list[list[float]]  # cosine similarity, row i / column j: texts i and j
    model: str


def render(r: SimilarityResult) -> Reply:
    n = len(r.texts)
    header = "    " + "".join(f"{f'#{j + 1}':>6}" for j in range(n))
    rows = [f"{f'#{i + 1}':<4}" + "".join(f"{value:>6.2f}" for value in row) for i, row in enumerate(r.similarity)]
    closest = max(((i, j) for i in range(n) for j in range(i + 1, n)), key=lambda p: r.similarity[p[0]][p[1]])
    i, j = closest
    lines = [
        *(f"**#{k + 1}** {quote(text, 120)}" for k, text in enumerate(r.texts)),
        "",
        f"Closest: **#{i + 1}** and **#{j + 1}** ({r.similarity[i][j]:.2f})",
    ]
    matrix = clip("```\n" + "\n".join([header, *rows]) + "\n```", 1024)
    return Reply("Similarity", lines, fields=[("Cosine similarity", matrix)], footer=f"{r.model} · mean pooling")


register(
    TaskSpec(
        SimilarityRequest,
        SimilarityResult,
        render,
        commands=(
            Command(
                "similar",
                "How alike are some texts? The cosine similarity of their sentence embeddings, two to ten texts.",
                (replace(TEXT, name="texts", description="Two to ten texts, separated by | or new lines"), MODEL),
                lambda settings, o: SimilarityRequest(tuple(split_sentences(o["texts"])), model=o["model"]),
                role=EMBEDDING.name,
                compare="texts",
                example={"texts": "A cat sleeps on the sofa | A kitten naps on the couch | Stock prices fell today"},
            ),
        ),
    )
)
