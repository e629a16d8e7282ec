"""The permissions each feature needs: declared once (bot/permissions.py), and the README's invite list written
from that declaration."""

from __future__ import annotations

import discord

from bot.permissions import COMMANDS, FEATURES, every_permission, invite_list, missing, names

from .conftest import REPO_ROOT


def test_the_readme_invite_list_is_the_declaration():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert invite_list() in readme, "README.md's invite list differs: paste bot.permissions.invite_list() into it"
    for feature in FEATURES:  # each feature, by name, with what it adds to the minimum
        added = feature.permissions if feature is COMMANDS else missing(feature.permissions, COMMANDS.permissions)
        assert f"{feature.name}: **{'**, **'.join(names(added))}**" in readme
    assert f"`permissions=` is {COMMANDS.permissions.value} for the minimum, {every_permission().value}" in readme


def test_permissions_are_named_as_discord_names_them():
    asked = discord.Permissions(view_channel=True, send_messages_in_threads=True, read_message_history=True)
    assert names(asked) == ["View Channel", "Read Message History", "Send Messages in Threads"]
    have = discord.Permissions(view_channel=True)
    assert names(missing(asked, have)) == ["Read Message History", "Send Messages in Threads"]
