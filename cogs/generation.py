"""Text generation in Discord: /generate, and conversations.

/generate's answer streams in, with Stop, Regenerate and Continue buttons (bot/answers.py).
`/chat` answers and opens a thread on its answer (or, where no thread can be
made, a reply chain); every member message in that thread, and every reply to a chat answer,
continues the conversation. The history is read back from Discord itself (the thread, or the
chain of replies), so it survives restarts and needs no storage. Every answer has the Stop,
Regenerate and Continue buttons of /generate (bot/answers.py).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import textwrap
from collections.abc import Iterable
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.answers import Answer, Edit, interaction_post, refusal, write
from bot.client import HFBot
from bot.commands import build_request, command
from bot.embeds import to_embed
from bot.engine import EngineError
from bot.engine.request import MAX_TEXT_CHARS
from bot.permissions import may_speak, missing, names, to_answer_in, to_converse_in
from bot.reply import Reply
from bot.slash import slash_command
from bot.specs.generation import CHAT_TITLE, MAX_TURN_CHARS, MAX_TURNS, NO_TEXT, OPENING_FIELD, WRITING
from bot.storage import StoreBusy

log = logging.getLogger(__name__)

MAX_READ = 2 * MAX_TURNS  # messages read back from a thread or chain (not all of them are turns)
THREAD_NAME_CHARS = 100  # Discord's limit
IN_THREAD = "write in this thread to go on"
IN_CHAIN = "reply to this answer to go on"
MENTION = re.compile(r"<@!?\d+>")
UNREADABLE = "Discord didn't let me read this conversation just now. Please send your message again in a moment."
UNDELIVERED = "Discord didn't take my answer just now. Please send your message again in a moment."


Turns = list[tuple[str, str]]


def chat_answer(message: discord.Message, bot_id: int) -> discord.Embed | None:
    """The embed of a chat answer of this bot (finished, stopped, or being written again), or None."""
    if message.author.id != bot_id or message.flags.ephemeral:
        return None
    return next((embed for embed in message.embeds if embed.title == CHAT_TITLE and embed.description), None)


def answer_text(embed: discord.Embed) -> str | None:
    """What the assistant said in a chat answer; None while it is being written or when it was stopped before a word."""
    if (embed.footer.text or "") == WRITING or embed.description == NO_TEXT:
        return None
    return embed.description


def opening_prompt(embed: discord.Embed) -> str | None:
    """The member's message on the first answer of a conversation."""
    return next((field.value for field in embed.fields if field.name == OPENING_FIELD), None)


def member_text(message: discord.Message) -> str:
    # Mentions address the bot; they are not part of what the member says to the model.
    return MENTION.sub("", message.content).strip()


