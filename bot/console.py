"""The local console: the same commands and syntax as Discord, without Discord.

    /label text: great goal! labels: sports, politics

Interactive on a terminal (with history); otherwise one command per line, and
with --json one JSON object per input line, for scripts and experiments.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from . import compare, moderation_view
from .answering import Answering
from .commands import (
    PRIVATE,
    build_request,
    render_apology,
    render_error,
    render_result,
    render_status,
    result_data,
    usage,
)
from .engine import Engine, EngineError, Job, Request
from .engine.errors import InvalidInput
from .engine.request import Option
from .reply import Reply
from .settings import Settings
from .specs import commands, spec
from .specs.generation import MAX_TURNS

log = logging.getLogger(__name__)

HISTORY = Path.home() / ".hf_discord_bot_history"
TONES = {"ok": "blue", "info": "white", "busy": "yellow", "error": "red"}
CONSOLE_USER = "console"
NEW_CONVERSATION = ("/new", "new")
CONTINUE = ("/continue", "continue")
BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
KIND_NAMES = {int: "a whole number", float: "a number", bool: "true or false"}


def declarations() -> dict[str, tuple[Option, ...]]:
    """Every command the console runs, with its options: the tasks', /compare, /status and the moderation view's."""
    tasks = {name: c.options for name, c in commands().items()}
    return {**tasks, "compare": compare.options(), "status": (), **moderation_view.OPTIONS}


def help_text() -> str:
    return (
        "Commands: " + ", ".join(f"/{name}" for name in declarations()) + ". /chat goes on with the conversation; "
        "/continue goes on with its last answer; /new starts a fresh one. Type /help, or quit with /exit or Ctrl-D."
    )


def example_line(name: str, options: Mapping[str, Any]) -> str:
    """A console line that runs /name with these options."""
    return " ".join([f"/{name}", *(f"{option}: {value}" for option, value in options.items())])


class CommandLine:
    """Parses `/name option: value ...` with the option names, types and choices the commands declare."""

    def __init__(self) -> None:
        self.commands = declarations()

    def command_name(self, line: str) -> str | None:
        """The command a line names, if it is one the console runs."""
        match = re.match(r"\s*/?(\w+)", line)
        name = match.group(1).lower() if match else ""
        return name if name in self.commands else None

    def parse(self, line: str) -> tuple[str, dict[str, Any]]:
        name = self.command_name(line)
        if name is None:
            raise InvalidInput(f"Unknown command '{line.strip()[:40]}'. {help_text()}")
        params = {option.name: option for option in (*self.commands[name], PRIVATE)}
        rest = re.match(r"\s*/?\w+\s*(.*)", line, re.DOTALL).group(1)
        pattern = re.compile(r"(?:^|\s)(" + "|".join(map(re.escape, params)) + r"):", re.IGNORECASE)
        marks = list(pattern.finditer(rest))
        if rest.strip() and (not marks or rest[: marks[0].start()].strip()):
            raise InvalidInput(f"Write options as name: value. Usage: /{name} {usage(self.commands[name])}".rstrip())
        options: dict[str, Any] = {}
        for mark, following in zip(marks, [*marks[1:], None]):
            key = mark.group(1).lower()
            value = rest[mark.end() : following.start() if following else len(rest)].strip()
            options[key] = self._convert(params[key], value)
        options.pop(PRIVATE.name, None)  # checked as on Discord; everything in a console is private
        return name, options

    @staticmethod
    def _convert(option: Option, raw: str) -> Any:
        try:
            if option.kind is bool:
                if raw.lower() not in BOOLEANS:
                    raise ValueError
                value: Any = BOOLEANS[raw.lower()]
            else:
                value = option.kind(raw)
        except ValueError:
            raise InvalidInput(f"{option.name} must be {KIND_NAMES[option.kind]}, not {raw!r}.") from None
        if option.choices and value not in option.values():
            raise InvalidInput(f"{option.name} must be one of: {', '.join(map(str, option.values()))}.")
        return value  # ranges are checked by the command layer, as for Discord


def failed(error: EngineError) -> dict[str, str]:
    return {"kind": error.kind, "message": str(error)}


def compared(model: str, outcome: Any, seconds: float | None) -> dict[str, Any]:
    """One side of /compare as JSON."""
    side = {"error": failed(outcome)} if isinstance(outcome, EngineError) else {"result": result_data(outcome)}
    return {"model": model, "seconds": seconds, **side}


class ConsoleScreen:
    """Streams an answer's text to the terminal as it is written (`live`), or shows nothing until it is done."""

    def __init__(self, app: ConsoleApp, live: bool = False) -> None:
        self.app = app
        self.live = live

    async def waiting(self, text: str) -> bool:
        return True

    async def streamed(self, text: str, delta: str) -> None:
        if self.live:
            self.app.rich.print(delta, end="", markup=False)


