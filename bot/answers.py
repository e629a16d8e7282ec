"""Generated answers with buttons, for /generate and for every /chat turn: Stop (while queued or
writing; the text so far stays), Regenerate (a new sample of the same request) and Continue (when it
stopped at max_new_tokens: the model goes on from its own text).

The buttons are one `DynamicItem` whose custom_id holds the action and the member who asked; the
request and the text so far are kept in SQLite by message id, so Regenerate and Continue work after a
restart. Stop needs the running job, which lives only in this process: after a restart it says so.
One writer serves an interaction's answer (edited through its token) and a chat answer to a message
event (a normal message the bot edits).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import discord

from .client import Edit, HFBot, Writing, to_embed
from .commands import Reply, as_turn, render_error, render_partial, render_result
from .engine import Cancelled, EngineError, GenerationRequest, GenerationResult
from .engine.errors import InvalidInput
from .storage import StoreBusy

STOP, AGAIN, MORE = "stop", "again", "more"
BUTTON_LABELS = {
    STOP: ("Stop", discord.ButtonStyle.danger),
    AGAIN: ("Regenerate", discord.ButtonStyle.secondary),
    MORE: ("Continue", discord.ButtonStyle.primary),
}
NOT_WRITING = (
    "This answer is not being written any more (it finished, or the bot restarted since). Regenerate writes a new one."
)
NOT_YOURS = "Only the member who asked can use these buttons. Ask with /generate or /chat for an answer of your own."
STILL_WRITING = "This answer is still being written. Press Stop first."
BUTTON_ID = re.compile(r"answer:(?P<action>stop|again|more):(?P<owner>\d+)")
FORGOTTEN = "I no longer have this answer's request (its data was deleted). Ask again with /generate or /chat."

# Shows an answer for the first time: (content=, embed=, view=) -> its message, and how to edit it later.
Post = Callable[..., Awaitable[tuple[discord.Message, Edit]]]


@dataclass(frozen=True)
class Answer:
    """What an answer's buttons need to write it again: the member's request and, for a conversation's
    turn, how it is shown (`how` is None for a /generate answer)."""

    request: GenerationRequest
    opening: bool = False  # the first answer of a conversation: it keeps the member's message
    how: str | None = None  # a conversation's turn: how to go on (its footer)

    def render(self, text: str, result: GenerationResult | None = None, stopped: bool = False) -> Reply:
        """Being written (no result), stopped by its member, or finished."""
        reply = render_result(result) if result is not None else render_partial(self.request, text, stopped)
        return reply if self.how is None else as_turn(reply, self.request.prompt, self.opening, self.how)

    def to_json(self) -> str:
        data: dict[str, Any] = dataclasses.asdict(self.request)
        if self.how is not None:
            data["conversation"] = {"opening": self.opening, "how": self.how}
        return json.dumps(data)

    @classmethod
    def from_json(cls, data: str) -> Answer:
        fields = json.loads(data)
        conversation = fields.pop("conversation", {})
        fields["history"] = tuple(tuple(turn) for turn in fields["history"])
        return cls(GenerationRequest(**fields), **conversation)


def refusal(error: EngineError | StoreBusy) -> Reply:
    """What a member is told when an answer could not be written."""
    return render_error(error) if isinstance(error, EngineError) else Reply("Busy", [str(error)], tone="busy")


def continuation(asked: GenerationRequest, text: str) -> GenerationRequest:
    """The request that goes on from `text`: a chat answer as the assistant's unfinished message."""
    if asked.mode == "chat":
        return dataclasses.replace(asked, continue_answer=text)
    return dataclasses.replace(asked, prompt=asked.prompt + text)


def buttons(owner: int, *actions: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for action in actions:
        view.add_item(AnswerButton(action, owner))
    return view


def interaction_post(interaction: discord.Interaction, private: bool = False) -> Post:
    """Answer in an interaction's message: a command's reply, or the message whose button was pressed."""

    async def post(**kwargs: Any) -> tuple[discord.Message, Edit]:
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
    request: GenerationRequest,
    before: str,
    *,
    owner: int,
    guild_id: int,
    asked_at: datetime,
) -> tuple[str, GenerationResult | None]:
    """Write `request` as `answer` with a Stop button, then Regenerate (and Continue). `before` is the
    text already written (Continue). Returns the answer's text and its result (None when stopped).
    Refusals and engine errors are raised; a full queue before anything is shown."""
    writing = Writing(bot.submit(request, owner, asked_at), request)
    message_id = None
    try:
        message, edit = await post(content=None, embed=to_embed(answer.render(before)), view=buttons(owner, STOP))
        message_id = message.id
        bot.writing[message_id] = writing
        # Kept from the start, so Regenerate works even if the bot stops before the answer is done.
        await bot.store.answers.save(message_id, guild_id, owner, answer.to_json(), before)

        async def streamed(**kwargs: Any) -> Any:
            if "embed" in kwargs:  # the engine streams only the new text: shown after `before`, as this answer
                kwargs["embed"] = to_embed(answer.render(before + writing.text))
            return await edit(**kwargs)

        result: GenerationResult | None
        try:
            result = await bot.follow(writing, streamed)
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
            text, more = result.texts[0], result.finish_reasons == ["length"]
            reply = answer.render(text, result)
        await bot.store.answers.save(message_id, guild_id, owner, answer.to_json(), text)
        await edit(content=None, embed=to_embed(reply), view=buttons(owner, AGAIN, *([MORE] if more else [])))
        return text, result
    finally:
        writing.job.cancel()  # no-op once finished
        bot.writing.pop(message_id, None)


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
        writing.stopped = True
        writing.job.cancel()  # the writer shows the text so far
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
        # Regenerate: a new sample (a fixed seed would give the same text); Continue: from the text so far.
        request = (
            dataclasses.replace(answer.request, seed=None) if action == AGAIN else continuation(answer.request, text)
        )
        request.validate()
        try:
            await write(
                bot,
                interaction_post(interaction),
                answer,
                request,
                "" if action == AGAIN else text,
                owner=owner,
                guild_id=interaction.guild_id or 0,
                asked_at=interaction.created_at,
            )
        except (EngineError, StoreBusy) as error:
            if (
                not interaction.response.is_done()
            ):  # refused before anything changed: the error handler says it privately
                raise
            # The answer goes back to what it was; the error is for the member who pressed.
            await bot.store.answers.save(message.id, interaction.guild_id or 0, owner, stored[0], text)
            await interaction.edit_original_response(
                content=None, embeds=message.embeds, view=buttons(owner, *actions_of(message))
            )
            await interaction.followup.send(embed=to_embed(refusal(error)), ephemeral=True)
    finally:
        bot.pressed.discard(message.id)


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