class Generation(commands.Cog):
    generate = slash_command("generate")

    def __init__(self, bot: HFBot) -> None:
        self.bot = bot

    config = app_commands.Group(
        name="config",
        description="Admins: this server's settings for the bot",
        default_permissions=discord.Permissions(manage_guild=True),
        guild_only=True,
    )

    async def start(self, interaction: discord.Interaction, message: str, model: str, private: bool = False) -> None:
        """/chat: the conversation's first answer, then its thread."""
        system = await self.system_prompt(interaction.guild_id)
        lacking = self.lacking_to_converse(interaction) if not private else discord.Permissions.none()
        # No thread where the bot could not open it or answer in it: replies to the answer still go on.
        threads = (
            isinstance(interaction.channel, discord.TextChannel)
            and not private
            and not (lacking.create_public_threads or lacking.send_messages_in_threads)
        )
        how = "private answers can't be continued" if private else IN_THREAD if threads else IN_CHAIN
        if lacking.value:
            how += f" (I'm missing {', '.join(names(lacking))} here)"
        # Bad input and a full queue are refused before deferring, so the refusal is private.
        request = build_request("chat", {"message": message, "model": model}, self.bot.settings, system=system)
        answer = Answer(request, opening=True, how=how)
        text, result = await write(
            self.bot,
            interaction_post(interaction, private),
            answer,
            request,
            "",
            owner=interaction.user.id,
            guild_id=interaction.guild_id or 0,
            asked_at=interaction.created_at,
        )
        if threads:
            opening = await interaction.original_response()
            try:
                await opening.create_thread(name=textwrap.shorten(message, THREAD_NAME_CHARS, placeholder="…"))
            except discord.HTTPException as error:  # no permission to make threads: replies still continue it
                log.info("No thread for a /chat answer in %s: %s", interaction.channel_id, error)
                answer = dataclasses.replace(answer, how=IN_CHAIN)
                await self.bot.store.answers.save(
                    opening.id, interaction.guild_id or 0, interaction.user.id, answer.to_json(), text
                )
                await interaction.edit_original_response(
                    embed=to_embed(answer.render(text, result, stopped=result is None))
                )

    chat = slash_command("chat", start)

    def lacking_to_converse(self, interaction: discord.Interaction) -> discord.Permissions:
        """What a conversation needs in the interaction's channel and the bot lacks there (logged once)."""
        if interaction.guild is None:
            return discord.Permissions.none()
        lacking = missing(to_converse_in(interaction.channel), interaction.app_permissions, interaction.channel)
        if lacking.value:
            self.bot.warn_missing(interaction.channel, lacking, "/chat conversations can't go on there as they should")
        return lacking

    @config.command(name="system_prompt", description="Set what the model is told before every /chat conversation")
    @app_commands.describe(text="The system prompt; leave it out to go back to the default")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def system_prompt_command(
        self, interaction: discord.Interaction, text: app_commands.Range[str, 1, MAX_TEXT_CHARS] | None = None
    ) -> None:
        await self.bot.store.guilds.set_system_prompt(interaction.guild_id, text, interaction.user.id)
        said = (
            f"New conversations start with this system prompt:\n> {text}"
            if text
            else "The system prompt is back to the default"
            + (f":\n> {self.bot.settings.system_prompt}" if self.bot.settings.system_prompt else " (none).")
        )
        await interaction.response.send_message(said, ephemeral=True)

    async def system_prompt(self, guild_id: int | None) -> str | None:
        stored = await self.bot.store.guilds.system_prompt(guild_id) if guild_id else None
        return stored or self.bot.settings.system_prompt

    # --- going on --------------------------------------------------------------------------
    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        # Without the Message Content intent, messages that don't mention the bot arrive empty: nothing to answer.
        text = member_text(message)
        if message.author.bot or self.bot.user is None or not text:
            return
        if self.may_continue(message) and (lacking := self.lacking_to_answer(message.channel)).value:
            await self.cannot_answer(message, lacking)
            return
        try:
            found = await self.conversation(message)
        except discord.Forbidden as error:  # Read Message History taken away since the check
            await self.cannot_answer(message, self.lacking_to_answer(message.channel), error)
            return
        except discord.DiscordServerError:  # Discord failed the read: say so rather than leave them waiting
            await self._say(message, Reply("Please try again", [UNREADABLE], tone="busy"))
            return
        except discord.HTTPException as error:
            log.info("Could not read the conversation before message %s: %s", message.id, error)
            return
        if found is None:
            return
        history, how, opening = found
        posted: list[discord.Message] = []

        async def post(after: discord.Message | None = None, **kwargs: Any) -> tuple[discord.Message, Edit]:
            answer = await (after or message).reply(**kwargs)  # a long answer's next message replies to the last
            posted.append(answer)
            return answer, answer.edit

        try:
            system = await self.system_prompt(message.guild.id if message.guild else None)
            options = {"message": text, "model": await self.conversation_model(opening)}
            request = build_request("chat", options, self.bot.settings, history=tuple(history), system=system)
            await write(
                self.bot,
                post,
                Answer(request, how=how),
                request,
                "",
                owner=message.author.id,
                guild_id=message.guild.id if message.guild else 0,
                asked_at=message.created_at,
            )
        except (EngineError, StoreBusy) as error:
            await self._tell(message, posted, refusal(error))
        except discord.DiscordServerError:  # Discord failed an edit of the answer: it must not stay "writing…"
            await self._tell(message, posted, Reply("Please try again", [UNDELIVERED], tone="busy"))
        except discord.NotFound:  # the thread or the answer was deleted meanwhile: the job is cancelled, nobody to tell
            log.info("A chat answer in %s was deleted before it was finished", message.channel.id)
        except discord.Forbidden as error:  # a permission taken away meanwhile, or a locked thread
            await self.cannot_answer(message, self.lacking_to_answer(message.channel), error)

    def may_continue(self, message: discord.Message) -> bool:
        """Whether `message` may continue a conversation, known without reading the channel: a message addressed
        to the bot in a thread it started, or a reply to one of its messages."""
        replied = message.reference.resolved if message.reference else None
        return self.in_chat_thread(message) or (
            isinstance(replied, discord.Message) and replied.author.id == self.bot.user.id
        )

    @staticmethod
    def my_permissions(channel: discord.abc.Messageable) -> discord.Permissions | None:
        """The bot's permissions in a server's channel or thread; None in a DM, or in a thread whose channel is not
        cached (Discord then says what it refuses, and that is caught)."""
        if not isinstance(channel, (discord.abc.GuildChannel, discord.Thread)):
            return None
        if isinstance(channel, discord.Thread) and channel.parent is None:
            return None
        return channel.permissions_for(channel.guild.me)

    def lacking_to_answer(self, channel: discord.abc.Messageable) -> discord.Permissions:
        """What answering a conversation's message in `channel` needs and the bot lacks there."""
        have = self.my_permissions(channel)
        return discord.Permissions.none() if have is None else missing(to_answer_in(channel), have, channel)

    async def cannot_answer(
        self, message: discord.Message, lacking: discord.Permissions, error: discord.HTTPException | None = None
    ) -> None:
        """Tell the member which permission keeps the bot from answering, where it can still speak; log it once."""
        channel = message.channel
        self.bot.warn_missing(channel, lacking, f"members' chat messages there get no answer ({error or 'checked'})")
        have = self.my_permissions(channel)
        if not lacking.value or have is None or not may_speak(channel, have):
            return
        # Plain text, not a reply: a reply needs Read Message History, and an embed needs Embed Links.
        try:
            await channel.send(
                f"{message.author.mention} I can't answer in this channel: I'm missing the "
                f"{', '.join(names(lacking))} permission{'s' if len(names(lacking)) > 1 else ''} here. "
                "A server admin can give it to me."
            )
        except discord.HTTPException:
            pass  # nobody to tell: the log has it

    async def conversation(self, message: discord.Message) -> tuple[Turns, str, int | None] | None:
        """The turns before `message`, oldest first, how to go on, and the conversation's first answer (None
        when the chain was cut before it); None when `message` continues no conversation."""
        bot_id = self.bot.user.id
        channel = message.channel
        if self.in_chat_thread(message):
            opening = await self._fetch(channel.parent, channel.id)  # a thread made on a message has that message's id
            embed = chat_answer(opening, bot_id) if opening else None
            if embed is not None and opening_prompt(embed) is not None:
                # Members' messages the bot would not answer are not addressed to it: they are no turns either.
                later = [
                    m
                    async for m in channel.history(limit=MAX_READ, before=message)
                    if m.author.id == bot_id or self.addressed_in_thread(m)
                ]
                return self.turns([opening, *reversed(later)]), IN_THREAD, opening.id
        chain: list[discord.Message] = []
        current = message
        while current.reference and current.reference.message_id and len(chain) < MAX_READ:
            resolved = current.reference.resolved
            previous = (
                resolved
                if isinstance(resolved, discord.Message)
                else await self._fetch(channel, current.reference.message_id)
            )
            if previous is None:  # deleted, or a private answer: the conversation starts after it
                break
            chain.append(previous)
            embed = chat_answer(previous, bot_id)
            if embed is not None and opening_prompt(embed) is not None:
                break
            current = previous
        if chain and chat_answer(chain[0], bot_id) is not None:
            first = chat_answer(chain[-1], bot_id)
            return (
                self.turns(reversed(chain)),
                IN_CHAIN,
                chain[-1].id if first and opening_prompt(first) is not None else None,
            )
        return None

    def in_chat_thread(self, message: discord.Message) -> bool:
        """Whether `message` is a turn of its thread: one the bot started, and a message addressed to it."""
        channel = message.channel
        return (
            isinstance(channel, discord.Thread)
            and channel.owner_id == self.bot.user.id
            and channel.parent is not None
            and self.addressed_in_thread(message)
        )

    def addressed_in_thread(self, message: discord.Message) -> bool:
        """Every message with CHAT_THREADS=true, else only those that mention the bot, whatever else asked for the
        Message Content intent (AUTOTAG shows the bot every message's text too)."""
        return self.bot.settings.chat_threads or any(user.id == self.bot.user.id for user in message.mentions)

    async def conversation_model(self, opening: int | None) -> str:
        """The model the conversation was started with (/chat model:), while it is still allowed; else the default."""
        stored = await self.bot.store.answers.get(opening) if opening else None
        model = Answer.from_json(stored[0]).request.model if stored else ""
        role = command("chat").model_role({}, self.bot.settings)
        return model if model in self.bot.settings.engine.allowed(role) else ""

    def turns(self, messages: Iterable[discord.Message]) -> Turns:
        """Messages, oldest first, as conversation turns: the bot's chat answers and the members' messages."""
        turns: Turns = []

        def add(speaker: str, text: str) -> None:
            if turns and turns[-1][0] == speaker:  # two members in a row: one user turn
                turns[-1] = (speaker, turns[-1][1] + "\n" + text)
            elif text:
                turns.append((speaker, text))

        for message in messages:
            embed = chat_answer(message, self.bot.user.id)
            if embed is not None:
                prompt = opening_prompt(embed)
                if prompt:
                    add("user", prompt)
                said = answer_text(embed)
                if said:
                    add("assistant", said)
            elif not message.author.bot and member_text(message):
                add("user", member_text(message))
        # A longer turn (several members' messages in a row, an answer continued many times) is read by its end.
        turns = [(speaker, text[-MAX_TURN_CHARS:]) for speaker, text in turns[-MAX_TURNS:]]
        while turns and turns[0][0] != "user":  # a conversation starts with the member
            turns.pop(0)
        return turns

    @staticmethod
    async def _fetch(channel: discord.abc.Messageable, message_id: int) -> discord.Message | None:
        try:
            return await channel.fetch_message(message_id)
        except (discord.NotFound, discord.Forbidden):
            return None

    async def _tell(self, message: discord.Message, posted: list[discord.Message], reply: Reply) -> None:
        """Why a member's chat message got no answer: in the answer begun for it (an error is never read back
        as a turn), else in a reply."""
        if posted:  # the message being written when it failed (a long answer's earlier ones stay)
            try:
                await posted[-1].edit(content=None, embed=to_embed(reply), view=None)
                return
            except discord.HTTPException:
                log.warning("Could not show why chat answer %s failed", posted[-1].id)
        await self._say(message, reply)

    @staticmethod
    async def _say(message: discord.Message, reply: Reply) -> None:
        """A refusal, as a reply (a message event has no private answer)."""
        try:
            await message.reply(embed=to_embed(reply))
        except discord.HTTPException:
            log.warning("Could not tell %s why their chat message got no answer", message.author.id)


async def setup(bot: HFBot) -> None:
    await bot.add_cog(Generation(bot))
