"""Sentence similarity (feature extraction): the cosine similarity of every pair of two to ten texts,
from mean-pooled sentence embeddings."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..engine.errors import InvalidInput
from ..engine.request import Option, Request, check_text, estimate_tokens, split_sentences
from ..reply import Reply, clip, quote
from . import DETAILS, MODEL, TEXT, Command, TaskSpec, register
from .zero_shot import EMBEDDING

MIN_TEXTS, MAX_TEXTS = 2, 10
POOLING = "mean pooling"  # of the last hidden states over the text's tokens, as sentence-transformers does
NEAREST = Option("top_k", int, "How many stored messages to show", 5, low=1, high=10)


@dataclass(frozen=True)
class SimilarityRequest(Request):
    task = "similarity"
    worker = "bot.engine.tasks.similarity:SimilarityTask"
    texts: tuple[str, ...]
    details: bool = False  # also return each text's token count and embedding norm
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
class EmbeddingDetails:
    tokens: int  # as the model read it (special tokens included; a long text is cut)
    norm: float  # of the pooled embedding before it is scaled to length 1 for the cosine
    dims: int


@dataclass(frozen=True)
class SimilarityResult:
    texts: list[str]
    similarity: list[list[float]]  # cosine similarity, row i / column j: texts i and j
    model: str
    details: list[EmbeddingDetails] | None = None


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
    fields = [("Cosine similarity", clip("```\n" + "\n".join([header, *rows]) + "\n```", 1024))]
    if r.details:
        each = [f"**#{k + 1}** {d.tokens} tokens · norm {d.norm:.3f} · {d.dims} dims" for k, d in enumerate(r.details)]
        fields.append((f"Embeddings ({POOLING}, then scaled to length 1)", clip("\n".join(each), 1024)))
    return Reply("Similarity", lines, fields=fields, footer=f"{r.model} · {POOLING}")


@dataclass(frozen=True)
class NearestRequest(Request):
    """A message's stored neighbours: the cosine of its embedding with vectors the moderation store keeps
    (float32 bytes with the model that made each; only those of the model that embeds it are compared)."""

    task = "nearest"
    worker = "bot.engine.tasks.similarity:NearestTask"
    text: str
    vectors: tuple[tuple[bytes, str], ...]  # (vector, vector_model)
    top_k: int = NEAREST.default

    def validate(self) -> None:
        check_text(self.text, "message")
        NEAREST.check(self.top_k)

    def model_role(self) -> str:
        return EMBEDDING.name


@dataclass(frozen=True)
class NearestResult:
    nearest: list[tuple[int, float]]  # (index into the request's vectors, cosine), closest first
    compared: int  # vectors of the embedding model's, the ones compared
    model: str


register(
    TaskSpec(
        SimilarityRequest,
        SimilarityResult,
        render,
        commands=(
            Command(
                "similar",
                "How alike are some texts? The cosine similarity of their sentence embeddings, two to ten texts.",
                (
                    replace(TEXT, name="texts", description="Two to ten texts, separated by | or new lines"),
                    replace(DETAILS, description="Show each text's token count, embedding norm and size"),
                    MODEL,
                ),
                lambda settings, o: SimilarityRequest(tuple(split_sentences(o["texts"])), o["details"], o["model"]),
                role=EMBEDDING.name,
                compare="texts",
                example={"texts": "A cat sleeps on the sofa | A kitten naps on the couch | Stock prices fell today"},
            ),
        ),
    )
)
register(TaskSpec(NearestRequest, NearestResult))  # no command of its own: the moderators' menu shows it
