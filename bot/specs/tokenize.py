"""Tokenize: how a model's tokenizer splits a text (tokens, ids, special tokens)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..engine.request import Option, Request, check_text
from ..reply import Reply, clip, quote
from . import TEXT, Command, TaskSpec, register, roles

# Whose tokenizer: a role's default model's. Unless told, the first role's (in the order tasks load).
ROLE = Option("model", str, "Whose tokenizer", "", choices=lambda: tuple(roles()))


@dataclass(frozen=True)
class TokenizeRequest(Request):
    task = "tokenize"
    worker = "bot.engine.tasks.tokenize:TokenizeTask"
    text: str
    role: str = ROLE.default  # whose tokenizer to show: a role's default model's ("": the first role's)

    def validate(self) -> None:
        check_text(self.text)
        if self.role:
            ROLE.check(self.role)

    def model_role(self) -> str:
        return self.role or ROLE.values()[0]


@dataclass(frozen=True)
class TokenizeResult:
    text: str
    tokens: list[str]
    ids: list[int]
    special: list[bool]  # per token: added by the tokenizer (e.g. [CLS]) rather than from the text
    decoded: str
    model: str


def render(r: TokenizeResult) -> Reply:
    tokens = " │ ".join(f"**{t}**" if special else t for t, special in zip(r.tokens, r.special))
    specials = ", ".join(dict.fromkeys(t for t, special in zip(r.tokens, r.special) if special)) or "none"
    return Reply(
        f"Tokens ({len(r.ids)})",
        [quote(r.text)],
        fields=[
            ("Tokens", clip(tokens, 1024)),
            ("IDs", clip(" ".join(map(str, r.ids)), 1024)),
            ("Special tokens added", clip(specials, 1024)),
            ("Decoded back", clip(r.decoded, 1024)),
        ],
        footer=f"{r.model} tokenizer",
    )


register(
    TaskSpec(
        TokenizeRequest,
        TokenizeResult,
        render,
        commands=(
            Command(
                "tokens",
                "See how a model's tokenizer splits a text into tokens and ids.",
                (replace(TEXT, description="Any text"), ROLE),
                lambda settings, o: TokenizeRequest(o["text"], o["model"]),
                example={"text": "Tokenizers split words into pieces."},
            ),
        ),
    )
)
