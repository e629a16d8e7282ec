"""Tokenize: how a model's tokenizer splits a text (tokens, ids, special tokens)."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import ROLES
from .base import Request, check_choice, check_text

DEFAULT_ROLE = "sentiment"  # whose tokenizer /tokens shows unless told


@dataclass(frozen=True)
class TokenizeRequest(Request):
    task = "tokenize"
    text: str
    role: str = DEFAULT_ROLE  # whose tokenizer to show: a role's default model's

    def validate(self) -> None:
        check_text(self.text)
        check_choice(self.role, "model", ROLES)

    def model_role(self) -> str:
        return self.role


@dataclass(frozen=True)
class TokenizeResult:
    text: str
    tokens: list[str]
    ids: list[int]
    special: list[bool]  # per token: added by the tokenizer (e.g. [CLS]) rather than from the text
    decoded: str
    model: str
