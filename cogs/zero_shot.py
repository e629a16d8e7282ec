"""/label, as its spec (bot/specs/zero_shot.py) declares it."""

from bot.slash import TaskCog, slash_command


class ZeroShot(TaskCog):
    label = slash_command("label")


setup = ZeroShot.setup
