"""A `Reply` drawn as a Discord embed, within Discord's limits."""

from __future__ import annotations

import discord

from .reply import DESCRIPTION_LIMIT, Reply, clip

COLOURS = {
    "ok": discord.Colour.blurple(),
    "info": discord.Colour.light_grey(),
    "busy": discord.Colour.orange(),
    "error": discord.Colour.red(),
}


def to_embed(reply: Reply) -> discord.Embed:
    """Title 256, description 4096, fields 25 x 1024, footer 2048 characters at most."""
    embed = discord.Embed(
        title=clip(reply.title, 256),
        description=clip(reply.text, DESCRIPTION_LIMIT) or None,
        colour=COLOURS.get(reply.tone, COLOURS["ok"]),
    )
    for name, value in reply.fields[:25]:
        embed.add_field(name=clip(name, 256), value=clip(value, 1024) or "–", inline=reply.side_by_side)
    if reply.footer:
        embed.set_footer(text=clip(reply.footer, 2048))
    return embed
