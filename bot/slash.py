"""Slash commands built from their declared options (bot/engine/request.py `Option`), so a command's
options — name, type, default, range, choices, description — are written once, in its spec.

    class Translation(TaskCog):
        translate = slash_command("translate")

    setup = Translation.setup

Every command gets a `private` option; a `model:` option is autocompleted from its model list.
"""

from __future__ import annotations

import inspect
import keyword
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import discord
from discord import app_commands
from discord.ext import commands as ext

from .answers import answer
from .commands import PRIVATE, command, model_suggestions
from .engine.errors import InvalidInput
from .engine.request import Option
from .specs import Command, commands

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

    declared = [*options, PRIVATE]
    # An option named by a Python keyword (/translate from:) is a parameter `from_`, renamed back for Discord.
    parameter = {o.name: f"{o.name}_" if keyword.iskeyword(o.name) else o.name for o in declared}
    renamed = {parameter[o.name]: o.name for o in declared if parameter[o.name] != o.name}

    async def run(cog: Any, interaction: discord.Interaction, **values: Any) -> None:
        await callback(cog, interaction, **{renamed.get(name, name): value for name, value in values.items()})

    parameters = [
        inspect.Parameter("cog", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        inspect.Parameter("interaction", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=discord.Interaction),
        *(
            inspect.Parameter(
                parameter[o.name],
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
    if renamed:
        app_commands.rename(**renamed)(slash)
    app_commands.describe(**{parameter[o.name]: o.description for o in declared})(slash)
    chosen = {
        parameter[o.name]: [app_commands.Choice(name=str(v).replace("_", "-"), value=v) for v in o.values()]
        for o in options
    }
    app_commands.choices(**{name: choices for name, choices in chosen.items() if choices})(slash)
    models = {parameter[o.name]: suggest_models for o in options if o.models}
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


@dataclass(frozen=True)
class MessageMenu:
    """A message context menu that runs a task command on the message: its text fills the option `text`,
    `given` fills options from the interaction (e.g. the member's language), the command's other required
    options are asked in a modal (one text input each; none: no modal), and the rest take their defaults.
    A TaskCog lists its menus in `menus`."""

    name: str  # what the menu shows, e.g. "Ask about this message"
    command: str
    text: str
    private: bool = False  # only the member who asked sees the answer
    given: Callable[[discord.Interaction], dict[str, Any]] | None = None

    def context_menu(self, bot: Any) -> app_commands.ContextMenu:
        async def run(interaction: discord.Interaction, message: discord.Message) -> None:
            if not message.content.strip():
                raise InvalidInput("That message has no text to read (images, files and embeds are not read).")
            given = {self.text: message.content, **(self.given(interaction) if self.given else {})}
            asked = [o for o in command(self.command).options if o.required and o.name not in given]
            if asked:
                await interaction.response.send_modal(OptionsModal(bot, self, asked, given))
            else:
                await answer(bot, interaction, self.command, given, self.private)

        return app_commands.ContextMenu(name=self.name, callback=run)


class OptionsModal(discord.ui.Modal):
    """Asks a menu's command for its options a message can't give; submitting answers the command."""

    def __init__(self, bot: Any, menu: MessageMenu, asked: Sequence[Option], given: dict[str, Any]) -> None:
        super().__init__(
            title=menu.name[:45]
        )  # Discord's limits: a title 45 characters, a label or placeholder 45 / 100
        self.bot, self.menu, self.given = bot, menu, given
        self.inputs = {option.name: self._text_input(option) for option in asked}
        for text_input in self.inputs.values():
            self.add_item(text_input)

    @staticmethod
    def _text_input(option: Option) -> discord.ui.TextInput:
        hint = f"One of: {', '.join(map(str, option.values()))}" if option.choices else option.description
        long = option.kind is str and (option.high or 0) > 100
        return discord.ui.TextInput(
            label=option.name.replace("_", " ")[:45],
            placeholder=hint[:100],
            style=discord.TextStyle.paragraph if long else discord.TextStyle.short,
            max_length=min(int(option.high), 4000) if option.kind is str and option.high else None,
        )

    async def on_submit(self, interaction: discord.Interaction) -> None:
        typed = {
            name: typed_value(command(self.menu.command), name, field.value) for name, field in self.inputs.items()
        }
        await answer(self.bot, interaction, self.menu.command, {**self.given, **typed}, self.menu.private)

    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:
        await interaction.client.on_app_command_error(interaction, error)  # the commands' one error handler


def typed_value(declared: Command, name: str, raw: str) -> Any:
    """A modal's text as the option's type; text that isn't one is left for the option's own check to refuse."""
    kind = next(option.kind for option in declared.options if option.name == name)
    try:
        return kind(raw) if kind in (int, float) else raw
    except ValueError:
        return raw


class TaskCog(ext.Cog):
    """A cog of commands declared elsewhere: it holds the bot, and `setup` is its extension entry point
    (`setup = MyCog.setup` in the cog's module). Its `menus` are added to the bot's tree with it."""

    menus: ClassVar[tuple[MessageMenu, ...]] = ()

    def __init__(self, bot: Any) -> None:
        self.bot = bot
        self.context_menus = [menu.context_menu(bot) for menu in self.menus]

    @classmethod
    async def setup(cls, bot: Any) -> None:
        await bot.add_cog(cls(bot))

    async def cog_load(self) -> None:
        for menu in self.context_menus:  # discord.py has no context menus in a cog's body: added by hand
            self.bot.tree.add_command(menu)

    async def cog_unload(self) -> None:
        for menu in self.context_menus:
            self.bot.tree.remove_command(menu.name, type=menu.type)


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
