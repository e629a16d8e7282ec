"""/compare: one input through two models of the same task, side by side, with how long each ran.

Any task command that names its text option (`Command.compare`) can be compared; options it requires
besides the text (e.g. /label's labels) become optional options of /compare.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from .answering import QUEUE_INTERVAL, Answering, Screen
from .commands import build_request, check_usage, command, render_error, render_result
from .engine import EngineError, Request
from .engine.config import list_setting_name
from .engine.errors import InvalidInput
from .engine.request import MAX_TEXT_CHARS, Option
from .reply import Reply, quote
from .settings import Settings
from .specs import commands

DESCRIPTION = "Run one input through two models of the same task and see them side by side."
COOLDOWN = (3, 30.0)  # two requests each
Answer = tuple[str, Any, float | None]  # (model, result or EngineError, seconds it ran)


def compared() -> dict[str, str]:
    """Command -> its text option, for the commands /compare takes."""
    return {name: declared.compare for name, declared in commands().items() if declared.compare}


@cache
def options() -> tuple[Option, ...]:
    extra = {
        option.name: Option(option.name, option.kind, f"task: {name} only: {option.description}", None)
        for name, text in compared().items()
        for option in command(name).options
        if option.required and option.name != text
    }
    return (
        Option("task", str, "What the models do", choices=tuple(compared())),
        Option(
            "text",
            str,
            "The text (for generate: the prompt; for fill: a sentence with one [MASK], <mask> or ___)",
            low=1,
            high=MAX_TEXT_CHARS,
        ),
        Option("model_a", str, "The first model (empty: the task's default)", "", models=True),
        Option("model_b", str, "The second model (empty: the next one in the list)", "", models=True),
        *extra.values(),
    )


def build_comparison(settings: Settings, **given: Any) -> tuple[Request, Request]:
    """Two validated requests, equal but for the model; left out, the models are the role's first two."""
    check_usage("compare", options(), given)
    task = given["task"]
    options()[0].check(task)
    declared = command(task)
    values = {declared.compare: given["text"], **(declared.compare_options or {})}
    for option in options()[4:]:
        value = given.get(option.name)
        if option.name in {o.name for o in declared.options}:
            if value is None:
                raise InvalidInput(f"Comparing {task} needs {option.name}: too ({option.description}).")
            values[option.name] = value
        elif value is not None:
            owners = " or ".join(name for name in compared() if option.name in {o.name for o in command(name).options})
            raise InvalidInput(
                f"{option.name}: is for task: {owners} only; /compare task: {task} takes the text alone."
            )
    role = declared.model_role(values, settings)
    allowed = settings.engine.allowed(role)
    first = given.get("model_a") or next(iter(allowed), "")
    second = given.get("model_b") or next((model for model in allowed if model != first), "")
    if not (first and second):
        raise InvalidInput(
            f"Comparing needs two {role.replace('_', '-')} models, and this bot has {len(allowed)} "
            f"({', '.join(allowed) or 'none'}). An operator can list more in {list_setting_name(role)}."
        )
    if first == second:
        raise InvalidInput(f"Both sides are '{first}'. Pick two different models to compare.")
    return (
        build_request(task, {**values, "model": first}, settings),
        build_request(task, {**values, "model": second}, settings),
    )


async def comparison_answers(
    answering: Answering, screen: Screen, queue_interval: float = QUEUE_INTERVAL
) -> list[Answer]:
    """Follow both; a model that fails answers with its error, in its own column."""
    outcomes = await answering.follow(screen, queue_interval)
    return [(r.chosen_model(), o, j.run_seconds()) for r, o, j in zip(answering.requests, outcomes, answering.jobs)]


def render_comparison(task: str, text: str, answers: list[Answer]) -> Reply:
    fields = []
    for model, outcome, seconds in answers:
        reply = render_error(outcome) if isinstance(outcome, EngineError) else render_result(outcome)
        took = f" · {seconds:.2f} s" if seconds is not None else ""
        body = [line for line in reply.lines if line and line != quote(text)]
        fields.append((f"{model}{took}", "\n".join([*body, *(f"{name}: {value}" for name, value in reply.fields)])))
    note = command(task).compare_note
    return Reply(
        f"Compare: {task}",
        [quote(text)],
        fields=fields,
        side_by_side=True,
        footer="seconds: the model's own run, loading it included the first time" + (f" · {note}" if note else ""),
    )
