"""/ner, as its spec (bot/specs/ner.py) declares it."""

from bot.slash import TaskCog, slash_command


class Ner(TaskCog):
    ner = slash_command("ner")


setup = Ner.setup
