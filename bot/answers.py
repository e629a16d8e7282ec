"""Answers in Discord: every task command's answer, and the buttons of a streaming task's answer.

A command's answer is deferred, followed (queue position, streamed text; bot/answering.py) and
replaced by its result. A streaming answer (/generate, every /chat turn) also has buttons: Stop
(while queued or writing; the text so far stays), Regenerate (a new sample of the same request) and
Continue (when it stopped at its length limit: the model goes on from its own text). An answer longer
than one message goes on in follow-up messages (each a reply to the one before, so a reply chain reads
on; `Pages`), and the buttons move to the last one.

The buttons are one `DynamicItem` whose custom_id holds the action and the member who asked; the
request and the text so far are kept in SQLite by message id, so Regenerate and Continue work after a
restart. Stop needs the running job, which lives only in this process: after a restart it says so.
One writer serves an interaction's answer (edited through its token) and a chat answer to a message
event (a normal message the bot edits).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import discord

from .answering import Answering
from .commands import build_request, render_error, render_result
from .embeds import to_embed
from .engine import Cancelled, EngineError, Request
from .engine.errors import InvalidInput
from .reply import Reply, paginate
from .specs import TaskSpec, spec, specs
from .storage import StoreBusy

if TYPE_CHECKING:
    from .client import HFBot

log = logging.getLogger(__name__)

STOP, AGAIN, MORE = "stop", "again", "more"
BUTTON_LABELS = {
    STOP: ("Stop", discord.ButtonStyle.danger),
    AGAIN: ("Regenerate", discord.ButtonStyle.secondary),
    MORE: ("Continue", discord.ButtonStyle.primary),
}
NOT_WRITING = (
    "This answer is not being written any more (it finished, or the bot restarted since). Regenerate writes a new one."
)
NOT_YOURS = "Only the member who asked can use these buttons. Ask again for an answer of your own."
STILL_WRITING = "This answer is still being written. Press Stop first."
BUTTON_ID = re.compile(r"answer:(?P<action>stop|again|more):(?P<owner>\d+)")
FORGOTTEN = "I no longer have this answer's request (its data was deleted). Please ask again."

Edit = Callable[
    ..., Awaitable[Any]
]  # edits the answer being written: interaction.edit_original_response or Message.edit
# Shows an answer for the first time (after=None), or its next message after `after` (a long answer):
# (after=, content=, embed=, view=) -> the message, and how to edit it later.
Post = Callable[..., Awaitable[tuple[discord.Message, Edit]]]

log = logging.getLogger(__name__)


class EditScreen:
    """Shows an answer being written by editing its message: the queue position, then the text as it
    streams (`show`), at most once every `interval` seconds (Discord's rate limits)."""

    def __init__(self, edit: Edit, show: Callable[[str], Awaitable[None]] | None, interval: float) -> None:
        self.edit = edit
        self.show = show
        self.interval = interval
        self.last_edit = -math.inf  # the first chunk is always shown

    async def waiting(self, text: str) -> bool:
        try:
            await self.edit(content=text)
        except discord.NotFound:  # the answer is gone (deleted, expired, its thread deleted)
            return False
        return True

    async def streamed(self, text: str, delta: str) -> None:
        now = asyncio.get_running_loop().time()
        if self.show is not None and now - self.last_edit >= self.interval:
            self.last_edit = now
            await self.show(text)


class Pages:
    """The messages an answer is shown in. Its text is cut into pages of one embed each (Discord's limits);
    a page that fills up stays as it is, and the writing goes on in a new message after it, which takes
    over the buttons. `skip` pages are shown by earlier messages (an answer continued from its last one)."""

    def __init__(
        self, post: Post, first: discord.Message, edit: Edit, skip: int, moved: Callable[[discord.Message], Any]
    ) -> None:
        self.post = post
        self.messages: list[tuple[discord.Message, Edit]] = [(first, edit)]
        self.shown: list[Reply | None] = [None]
        self.buttons_on = 0  # the message with the buttons
        self.skip = skip
        self.moved = moved  # called with each new message, before it is written on

    @property
    def last(self) -> discord.Message:
        return self.messages[-1][0]

    async def show(self, reply: Reply, view: discord.ui.View | None) -> None:
        pages = paginate(reply)[self.skip :]
        for number, page in enumerate(pages):
            last = number == len(pages) - 1
            if number == len(self.messages):  # the text goes on past the last message
                message, edit = await self.post(after=self.last, content=None, embed=to_embed(page), view=view)
                self.messages.append((message, edit))
                self.shown.append(page)
                await self.moved(message)
            elif last or page != self.shown[number] or self.buttons_on == number:
                await self.messages[number][1](content=None, embed=to_embed(page), view=view if last else None)
                self.shown[number] = page
            if last:
                self.buttons_on = number


async def answer(
    bot: HFBot,
    interaction: discord.Interaction,
    command: str,
    options: Mapping[str, Any],
    private: bool,
    **context: Any,
) -> None:
    """A task command's answer: refused privately before deferring (bad input, a full queue), then
    written; a streaming task's answer with its buttons. `context`: what the cog adds that no member
    types (e.g. the messages /summarize read)."""
    request = build_request(command, options, bot.settings, **context)
    if request.streams:
        await write(
            bot,
            interaction_post(interaction, private),
            Answer(request),
            request,
            "",
            owner=interaction.user.id,
            guild_id=interaction.guild_id or 0,
            asked_at=interaction.created_at,
        )
        return
    answering = await deferred(bot, interaction, [request], private)
    result = await answering.result(EditScreen(interaction.edit_original_response, None, 0), bot.queue_interval)
    await interaction.edit_original_response(content=None, embed=to_embed(render_result(result)))


async def deferred(bot: HFBot, interaction: discord.Interaction, requests: list[Request], private: bool) -> Answering:
    """Queue a member's requests, then defer the answer: a refusal (a full queue, a model not in the list)
    comes before, so it is private. Follow what it returns; it frees the queue if deferring fails."""
    answering = bot.queue(requests, interaction.user.id, interaction.created_at)
    try:
        await interaction.response.defer(thinking=True, ephemeral=private)
    except BaseException:
        answering.cancel()
        raise
    interaction.extras["public"] = not private
    return answering


@dataclass(frozen=True)
class Answer:
    """What an answer's buttons need to write it again: the member's request and, for a conversation's
    turn, how it is shown (`how` is None for an answer that is no conversation's)."""

    request: Request
    opening: bool = False  # the first answer of a conversation: it keeps the member's message
    how: str | None = None  # a conversation's turn: how to go on (its footer)
    earlier: tuple[int, ...] = ()  # a long answer: the messages before the one with the buttons, oldest first

    @property
    def spec(self) -> TaskSpec:
        return spec(self.request.task)

    def render(self, text: str, result: Any | None = None, stopped: bool = False) -> Reply:
        """Being written (no result), stopped by its member, or finished."""
        streaming = self.spec.streaming
        reply = render_result(result) if result is not None else streaming.partial(self.request, text, stopped)
        return reply if self.how is None else streaming.turn(reply, self.request, self.opening, self.how)

    def to_json(self) -> str:
        data: dict[str, Any] = {"task": self.request.task, **dataclasses.asdict(self.request)}
        if self.how is not None:
            data["conversation"] = {"opening": self.opening, "how": self.how}
        if self.earlier:
            data["earlier"] = self.earlier
        return json.dumps(data)

    @classmethod
    def from_json(cls, data: str) -> Answer:
        fields = json.loads(data)
        conversation = fields.pop("conversation", {})
        earlier = tuple(fields.pop("earlier", ()))
        task = fields.pop("task", None)
        # Answers stored before they named their task: the streaming task whose request has these fields.
        found = spec(task) if task else next(s for s in specs() if s.streaming and _takes(s.request, fields))
        request = found.request(**{name: _frozen(value) for name, value in fields.items()})
        return cls(request, **conversation, earlier=earlier)


def _takes(request: type, fields: Mapping[str, Any]) -> bool:
    return set(fields) <= {field.name for field in dataclasses.fields(request)}


def _frozen(value: Any) -> Any:
    """JSON lists back into the tuples a frozen request holds."""
    return tuple(_frozen(item) for item in value) if isinstance(value, list) else value


def refusal(error: EngineError | StoreBusy) -> Reply:
    """What a member is told when an answer could not be written."""
    return render_error(error) if isinstance(error, EngineError) else Reply("Busy", [str(error)], tone="busy")


def buttons(owner: int, *actions: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for action in actions:
        view.add_item(AnswerButton(action, owner))
    return view


def interaction_post(interaction: discord.Interaction, private: bool = False) -> Post:
    """Answer in an interaction's message: a command's reply, or the message whose button was pressed."""

    async def post(after: discord.Message | None = None, **kwargs: Any) -> tuple[discord.Message, Edit]:
        if after is not None:  # a long answer's next message
            if after.flags.ephemeral:  # private: only the interaction can add to it
                message = await interaction.followup.send(ephemeral=True, wait=True, **kwargs)
            elif after.thread is not None:  # a conversation's opening: it goes on in its thread, where it is read
                message = await after.thread.send(**kwargs)
            else:  # a reply to the one before, so a reply chain reads on
                message = await after.reply(**kwargs)
            return message, message.edit
        if interaction.message is not None:
            await interaction.response.defer()  # a button: edits the message it is on
        else:
            await interaction.response.defer(thinking=True, ephemeral=private)
            interaction.extras["public"] = not private
        return await interaction.edit_original_response(**kwargs), interaction.edit_original_response

    return post


async def write(
    bot: HFBot,
    post: Post,
    answer: Answer,
    request: Request,
    before: str,
    *,
    owner: int,
    guild_id: int,
    asked_at: datetime,
) -> tuple[str, Any | None]:
    """Write `request` as `answer` with a Stop button, then Regenerate (and Continue). `before` is the
    text already written (Continue). Returns the answer's text and its result (None when stopped).
    Refusals and engine errors are raised; a full queue before anything is shown."""
    writing = bot.queue([request], owner, asked_at)
    # Continue from a long answer's last message: the pages before it stay in the earlier messages.
    shown = paginate(answer.render(before))
    skip = len(shown) - 1
    pages: Pages | None = None

    def kept() -> Answer:
        """The answer as its last message keeps it: with the ids of the messages before it."""
        return dataclasses.replace(answer, earlier=answer.earlier + tuple(m.id for m, _ in pages.messages[:-1]))

    async def moved(message: discord.Message) -> None:
        bot.writing[message.id] = bot.writing.pop(pages.messages[-2][0].id)  # Stop is on the new message now
        await keep(bot, message.id, guild_id, owner, kept(), before)

    try:
        message, edit = await post(content=None, embed=to_embed(shown[-1]), view=buttons(owner, STOP))
        pages = Pages(post, message, edit, skip, moved)
        bot.writing[message.id] = writing
        # Kept from the start, so Regenerate works even if the bot stops before the answer is done.
        await keep(bot, message.id, guild_id, owner, answer, before)
        # The engine streams only the new text: shown after `before`, as this answer.
        stop = buttons(owner, STOP)
        screen = EditScreen(edit, lambda text: pages.show(answer.render(before + text), stop), bot.stream_interval)
        result: Any | None
        try:
            result = await writing.result(screen, bot.queue_interval)
        except Cancelled:
            if not writing.stopped:
                raise
            result, text, more = None, before + writing.text, False
            reply = answer.render(text, stopped=True)
        else:
            # A continuation is shown, and kept, as one text with what came before.
            result = dataclasses.replace(
                result, prompt=answer.request.prompt, texts=[before + result.texts[0], *result.texts[1:]]
            )
            text = result.texts[0]
            more = result.finish_reasons == ["length"] and answer.spec.streaming.go_on is not None
            reply = answer.render(text, result)
        saved = await keep(bot, pages.last.id, guild_id, owner, kept(), text)
        # Unsaved, the buttons would find nothing: the answer is shown without them.
        await pages.show(reply, buttons(owner, AGAIN, *([MORE] if more else [])) if saved else None)
        return text, result
    finally:
        writing.cancel()  # no-op once finished
        if pages is not None:
            bot.writing.pop(pages.last.id, None)


async def keep(bot: HFBot, message_id: int, guild_id: int, owner: int, answer: Answer, text: str) -> bool:
    """Save an answer for its buttons; False when the database stays busy (the answer goes on all the same)."""
    try:
        await bot.store.answers.save(message_id, guild_id, owner, answer.to_json(), text)
    except StoreBusy:
        log.warning("Answer %s could not be saved for its buttons: the database was busy", message_id)
        return False
    return True


async def on_button(bot: HFBot, interaction: discord.Interaction, action: str, owner: int) -> None:
    if interaction.user.id != owner:
        raise InvalidInput(NOT_YOURS)
    message = interaction.message
    writing = bot.writing.get(message.id)
    if action == STOP:
        if writing is None:  # finished meanwhile, or the bot restarted while writing it: offer Regenerate
            await interaction.response.edit_message(view=buttons(owner, AGAIN))
            await interaction.followup.send(
                embed=to_embed(Reply("That didn't work", [NOT_WRITING], tone="error")), ephemeral=True
            )
            return
        writing.stop()  # the writer shows the text so far
        await interaction.response.defer()
        return
    if writing is not None or message.id in bot.pressed:
        raise InvalidInput(STILL_WRITING)
    bot.pressed.add(message.id)  # before any await: a second press must find it taken
    try:
        stored = await bot.store.answers.get(message.id)
        if stored is None:
            raise InvalidInput(FORGOTTEN)
        answer, text = Answer.from_json(stored[0]), stored[1]
        streaming = answer.spec.streaming
        if action == AGAIN:
            request, before = streaming.again(answer.request), ""
            await forget_earlier(interaction, answer.earlier)
            answer = dataclasses.replace(answer, earlier=())
        else:  # Continue: from the text so far
            request, before = streaming.go_on(answer.request, text), text
        request.validate()
        try:
            await write(
                bot,
                interaction_post(interaction),
                answer,
                request,
                before,
                owner=owner,
                guild_id=interaction.guild_id or 0,
                asked_at=interaction.created_at,
            )
        except (EngineError, StoreBusy) as error:
            if not interaction.response.is_done():  # refused before anything changed: the error handler says it
                raise
            # The answer goes back to what it was; the error is for the member who pressed.
            await bot.store.answers.save(message.id, interaction.guild_id or 0, owner, stored[0], text)
            await interaction.edit_original_response(
                content=None, embeds=message.embeds, view=buttons(owner, *actions_of(message))
            )
            await interaction.followup.send(embed=to_embed(refusal(error)), ephemeral=True)
    finally:
        bot.pressed.discard(message.id)


async def forget_earlier(interaction: discord.Interaction, earlier: tuple[int, ...]) -> None:
    """Regenerate replaces a long answer: its earlier messages go, the new one is written in the last."""
    for message_id in earlier:
        try:
            await interaction.channel.get_partial_message(message_id).delete()
        except discord.HTTPException:  # deleted already, or private (only its own interaction could delete it)
            log.info("Could not delete message %s of a regenerated answer", message_id)


def actions_of(message: discord.Message) -> list[str]:
    """The answer buttons a message shows."""
    ids = [child.custom_id for row in message.components for child in getattr(row, "children", [])]
    return [match["action"] for custom_id in ids if (match := BUTTON_ID.fullmatch(custom_id or ""))]


class AnswerButton(discord.ui.DynamicItem[discord.ui.Button], template=BUTTON_ID):
    def __init__(self, action: str, owner: int) -> None:
        label, style = BUTTON_LABELS[action]
        super().__init__(discord.ui.Button(label=label, style=style, custom_id=f"answer:{action}:{owner}"))
        self.action, self.owner = action, owner

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str]
    ) -> AnswerButton:
        return cls(match["action"], int(match["owner"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        # Errors get the same private messages as commands (a DynamicItem's would only be logged).
        try:
            await on_button(interaction.client, interaction, self.action, self.owner)
        except Exception as error:
            await interaction.client.on_app_command_error(interaction, error)
