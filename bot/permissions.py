"""The channel permissions each feature needs, declared once. The README's invite list is written from this
(a test keeps the two equal); conversations check it before they answer, and /status lists, for moderators,
what the bot is missing in the channel it is asked in."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from functools import reduce

import discord

Permissions = discord.Permissions


@dataclass(frozen=True)
class Feature:
    name: str
    permissions: Permissions
    what: str  # what the permissions are for, one line


COMMANDS = Feature(
    "Slash commands (the minimum)",
    Permissions(view_channel=True, send_messages=True, embed_links=True),
    "every command's answer is an embed",
)
CONVERSATIONS = Feature(
    "Conversations (`/chat`)",
    Permissions(read_message_history=True, create_public_threads=True, send_messages_in_threads=True),
    "a thread on the first answer, answers in it, and the thread or reply chain read back as the history",
)
MODERATION = Feature(
    "Moderators' features",
    Permissions(add_reactions=True, attach_files=True, read_message_history=True),
    "a confirmed tag's emoji, `/tags stats`' chart and `/tags export`'s CSV, tagged messages read again",
)
MODERATION_LOG = Feature(
    "The auto-tag log's actions",
    Permissions(manage_messages=True, moderate_members=True),
    "Delete message and Timeout author under each log entry",
)
POLICIES = Feature(
    "Calibrated policies (`/policy`)",
    Permissions(manage_messages=True, moderate_members=True),
    "a policy's automatic delete and timeout",
)
AUTOMOD = Feature(
    "Discord's AutoMod (`/automod`)",
    Permissions(manage_guild=True),
    "reading the server's AutoMod rules and creating the keyword rules a moderator confirms",
)
FEATURES = (COMMANDS, CONVERSATIONS, MODERATION, MODERATION_LOG, POLICIES, AUTOMOD)


DISCORD_NAMES = {"read_messages": "View Channel", "manage_guild": "Manage Server"}  # where discord.py's names differ


def names(permissions: Permissions) -> list[str]:
    """Permissions as Discord's settings name them ("Send Messages in Threads")."""
    return [
        DISCORD_NAMES.get(flag) or flag.replace("_", " ").title().replace(" In ", " in ")
        for flag, granted in permissions
        if granted
    ]


def missing(needed: Permissions, have: Permissions, channel: discord.abc.Messageable | None = None) -> Permissions:
    """What of `needed` is not in `have`. In a thread without Send Messages in Threads, Embed Links is not named
    too: it comes back with it (discord.py's Thread.permissions_for takes it away with it)."""
    lacking = Permissions(needed.value & ~have.value)
    if isinstance(channel, discord.Thread) and lacking.send_messages_in_threads:
        lacking.embed_links = False
    return lacking


def to_answer_in(channel: discord.abc.Messageable) -> Permissions:
    """What answering a member's message of a conversation takes where it was written: the commands' minimum and
    reading the conversation back; in a thread, its own permission to send (Send Messages is not asked there)."""
    in_thread = isinstance(channel, discord.Thread)
    not_here = Permissions(create_public_threads=True, send_messages=in_thread, send_messages_in_threads=not in_thread)
    return Permissions((COMMANDS.permissions.value | CONVERSATIONS.permissions.value) & ~not_here.value)


def to_converse_in(channel: discord.abc.Messageable) -> Permissions:
    """What a /chat conversation takes in `channel`: answering there, and in a text channel a thread to hold it."""
    if isinstance(channel, discord.TextChannel):
        return Permissions(to_answer_in(channel).value | CONVERSATIONS.permissions.value)
    return to_answer_in(channel)


def may_speak(channel: discord.abc.Messageable, have: Permissions) -> bool:
    """Whether the bot can post a plain message in `channel`, where `have` are its permissions."""
    return have.send_messages_in_threads if isinstance(channel, discord.Thread) else have.send_messages


def every_permission() -> Permissions:
    return Permissions(reduce(operator.or_, (feature.permissions.value for feature in FEATURES)))


def channel_report(have: Permissions) -> str:
    """For /status: each feature's permissions the bot lacks where `have` are its permissions."""
    lacking = [(feature, missing(feature.permissions, have)) for feature in FEATURES]
    lines = [f"{feature.name}: missing {', '.join(names(gap))}" for feature, gap in lacking if gap.value]
    return "\n".join(lines) or "Nothing missing: every feature has its permissions in this channel."


def invite_list() -> str:
    """The README's invite list: the commands' minimum, then what each optional feature adds."""
    lines = []
    for feature in FEATURES:
        added = feature.permissions if feature is COMMANDS else missing(feature.permissions, COMMANDS.permissions)
        lines.append(f"   - {feature.name}: **{'**, **'.join(names(added))}** ({feature.what})")
    minimum, every = COMMANDS.permissions.value, every_permission().value
    lines.append(f"\n   The invite URL's `permissions=` is {minimum} for the minimum, {every} for every feature.")
    return "\n".join(lines)
