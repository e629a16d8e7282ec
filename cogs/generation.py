"""/generate, with buttons on the answer: Stop (while queued or writing; the text so far stays),
Regenerate (a new sample of the same prompt) and Continue (when it stopped at max_new_tokens).

The buttons are `DynamicItem`s whose custom_id holds the action and the member who asked; the
request and the text so far are kept in SQLite by message id, so Regenerate and Continue work
after a restart. Stop needs the running job, which lives only in this process: after a restart it
says so.
"""
from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import HFBot, Writing, suggest_models, to_embed
from bot.commands import (DEFAULT_MAX_NEW_TOKENS, DEFAULT_TEMPERATURE, DEFAULT_TOP_P, MAX_NEW_TOKENS, MAX_RETURN_SEQUENCES,
                          MAX_SEED, MAX_TEMPERATURE, MAX_TEXT_CHARS, MODEL_HELP, MODES, Reply, build_request, render_partial, render_result)
from bot.engine import Cancelled, GenerationRequest, GenerationResult
from bot.engine.errors import InvalidInput

STOP, AGAIN, MORE = "stop", "again", "more"
BUTTON_LABELS = {STOP: ("Stop", discord.ButtonStyle.danger), AGAIN: ("Regenerate", discord.ButtonStyle.secondary),
                 MORE: ("Continue", discord.ButtonStyle.primary)}
NOT_WRITING = "This answer is not being written any more: the bot restarted since. Regenerate writes a new one."
NOT_YOURS = "Only the member who asked can use these buttons. Run /generate for an answer of your own."


