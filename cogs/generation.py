"""/generate: the answer streams in, with Stop, Regenerate and Continue buttons (bot/answers.py)."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.answers import Answer, AnswerButton, interaction_post, write
from bot.client import HFBot, suggest_models
from bot.commands import (
    DEFAULT_MAX_NEW_TOKENS,
    DEFAULT_TEMPERATURE,
    DEFAULT_TOP_P,
    MAX_NEW_TOKENS,
    MAX_RETURN_SEQUENCES,
    MAX_SEED,
    MAX_TEMPERATURE,
    MAX_TEXT_CHARS,
    MODEL_HELP,
    MODES,
    build_request,
)


class Generation(commands.Cog):
    def __init__(self, bot: HFBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        # Clicks route by custom_id, also after a restart; /chat's answers have the same buttons.
        self.bot.add_dynamic_items(AnswerButton)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(AnswerButton)

    @app_commands.command(
        description="Continue a text, or chat with the model. The answer streams in as it is written."
    )
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
        request = build_request(
            "generate",
            dict(
                prompt=prompt,
                max_new_tokens=max_new_tokens,
                num_return_sequences=num_return_sequences,
                temperature=temperature,
                top_p=top_p,
                seed=seed,
                mode=mode,
                model=model,
            ),
            self.bot.settings,
        )
        await write(
            self.bot,
            interaction_post(interaction, private),
            Answer(request),
            request,
            "",
            owner=interaction.user.id,
            guild_id=interaction.guild_id or 0,
            asked_at=interaction.created_at,
        )


async def setup(bot: HFBot) -> None:
    await bot.add_cog(Generation(bot))
