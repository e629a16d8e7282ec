"""/sentiment, as its spec (bot/specs/sentiment.py) declares it."""

from bot.slash import TaskCog, slash_command


class Sentiment(TaskCog):
    sentiment = slash_command("sentiment")


setup = Sentiment.setup
