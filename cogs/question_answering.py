"""/ask and the "Ask about this message" menu (the message is the context, the question comes from a
modal), as the spec (bot/specs/question_answering.py) declares the command."""

from bot.slash import MessageMenu, TaskCog, slash_command


class QuestionAnswering(TaskCog):
    ask = slash_command("ask")
    menus = (MessageMenu("Ask about this message", "ask", text="context"),)


setup = QuestionAnswering.setup
