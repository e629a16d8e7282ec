"""/similar, as its spec (bot/specs/similarity.py) declares it."""

from bot.slash import TaskCog, slash_command


class Similarity(TaskCog):
    similar = slash_command("similar")


setup = Similarity.setup
