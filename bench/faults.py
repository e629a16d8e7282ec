"""The faults the chaos run injects (bench/chaos.py), each a real one: signals to the real worker
process, a second process holding the SQLite file's lock, a real `transformers serve` killed and
started again, and Discord's HTTP answers failed in the fake Discord's recorder."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from random import Random

from bot.engine import Engine
from tests.discord_harness import Recorder
from tests.openai_server import Server

# Discord's answers when a call fails: (status, code, message).
SERVER_ERROR = (503, 0, "Service Unavailable")
UNKNOWN_INTERACTION = (404, 10062, "Unknown interaction")
# The calls a failure can hit: an interaction's first answer, edits and follow-ups; channel messages; reads.
DISCORD_CALLS = (
    "response",
    "edit_original",
    "followup",
    "send_message",
    "edit_message",
    "start_thread",
    "add_reaction",
    "history",
    "fetch_message",
)

LOCKER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
"""


@dataclass
class Fault:
    kind: str
    started: float  # monotonic
    ended: float = 0.0  # when it was over (the lock released, the server listening again)


@dataclass
class Faults:
    """Injects one fault at a time on request; keeps what it did."""

    engine: Engine
    recorder: Recorder
    database: Path
    rng: Random
    server: Server | None = None
    send_expired: Callable[[], Awaitable[object]] = field(default=lambda: asyncio.sleep(0))
    done: list[Fault] = field(default_factory=list)
    stopped_pids: set[int] = field(default_factory=set)

    @property
    def kinds(self) -> tuple[str, ...]:
        return (
            "kill_worker",
            "stall_worker",
            "lock_database",
            "discord_5xx",
            "discord_unknown_interaction",
            "discord_expired_interaction",
            *(("kill_server",) if self.server else ()),
        )

    async def inject(self, kind: str) -> Fault:
        fault = Fault(kind, time.monotonic())
        self.done.append(fault)
        await getattr(self, kind)()
        fault.ended = time.monotonic()
        return fault

    def _worker_pid(self) -> int | None:
        info = self.engine.executor.info
        return info.pid if info.state == "running" else None

    async def kill_worker(self) -> None:
        pid = self._worker_pid()
        if pid:
            os.kill(pid, signal.SIGKILL)

    async def stall_worker(self) -> None:
        """SIGSTOP: the worker stops answering without dying, until the watchdog kills it (it needs work to
        notice, which the traffic brings). Over when the watchdog has acted."""
        pid = self._worker_pid()
        if not pid:
            return
        os.kill(pid, signal.SIGSTOP)
        self.stopped_pids.add(pid)
        while self.engine.executor.info.pid == pid and self.engine.executor.info.state == "running":
            await asyncio.sleep(0.2)

    async def lock_database(self) -> None:
        """Another process holds the file's write lock for a few seconds: some writes wait, some meet StoreBusy."""
        seconds = self.rng.uniform(2.0, 8.0)
        locker = await asyncio.create_subprocess_exec(
            sys.executable, "-c", LOCKER, str(self.database), str(seconds), stdout=subprocess.PIPE
        )
        await locker.stdout.readline()
        await locker.wait()

    async def kill_server(self) -> None:
        """kill -9 the generation server; it is started again a moment later and is over once it listens."""
        assert self.server is not None
        self.server.process.kill()
        await asyncio.sleep(self.rng.uniform(1.0, 5.0))
        self.server.restart()
        await asyncio.to_thread(self.server.wait_ready)

    async def discord_5xx(self) -> None:
        for _ in range(self.rng.randint(1, 4)):
            self.recorder.fail_next(self.rng.choice(DISCORD_CALLS), *SERVER_ERROR)

    async def discord_unknown_interaction(self) -> None:
        """The next first answer comes too late for Discord (its 3 seconds passed)."""
        self.recorder.fail_next("response", *UNKNOWN_INTERACTION)

    async def discord_expired_interaction(self) -> None:
        """A member's command reaches the bot after its token expired (a backlog, a gateway replay)."""
        await self.send_expired()

    def release(self) -> None:
        """Wake any process left stopped (so it can be killed and reaped)."""
        for pid in self.stopped_pids:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
