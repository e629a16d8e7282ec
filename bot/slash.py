"""Slash commands built from their declared options (bot/engine/request.py `Option`), so a command's
options — name, type, default, range, choices, description — are written once, in its spec.

    class Translation(TaskCog):
        translate = slash_command("translate")

    setup = Translation.setup

Every command gets a `private` option; a `model:` option is autocompleted from its model list.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands as ext

from .answers import answer
from .commands import PRIVATE, command, model_suggestions
from .engine.request import Option
from .specs import commands

Callback = Callable[..., Awaitable[None]]  # (cog, interaction, **options)


def annotation(option: Option) -> Any:
    """The type discord.py reads: a Range where the option has one, Optional where its default is None."""
    kind: Any = option.kind
    if option.kind is not bool and not option.choices and (option.low is not None or option.high is not None):
        bound = int if kind is str else kind  # a text's bounds are lengths; a number's are of its own type
        low, high = (None if value is None else bound(value) for value in (option.low, option.high))
        kind = app_commands.Range[kind, low, high]
    return kind | None if option.default is None else kind


def build(
    name: str,
    description: str,
    options: Sequence[Option],
    callback: Callback,
    cooldown: tuple[int, float] | None = None,
) -> app_commands.Command:
    """A slash command for a cog's class body: `callback(cog, interaction, **options)` gets every option."""

    async def run(cog: Any, interaction: discord.Interaction, **values: Any) -> None:
        await callback(cog, interaction, **values)

    declared = [*options, PRIVATE]
    parameters = [
        inspect.Parameter("cog", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        inspect.Parameter("interaction", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=discord.Interaction),
        *(
            inspect.Parameter(
                o.name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=annotation(o),
                **({} if o.required else {"default": o.default}),
            )
            for o in declared
        ),
    ]
    run.__signature__ = inspect.Signature(parameters)  # what discord.py reads the options from
    run.__qualname__ = f"Cog.{name}"  # a method: the cog comes first
    slash = app_commands.Command(name=name, description=description, callback=run)
    app_commands.describe(**{o.name: o.description for o in declared})(slash)
    chosen = {
        o.name: [app_commands.Choice(name=str(v).replace("_", "-"), value=v) for v in o.values()] for o in options
    }
    app_commands.choices(**{name: choices for name, choices in chosen.items() if choices})(slash)
    models = {o.name: suggest_models for o in options if o.models}
    if models:
        app_commands.autocomplete(**models)(slash)
    if cooldown:
        app_commands.checks.cooldown(*cooldown, key=lambda interaction: interaction.user.id)(slash)
    return slash


def slash_command(name: str, callback: Callback | None = None) -> app_commands.Command:
    """A task's command as declared in its spec; by default answered by `answers.answer`."""
    declared = command(name)

    async def answered(cog: Any, interaction: discord.Interaction, private: bool = False, **options: Any) -> None:
        await answer(cog.bot, interaction, name, options, private)

    return build(name, declared.description, declared.options, callback or answered, declared.cooldown)


class TaskCog(ext.Cog):
    """A cog of commands declared elsewhere: it holds the bot, and `setup` is its extension entry point
    (`setup = MyCog.setup` in the cog's module)."""

    def __init__(self, bot: Any) -> None:
        self.bot = bot

    @classmethod
    async def setup(cls, bot: Any) -> None:
        await bot.add_cog(cls(bot))


async def suggest_models(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    """Autocomplete of every `model:` option: the allowed models of the command's role (for /compare,
    of the task picked so far). Free text still reaches the engine, which checks it."""
    options = {name: value for name, value in interaction.namespace}  # (dict() would call its missing .keys)
    name = interaction.command.name if interaction.command else ""
    declared = commands().get((options.get("task") or "") if name == "compare" else name)
    if declared is None:
        return []
    settings = interaction.client.settings
    role = declared.model_role(options, settings)
    return [app_commands.Choice(name=model, value=model) for model in model_suggestions(settings, role, current)]
