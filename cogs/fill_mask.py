"""/fill, as its spec (bot/specs/fill_mask.py) declares it."""

from bot.slash import TaskCog, slash_command


class FillMask(TaskCog):
    fill = slash_command("fill")


setup = FillMask.setup
