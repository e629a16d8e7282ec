"""Task specs: what each task is, declared once, in one torch-free module per task (this package).

A spec names its request and result types, the model roles it runs on (with each profile's default
model), the commands members use (their options, how options become a request, whether /compare
takes them) and how its result renders. Its worker class is named by the request (`Request.worker`)
and imported in the worker process only. Everything else — settings, the cogs' forms, the console,
validation, /compare, /tokens — reads this registry; nothing outside a task's own files lists tasks.

Like transformers' `SUPPORTED_TASKS`, but filled by the modules themselves: `register(...)` at import,
and every module of this package is imported the first time the registry is read.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..engine.config import list_setting_name, setting_name
from ..engine.request import MAX_TEXT_CHARS, Option, Request

if TYPE_CHECKING:
    from ..reply import Reply
    from ..settings import Settings

Options = Mapping[str, Any]


@dataclass(frozen=True)
class Role:
    """A kind of model a task runs on, configured by ROLE_MODEL and ROLE_MODELS (e.g. FILL_MASK_MODEL)."""

    name: str
    online: str  # the online profile's default: a Hub id
    offline: str = ""  # the offline profile's: weights a package ships (`package:NAME`), or "" for none
    offline_choices: tuple[str, ...] = ()  # more models the offline profile lists, so /compare has two
    # The online default where a CUDA GPU runs the models ("": `online` there too); each device lists the other's next.
    online_gpu: str = ""
    online_choices: tuple[
        str, ...
    ] = ()  # more models the online profile lists (a seq2seq generator, one opus-mt per pair)
    decoder: bool = False  # its models generate text: on a CPU they stay in float32 (registry.resolve_dtype)
    description: str = ""  # one line for .env.example

    def defaults(self, offline: bool, gpu: bool) -> tuple[str, ...]:
        """The models this role lists where no setting names any, its default first: on the offline profile the
        packaged ones; on the online profile the one for this device (`gpu`: a CUDA GPU runs the models)."""
        if offline:
            return (self.offline, *self.offline_choices)
        by_device = (self.online_gpu, self.online) if gpu else (self.online, self.online_gpu)
        return tuple(model for model in by_device if model) + self.online_choices

    @property
    def setting(self) -> str:
        return setting_name(self.name)

    @property
    def list_setting(self) -> str:
        return list_setting_name(self.name)


@dataclass(frozen=True)
class Command:
    """A command members use: /NAME with `options`; `build(settings, values)` makes its request from
    the options' values (every option present, defaults filled in)."""

    name: str
    description: str
    options: tuple[Option, ...]
    build: Callable[[Settings, Options], Request]  # the values hold what the caller adds too (e.g. history)
    role: str | Callable[[Options, Settings], str] = ""  # whose model list `model:` picks from
    compare: str = ""  # the text option /compare fills; "": /compare does not take this command
    compare_options: Options | None = None  # fixed values when compared (e.g. greedy decoding)
    compare_note: str = ""  # what /compare's footer says of them
    cooldown: tuple[int, float] | None = None  # (uses, seconds) per member, for the expensive ones
    example: Options | None = None  # options that show what it does (the console's help, the contract test)

    def model_role(self, options: Options, settings: Settings) -> str:
        return self.role(options, settings) if callable(self.role) else self.role


@dataclass(frozen=True)
class Streaming:
    """How a streaming task's answer looks while it is written, and what its Regenerate and Continue
    buttons ask for (bot/answers.py). Its result has `prompt`, `texts` (one per sequence),
    `finish_reasons` ("length": it stopped at its length limit, so it can go on) and `new_tokens` (the
    tokens each sequence wrote: the generated-tokens metric)."""

    partial: Callable[[Any, str, bool], Reply]  # (request, text so far, stopped by its member)
    again: Callable[[Any], Request]  # Regenerate: a new sample of the same request
    go_on: Callable[[Any, str], Request] | None = None  # Continue from the text so far; None: no Continue
    # An answer shown as a conversation's turn: (reply, request, first of the conversation, how to go on).
    turn: Callable[[Reply, Any, bool, str], Reply] | None = None


@dataclass(frozen=True)
class TaskSpec:
    """One task: its typed request and result, its roles and commands, how its result renders."""

    request: type[Request]
    result: type
    render: Callable[[Any], Reply] | None = None  # None: shown by the feature that uses it (moderation)
    roles: tuple[Role, ...] = ()
    commands: tuple[Command, ...] = ()
    streaming: Streaming | None = None  # set exactly when the request `streams`

    @property
    def name(self) -> str:
        return self.request.task


_SPECS: dict[str, TaskSpec] = {}
_loaded = False


def register(spec: TaskSpec) -> TaskSpec:
    if spec.name in _SPECS and _SPECS[spec.name] is not spec:
        raise ValueError(f"Two specs register the task {spec.name!r}")
    _SPECS[spec.name] = spec
    return spec


def specs() -> tuple[TaskSpec, ...]:
    """Every task, each module of this package imported once."""
    global _loaded
    if not _loaded:
        for module in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{module.name}")
        _loaded = True
    return tuple(_SPECS[name] for name in sorted(_SPECS))  # one order, however the modules were first imported


def spec(task: str) -> TaskSpec:
    """The task's spec; KeyError for a task no spec registers."""
    return {s.name: s for s in specs()}[task]


def spec_of_result(result: object) -> TaskSpec:
    return next(s for s in specs() if isinstance(result, s.result))


def commands() -> dict[str, Command]:
    """Command name -> its declaration, for every task."""
    return {command.name: command for s in specs() for command in s.commands}


def roles() -> dict[str, Role]:
    """Role name -> its declaration; a role several tasks run on is declared once, by one of them."""
    found: dict[str, Role] = {}
    for s in specs():
        for role in s.roles:
            found.setdefault(role.name, role)
    return found


# Options many commands share; a command adjusts a description with dataclasses.replace.
TEXT = Option("text", str, "The text", low=1, high=MAX_TEXT_CHARS)
DETAILS = Option("details", bool, "Show what the pipeline did: tokens, logits, softmax, id2label", default=False)
MODEL = Option("model", str, "Which model answers (the list shows this bot's; empty: the default)", "", models=True)
