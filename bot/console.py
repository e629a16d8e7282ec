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
from pathlib import Path
from typing import Any, TextIO

from discord import AppCommandOptionType, app_commands
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from .answers import continuation
from .client import EXTENSIONS, HFBot
from .commands import (
    COMMANDS,
    Reply,
    build_comparison,
    build_request,
    check_usage,
    comparison_answers,
    render_apology,
    render_comparison,
    render_conversation,
    render_error,
    render_result,
    render_status,
    result_data,
    submit_comparison,
)
from .engine import Engine, EngineError, GenerationRequest
from .engine.errors import InvalidInput
from .engine.requests.generation import MAX_TURNS
from .settings import Settings

log = logging.getLogger(__name__)

HISTORY = Path.home() / ".hf_discord_bot_history"
TONES = {"ok": "blue", "info": "white", "busy": "yellow", "error": "red"}
CONSOLE_USER = "console"
HELP = (
    "Commands: "
    + ", ".join(f"/{name}" for name in [*COMMANDS, "compare", "status"])
    + ". /chat goes on with the conversation; "
    "/continue goes on with its last answer; /new starts a fresh one. Type /help, or quit with /exit or Ctrl-D."
)
NEW_CONVERSATION = ("/new", "new")
CONTINUE = ("/continue", "continue")


class CommandLine:
    """Parses `/name option: value ...` with the option names, types and ranges the cogs declare."""

    def __init__(self, tree: app_commands.CommandTree) -> None:
        self.commands = {c.name: c for c in tree.get_commands() if isinstance(c, app_commands.Command)}

    def command_name(self, line: str) -> str | None:
        """The command a line names, if it is one the console runs."""
        match = re.match(r"\s*/?(\w+)", line)
        name = match.group(1).lower() if match else ""
        return name if name in self.commands and name != "sync" else None

    def parse(self, line: str) -> tuple[str, dict[str, Any]]:
        name = self.command_name(line)
        if name is None:
            raise InvalidInput(f"Unknown command '{line.strip()[:40]}'. {HELP}")
        params = {p.name: p for p in self.commands[name].parameters}
        rest = re.match(r"\s*/?\w+\s*(.*)", line, re.DOTALL).group(1)
        pattern = re.compile(r"(?:^|\s)(" + "|".join(map(re.escape, params)) + r"):", re.IGNORECASE) if params else None
        marks = list(pattern.finditer(rest)) if pattern else []
        if rest.strip() and (not marks or rest[: marks[0].start()].strip()):
            usage = " ".join(f"{p}:" if params[p].required else f"[{p}:]" for p in params if p != "private")
            raise InvalidInput(f"Write options as name: value. Usage: /{name} {usage}")
        options: dict[str, Any] = {}
        for mark, following in zip(marks, [*marks[1:], None]):
            key = mark.group(1).lower()
            value = rest[mark.end() : following.start() if following else len(rest)].strip()
            options[key] = self._convert(params[key], value)
        options.pop("private", None)  # accepted as on Discord; everything in a console is private
        return name, options

    @staticmethod
    def _convert(param: app_commands.Parameter, raw: str) -> Any:
        kind = param.type
        try:
            if kind is AppCommandOptionType.integer:
                value: Any = int(raw)
            elif kind is AppCommandOptionType.number:
                value = float(raw)
            elif kind is AppCommandOptionType.boolean:
                if raw.lower() not in ("true", "false", "yes", "no", "1", "0"):
                    raise ValueError
                value = raw.lower() in ("true", "yes", "1")
            else:
                value = raw
        except ValueError:
            raise InvalidInput(
                f"{param.name} must be {kind.name.replace('number', 'a number').replace('integer', 'a whole number').replace('boolean', 'true or false')}, not {raw!r}."
            ) from None
        if param.choices and value not in [c.value for c in param.choices]:
            raise InvalidInput(f"{param.name} must be one of: {', '.join(str(c.value) for c in param.choices)}.")
        return value  # ranges are checked by the command layer, as for Discord


