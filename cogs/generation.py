from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import HFBot
from bot.commands import MAX_NEW_TOKENS, MAX_RETURN_SEQUENCES, MAX_SEED, MAX_TEMPERATURE, MAX_TEXT_CHARS


class Generation(commands.Cog):
    def __init__(self, bot: HFBot) -> None:
        self.bot = bot

    @app_commands.command(description="Continue a text, or chat with the model. The answer streams in as it is written.")
    @app_commands.describe(
        prompt="The text to continue, or your message in chat mode",
        max_new_tokens="How many tokens to write at most",
        num_return_sequences="How many different answers",
        temperature="0 = always the likeliest word; higher = more surprising",
        top_p="Sample only from the likeliest words whose probabilities add up to this",
        seed="Same seed, same answer",
        mode="complete: continue the prompt; chat: answer it",
        private="Only you see the answer",
    )
    @app_commands.choices(mode=[app_commands.Choice(name="complete", value="complete"), app_commands.Choice(name="chat", value="chat")])
    @app_commands.checks.cooldown(3, 30.0, key=lambda i: i.user.id)  # generation is the expensive one
    async def generate(
        self,
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, MAX_TEXT_CHARS],
        max_new_tokens: app_commands.Range[int, 1, MAX_NEW_TOKENS] = 64,
        num_return_sequences: app_commands.Range[int, 1, MAX_RETURN_SEQUENCES] = 1,
        temperature: app_commands.Range[float, 0.0, MAX_TEMPERATURE] = 0.7,
        top_p: app_commands.Range[float, 0.01, 1.0] = 0.95,
        seed: app_commands.Range[int, 0, MAX_SEED] | None = None,
        mode: str = "complete",
        private: bool = False,
    ) -> None:
        await self.bot.answer(interaction, "generate", private, prompt=prompt, max_new_tokens=max_new_tokens,
                              num_return_sequences=num_return_sequences, temperature=temperature, top_p=top_p,
                              seed=seed, mode=mode)


async def setup(bot: HFBot) -> None:
    await bot.add_cog(Generation(bot))
