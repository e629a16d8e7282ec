"""/generate, as its spec (bot/specs/generation.py) declares it: the answer streams in, with Stop,
Regenerate and Continue buttons (bot/answers.py)."""

from bot.slash import TaskCog, slash_command


class Generation(TaskCog):
    generate = slash_command("generate")


setup = Generation.setup