class ConsoleApp:
    def __init__(self, settings: Settings, engine: Engine, out: TextIO = sys.stdout, json_mode: bool = False) -> None:
        self.settings = settings
        self.engine = engine
        self.json_mode = json_mode
        self.out = out
        # soft_wrap: streamed text goes out as it comes, the terminal wraps it (panels are printed without it).
        self.rich = Console(file=out, highlight=False, soft_wrap=True)
        self.parser = CommandLine()
        self.conversation: list[tuple[str, str]] = []  # /chat's turns so far, oldest first; /new empties it
        self.moderation = moderation_view.ModerationView(
            settings, lambda request: engine.submit(request, user=CONSOLE_USER, timeout=settings.request_timeout)
        )

    async def run_line(self, line: str, number: int) -> dict[str, Any] | None:
        """Run one input line; in JSON mode return the object to print."""
        if line.strip().lower() in NEW_CONVERSATION:
            self.conversation.clear()
            self.show(Reply("Chat", ["A new conversation starts with your next /chat."], tone="info"))
            return {"line": number, "command": "new", "ok": True, "result": {}}
        command = "continue" if line.strip().lower() in CONTINUE else self.parser.command_name(line)
        try:
            if command == "continue":
                request = self.continuation()
            else:
                command, options = self.parser.parse(line)
            if command == "status":
                status = self.engine.status()
                data = result_data(status)
                self.show(render_status(status, self.settings))
            elif command == "compare":
                answering = Answering.submit(self.submit, compare.build_comparison(self.settings, **options))
                answers = await compare.comparison_answers(answering, ConsoleScreen(self))
                data = {"answers": [compared(model, outcome, seconds) for model, outcome, seconds in answers]}
                self.show(compare.render_comparison(options["task"], options["text"], answers))
            elif command in moderation_view.OPTIONS:
                reply, data = await self.moderation.run(command, options)
                self.show(reply)
            else:
                if command != "continue":
                    request = build_request(command, options, self.settings, **self.context(command))
                # One sequence streams as it is written; several are shown together when done.
                live = request.streams and request.rows() == 1 and not self.json_mode
                result = await Answering.submit(self.submit, [request]).result(ConsoleScreen(self, live))
                if command == "continue":  # one answer with what came before: it replaces the last exchange
                    result = dataclasses.replace(result, texts=[request.continue_answer + result.texts[0]])
                    del self.conversation[-2:]
                if command in ("chat", "continue"):
                    if result.texts[0].strip():  # a blank answer is no turn: the next request would refuse it
                        self.conversation += [("user", request.prompt), ("assistant", result.texts[0])]
                    how = "/chat to go on, /continue, /new to start again"
                    reply = spec(request.task).streaming.turn(render_result(result), request, False, how)
                else:
                    reply = render_result(result)
                if live:  # the text is on the screen already: only what the answer's footer says follows it
                    self.rich.print()
                    self.show_footer(reply)
                else:
                    self.show(reply)
                data = result_data(result)
            return {"line": number, "command": command, "ok": True, "result": data}
        except EngineError as error:
            self.show(render_error(error))
            return {"line": number, "command": command, "ok": False, "error": failed(error)}
        except Exception:
            error_id = secrets.token_hex(4)
            log.exception("Error %s on console line %d", error_id, number)
            self.show(render_apology(error_id))
            message = f"Something went wrong (error id {error_id})."
            return {"line": number, "command": command, "ok": False, "error": {"kind": "internal", "message": message}}

    def submit(self, request: Request) -> Job:
        return self.engine.submit_job(request, user=CONSOLE_USER, timeout=self.settings.request_timeout)

    def context(self, command: str, turns: int | None = None) -> dict[str, Any]:
        """What /chat adds to the member's options: the conversation so far and the system prompt."""
        if command != "chat":
            return {}
        history = self.conversation if turns is None else self.conversation[:turns]
        return {"history": tuple(history[-MAX_TURNS:]), "system": self.settings.system_prompt}

    def continuation(self) -> Request:
        """The conversation's last answer, to go on with (/continue)."""
        if not self.conversation:
            raise InvalidInput("There is no answer to continue yet: start with /chat.")
        (_, asked), (_, said) = self.conversation[-2:]
        asking = build_request("chat", {"message": asked}, self.settings, **self.context("chat", -2))
        request = spec(asking.task).streaming.go_on(asking, said)
        request.validate()
        return request

    def show(self, reply: Reply) -> None:
        if self.json_mode:
            return
        body = reply.text.replace("**", "").replace("`", "")
        if reply.fields:
            if reply.side_by_side:  # one column per field (/compare)
                table = Table(*(name for name, _ in reply.fields))
                table.add_row(*(value.replace("**", "") for _, value in reply.fields))
            else:
                table = Table(show_header=False, box=None)
                for name, value in reply.fields:
                    table.add_row(f"[bold]{name}[/]", value.replace("**", ""))
            self.print(Panel(Text(body), title=reply.title, border_style=TONES[reply.tone]))
            self.print(table)
        else:
            self.print(Panel(Text(body), title=reply.title, border_style=TONES[reply.tone]))
        self.show_footer(reply)

    def show_footer(self, reply: Reply) -> None:
        """Below the answer rather than in the panel's border, which would crop a long footer."""
        if reply.footer:
            self.print(Text(reply.footer, style=f"dim {TONES[reply.tone]}"))

    def print(self, renderable: Any) -> None:
        """A whole renderable, wrapped to the terminal's width: soft wrapping would crop a panel's long lines."""
        self.rich.print(renderable, soft_wrap=False)

    async def run_stream(self, lines: TextIO) -> None:
        """Non-interactive: one command per line; blank lines and # comments are skipped."""
        for number, line in enumerate(lines, 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            outcome = await self.run_line(line.rstrip("\n"), number)
            if self.json_mode:
                print(json.dumps(outcome, ensure_ascii=False), file=self.out, flush=True)

    async def run_interactive(self) -> None:
        import readline  # history and line editing on a terminal

        if HISTORY.exists():
            readline.read_history_file(HISTORY)
        examples = "\n".join(f"  {example_line(name, c.example)}" for name, c in commands().items() if c.example)
        title = f"[bold]Hugging Face bot console[/] · profile {self.settings.profile}"
        self.rich.print(f"{title}\n{help_text()}\nExamples:\n{examples}")
        number = 0
        try:
            while True:
                try:
                    line = await asyncio.to_thread(input, "› ")
                except EOFError:
                    break
                number += 1
                if line.strip() in ("/exit", "/quit", "exit", "quit"):
                    break
                if line.strip() in ("/help", "help", "?"):
                    self.rich.print(help_text())
                elif line.strip():
                    await self.run_line(line, number)
        finally:
            readline.write_history_file(HISTORY)


def quiet(settings: Settings) -> Settings:
    """An interactive console's settings: logs (the bot's and the worker's) at WARNING, and no progress bars
    while weights load, so nothing but warnings comes between the member's lines and the answers."""
    logging.getLogger().setLevel(logging.WARNING)
    engine = dataclasses.replace(settings.engine, log_level="WARNING", progress_bars=False)
    return dataclasses.replace(settings, log_level="WARNING", engine=engine)


async def run_console(settings: Settings, *, json_mode: bool = False, stdin: TextIO = sys.stdin) -> None:
    interactive = stdin.isatty() and not json_mode
    if interactive:
        settings = quiet(settings)
    async with Engine(settings.engine) as engine:
        app = ConsoleApp(settings, engine, json_mode=json_mode)
        try:
            if interactive:
                await app.run_interactive()
            else:
                await app.run_stream(stdin)
        finally:
            await app.moderation.close()