class ConsoleApp:
    def __init__(self, settings: Settings, engine: Engine, out: TextIO = sys.stdout, json_mode: bool = False) -> None:
        self.settings = settings
        self.engine = engine
        self.json_mode = json_mode
        self.out = out
        self.rich = Console(file=out, highlight=False, soft_wrap=True)
        self.parser: CommandLine | None = None
        self.conversation: list[tuple[str, str]] = []  # /chat's turns so far, oldest first; /new empties it

    async def start(self) -> None:
        # The cogs declare each command's options once; the console reads them from the tree.
        declarations = HFBot(self.settings, self.engine)
        for extension in EXTENSIONS:
            await declarations.load_extension(extension)
        self.parser = CommandLine(declarations.tree)

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
                if command == "chat":
                    options.update(history=tuple(self.conversation[-MAX_TURNS:]), system=self.settings.system_prompt)
                request = build_request(command, options, self.settings) if command in COMMANDS else None
            if command == "status":
                status = self.engine.status()
                data = result_data(status)
                self.show(render_status(status, self.settings))
            elif command == "compare":
                check_usage(command, build_comparison, options)
                requests = build_comparison(self.settings, **options)
                jobs = submit_comparison(
                    lambda request: self.engine.submit_job(
                        request, user=CONSOLE_USER, timeout=self.settings.request_timeout
                    ),
                    requests,
                )
                try:
                    answers = await comparison_answers(requests, jobs)
                finally:
                    for job in jobs:
                        job.cancel()  # no-op once finished
                data = {
                    "answers": [
                        {
                            "model": model,
                            "seconds": seconds,
                            **(
                                {"error": {"kind": outcome.kind, "message": str(outcome)}}
                                if isinstance(outcome, EngineError)
                                else {"result": result_data(outcome)}
                            ),
                        }
                        for model, outcome, seconds in answers
                    ]
                }
                self.show(render_comparison(options["task"], options["text"], answers))
            else:
                job = self.engine.submit_job(request, user=CONSOLE_USER, timeout=self.settings.request_timeout)
                if isinstance(request, GenerationRequest) and not self.json_mode:
                    async for sequence, delta in job.chunks():
                        if sequence == 0:
                            self.rich.print(delta, end="", markup=False)
                    self.rich.print()
                result = await job.result()
                if command == "continue":  # one answer with what came before: it replaces the last exchange
                    result = dataclasses.replace(result, texts=[request.continue_answer + result.texts[0]])
                    del self.conversation[-2:]
                if command in ("chat", "continue"):
                    self.conversation += [("user", request.prompt), ("assistant", result.texts[0])]
                    self.show(render_conversation(result, False, "/chat to go on, /continue, /new to start again"))
                else:
                    self.show(render_result(result))
                data = result_data(result)
            return {"line": number, "command": command, "ok": True, "result": data}
        except EngineError as error:
            self.show(render_error(error))
            return {
                "line": number,
                "command": command,
                "ok": False,
                "error": {"kind": error.kind, "message": str(error)},
            }
        except Exception:
            error_id = secrets.token_hex(4)
            log.exception("Error %s on console line %d", error_id, number)
            self.show(render_apology(error_id))
            return {
                "line": number,
                "command": command,
                "ok": False,
                "error": {"kind": "internal", "message": f"Something went wrong (error id {error_id})."},
            }

    def continuation(self) -> GenerationRequest:
        """The conversation's last answer, to go on with (/continue)."""
        if not self.conversation:
            raise InvalidInput("There is no answer to continue yet: start with /chat.")
        (_, asked), (_, said) = self.conversation[-2:]
        request = continuation(
            build_request(
                "chat",
                {
                    "message": asked,
                    "history": tuple(self.conversation[:-2][-MAX_TURNS:]),
                    "system": self.settings.system_prompt,
                },
                self.settings,
            ),
            said,
        )
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
            self.rich.print(Panel(body or "", title=reply.title, subtitle=reply.footer, border_style=TONES[reply.tone]))
            self.rich.print(table)
        else:
            self.rich.print(Panel(body, title=reply.title, subtitle=reply.footer, border_style=TONES[reply.tone]))

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
        self.rich.print(
            f"[bold]Hugging Face bot console[/] · profile {self.settings.profile}\n{HELP}\n"
            "Example: /label text: great goal! labels: sports, politics"
        )
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
                    self.rich.print(HELP)
                elif line.strip():
                    await self.run_line(line, number)
        finally:
            readline.write_history_file(HISTORY)


async def run_console(settings: Settings, *, json_mode: bool = False, stdin: TextIO = sys.stdin) -> None:
    async with Engine(settings.engine) as engine:
        app = ConsoleApp(settings, engine, json_mode=json_mode)
        await app.start()
        if stdin.isatty() and not json_mode:
            await app.run_interactive()
        else:
            await app.run_stream(stdin)