def buttons(owner: int, *actions: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for action in actions:
        view.add_item(AnswerButton(action, owner))
    return view


def to_json(request: GenerationRequest) -> str:
    return json.dumps(dataclasses.asdict(request))


def from_json(data: str) -> GenerationRequest:
    fields = json.loads(data)
    fields["history"] = tuple(tuple(turn) for turn in fields["history"])
    return GenerationRequest(**fields)


class Generation(commands.Cog):
    def __init__(self, bot: HFBot) -> None:
        self.bot = bot
        self.pressed: set[int] = set()  # answers whose Regenerate or Continue is being handled

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(AnswerButton)  # clicks route by custom_id, also after a restart

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(AnswerButton)

    @app_commands.command(description="Continue a text, or chat with the model. The answer streams in as it is written.")
    @app_commands.describe(
        prompt="The text to continue, or your message in chat mode",
        max_new_tokens="How many tokens to write at most",
        num_return_sequences="How many different answers",
        temperature="0 = always the likeliest word; higher = more surprising",
        top_p="Sample only from the likeliest words whose probabilities add up to this",
        seed="Same seed, same answer",
        mode="complete: continue the prompt; chat: answer it",
        model=MODEL_HELP,
        private="Only you see the answer",
    )
    @app_commands.choices(mode=[app_commands.Choice(name=mode, value=mode) for mode in MODES])
    @app_commands.autocomplete(model=suggest_models)
    @app_commands.checks.cooldown(3, 30.0, key=lambda i: i.user.id)  # generation is the expensive one
    async def generate(
        self,
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, MAX_TEXT_CHARS],
        max_new_tokens: app_commands.Range[int, 1, MAX_NEW_TOKENS] = DEFAULT_MAX_NEW_TOKENS,
        num_return_sequences: app_commands.Range[int, 1, MAX_RETURN_SEQUENCES] = 1,
        temperature: app_commands.Range[float, 0.0, MAX_TEMPERATURE] = DEFAULT_TEMPERATURE,
        top_p: app_commands.Range[float, 0.01, 1.0] = DEFAULT_TOP_P,
        seed: app_commands.Range[int, 0, MAX_SEED] | None = None,
        mode: str = MODES[0],
        model: str = "",
        private: bool = False,
    ) -> None:
        # Bad input and a full queue are refused before deferring, so the refusal is private.
        request = build_request("generate", dict(prompt=prompt, max_new_tokens=max_new_tokens,
                                                 num_return_sequences=num_return_sequences, temperature=temperature,
                                                 top_p=top_p, seed=seed, mode=mode, model=model), self.bot.settings)
        await self.write(interaction, request, request, "", private=private)

    async def write(self, interaction: discord.Interaction, request: GenerationRequest, asked: GenerationRequest,
                    before: str, *, private: bool = False) -> None:
        """Answer `request` in the interaction's message with a Stop button, then Regenerate/Continue.
        `asked` is the member's own request and `before` the text already written (Continue)."""
        owner = interaction.user.id
        writing = Writing(self.bot.submit(request, owner, interaction.created_at), request)
        message_id = None
        try:
            if interaction.message is not None:
                await interaction.response.defer()  # a button: edits the message it is on
            else:
                await interaction.response.defer(thinking=True, ephemeral=private)
                interaction.extras["public"] = not private
            message = await interaction.edit_original_response(
                content=None, embed=to_embed(render_partial(asked, before)), view=buttons(owner, STOP))
            message_id = message.id
            self.bot.writing[message_id] = writing
            # Kept from the start, so Regenerate works even if the bot stops before the answer is done.
            await self.bot.store.save_answer(message_id, interaction.guild_id or 0, owner, to_json(asked), before)
            try:
                result: GenerationResult = await self.bot.follow(writing, interaction.edit_original_response)
            except Cancelled:
                if not writing.stopped:
                    raise
                text, reply = before + writing.text, render_partial(asked, before + writing.text, stopped=True)
                more = False
            else:
                # A continuation is shown, and kept, as one text with what came before.
                result = dataclasses.replace(result, prompt=asked.prompt, texts=[before + result.texts[0], *result.texts[1:]])
                text, reply = result.texts[0], render_result(result)
                more = result.finish_reasons == ["length"] and asked.mode == "complete"
            await self.bot.store.save_answer(message_id, interaction.guild_id or 0, owner, to_json(asked), text)
            await interaction.edit_original_response(content=None, embed=to_embed(reply),
                                                     view=buttons(owner, AGAIN, *([MORE] if more else [])))
        finally:
            writing.job.cancel()  # no-op once finished
            self.bot.writing.pop(message_id, None)

    async def on_button(self, interaction: discord.Interaction, action: str, owner: int) -> None:
        if interaction.user.id != owner:
            raise InvalidInput(NOT_YOURS)
        writing = self.bot.writing.get(interaction.message.id)
        if action == STOP:
            if writing is None:  # the bot restarted while writing it: offer Regenerate instead
                await interaction.response.edit_message(view=buttons(owner, AGAIN))
                await interaction.followup.send(embed=to_embed(Reply("That didn't work", [NOT_WRITING], tone="error")),
                                                ephemeral=True)
                return
            writing.stopped = True
            writing.job.cancel()  # the writer shows the text so far
            await interaction.response.defer()
            return
        if writing is not None or interaction.message.id in self.pressed:
            raise InvalidInput("This answer is still being written. Press Stop first.")
        self.pressed.add(interaction.message.id)  # before any await: a second press must find it taken
        try:
            stored = await self.bot.store.answer(interaction.message.id)
            if stored is None:
                raise InvalidInput("I no longer have this answer's prompt (its data was deleted). Run /generate again.")
            asked, text = from_json(stored[0]), stored[1]
            if action == AGAIN:  # a new sample: a fixed seed would give the same text
                await self.write(interaction, dataclasses.replace(asked, seed=None), asked, "")
            else:
                request = dataclasses.replace(asked, prompt=asked.prompt + text)
                request.validate()
                await self.write(interaction, request, asked, text)
        finally:
            self.pressed.discard(interaction.message.id)


class AnswerButton(discord.ui.DynamicItem[discord.ui.Button], template=r"answer:(?P<action>stop|again|more):(?P<owner>\d+)"):
    def __init__(self, action: str, owner: int) -> None:
        label, style = BUTTON_LABELS[action]
        super().__init__(discord.ui.Button(label=label, style=style, custom_id=f"answer:{action}:{owner}"))
        self.action, self.owner = action, owner

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str]) -> AnswerButton:
        return cls(match["action"], int(match["owner"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        # Errors get the same private messages as commands (a DynamicItem's would only be logged).
        try:
            cog: Any = interaction.client.get_cog("Generation")
            await cog.on_button(interaction, self.action, self.owner)
        except Exception as error:  # noqa: BLE001 - routed to the one error handler
            await interaction.client.on_app_command_error(interaction, error)


async def setup(bot: HFBot) -> None:
    await bot.add_cog(Generation(bot))
