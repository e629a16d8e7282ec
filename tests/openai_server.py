"""`transformers serve` (the scale extra) in a child process on a free loopback port: the real
OpenAI-compatible server that GENERATION_BACKEND=openai talks to, for the tests and the chaos run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import child_env

STARTUP = 300  # importing torch + transformers and loading the model on 2 busy cores


class Server:
    """Started at once; `wait_ready()` waits until it listens. `restart()` starts it again on the same port."""

    def __init__(self, model: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.model = str(model)
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.process = self._spawn()

    def _spawn(self) -> subprocess.Popen:
        serve = Path(sys.executable).with_name("transformers")
        return subprocess.Popen(
            [str(serve), "serve", self.model, "--host", "127.0.0.1", "--port", str(self.port), "--device", "cpu"],
            env=child_env(),  # not this process's settings (an operator's OPENAI_*, ...)
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def listening(self) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def wait_ready(self, timeout: float = STARTUP) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("transformers serve exited while starting")
            if self.listening():
                return
            time.sleep(0.5)
        raise RuntimeError("transformers serve did not start listening")

    def restart(self) -> None:
        self.stop()
        self.process = self._spawn()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)  # in case it was left stopped
            self.process.kill()
        self.process.wait(30)
