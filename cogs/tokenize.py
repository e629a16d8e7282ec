"""/tokens, as its spec (bot/specs/tokenize.py) declares it."""

from bot.slash import TaskCog, slash_command


class Tokenize(TaskCog):
    tokens = slash_command("tokens")


setup = Tokenize.setup
