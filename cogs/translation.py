"""/translate, as its spec (bot/specs/translation.py) declares it, and the "Translate" message menu: the
message's text into the language of the member's Discord client (English where that one is not listed)."""

from __future__ import annotations

import discord

from bot.slash import MessageMenu, TaskCog, slash_command
from bot.specs.translation import LANGUAGES


def reader_language(locale: discord.Locale) -> str:
    """The language a member reads, from their client's locale (e.g. "pt-BR" -> Portuguese)."""
    return LANGUAGES.get(str(locale.value).split("-")[0], LANGUAGES["en"])


class Translation(TaskCog):
    translate = slash_command("translate")
    # Only the member who asked sees it: it is in their language.
    menus = (
        MessageMenu(
            "Translate", "translate", text="text", private=True, given=lambda i: {"to": reader_language(i.locale)}
        ),
    )


setup = Translation.setup
