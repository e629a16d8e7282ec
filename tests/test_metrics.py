"""Prometheus metrics (METRICS_PORT): a real engine with tiny models serves /metrics on 127.0.0.1, scraped
with urllib while requests run — served counts, histograms, shed requests by reason, queue depth, models
in memory, generated tokens — and the console's entry point serves it too, or says why it can't."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.engine import Busy, Engine
from bot.engine.prometheus import EngineCollector
from bot.specs.generation import GenerationRequest
from bot.specs.sentiment import SentimentRequest

from .conftest import REPO_ROOT, tiny_engine_config
from .test_console import TIMEOUT, console_env

WAIT = 120.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    """Every sample of /metrics as {(name, labels): value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def test_the_engine_serves_its_metrics_while_requests_run(tiny_models):
    port = free_port()
    config = tiny_engine_config(tiny_models, metrics_port=port, max_queue=2, max_per_user=1)
    async with Engine(config) as engine:
        idle = scrape(port)
        assert value(idle, "hfbot_worker_up") == 1 and value(idle, "hfbot_worker_restarts_total") == 0
        assert value(idle, "hfbot_queue_depth", lane="interactive") == 0
        assert value(idle, "hfbot_requests_shed_total", reason="queue_full") == 0  # known reasons start at 0

        # Submitted without yielding to the event loop: nothing has gone to the worker when the queue is
        # scraped (the scrape blocks the loop; the server answers from its own thread).
        first = engine.submit_job(SentimentRequest(("Great game!",)), user="a")
        second = engine.submit_job(SentimentRequest(("Awful match.",)), user="b")
        with pytest.raises(Busy):
            engine.submit_job(SentimentRequest(("Let me in",)), user="c")  # the queue holds 2
        queued = scrape(port)
        assert value(queued, "hfbot_queue_depth", lane="interactive") == 2
        assert value(queued, "hfbot_queue_depth", lane="background") == 0
        await asyncio.wait_for(asyncio.gather(first.result(), second.result()), WAIT)

        third = engine.submit_job(SentimentRequest(("One more",)), user="a")
        with pytest.raises(Busy):
            engine.submit_job(SentimentRequest(("and another",)), user="a")  # a's cap is 1
        await asyncio.wait_for(third.result(), WAIT)
        story = await asyncio.wait_for(
            engine.submit(GenerationRequest("Hello", max_new_tokens=6, temperature=0), user="a"), WAIT
        )

        # The worker reports its models with its next heartbeat (twice a second).
        samples = await asyncio.to_thread(scrape, port)
        for _ in range(20):
            if value(samples, "hfbot_model_memory_bytes", model=str(tiny_models["gpt2"]), dtype="float32", replica=""):
                break
            await asyncio.sleep(0.5)
            samples = await asyncio.to_thread(scrape, port)

    assert value(samples, "hfbot_requests_total", task="sentiment", outcome="served") == 3
    assert value(samples, "hfbot_requests_total", task="sentiment", outcome="failed") == 0
    assert value(samples, "hfbot_requests_total", task="generation", outcome="served") == 1
    assert value(samples, "hfbot_queue_wait_seconds_count", task="sentiment") == 3
    assert value(samples, "hfbot_queue_wait_seconds_count", task="generation") == 1
    # A pass per unit: the first two shared one or ran apart; the rows histogram counts the same units.
    units = value(samples, "hfbot_compute_seconds_count", task="sentiment")
    assert units in (2, 3) and value(samples, "hfbot_unit_rows_count", task="sentiment") == units
    assert value(samples, "hfbot_unit_rows_sum", task="sentiment") == 3
    assert value(samples, "hfbot_compute_seconds_sum", task="sentiment") > 0
    assert value(samples, "hfbot_compute_seconds_bucket", task="sentiment", le="+Inf") == units
    assert value(samples, "hfbot_requests_shed_total", reason="queue_full") == 1
    assert value(samples, "hfbot_requests_shed_total", reason="user_cap") == 1
    assert value(samples, "hfbot_requests_shed_total", reason="deadline") == 0
    assert value(samples, "hfbot_generated_tokens_total", task="generation") == sum(story.new_tokens) > 0
    assert value(samples, "hfbot_queue_depth", lane="interactive") == 0
    assert value(samples, "hfbot_requests_running") == 0
    for kind in ("sentiment", "gpt2"):
        held = value(samples, "hfbot_model_memory_bytes", model=str(tiny_models[kind]), dtype="float32", replica="")
        assert held > 0  # (replica: only Ray replicas name one)
    assert value(samples, "hfbot_worker_stalls_total") == 0
    assert value(samples, "process_resident_memory_bytes") > 0  # the bot process's own, from prometheus_client
    with pytest.raises(ConnectionRefusedError):  # closing the engine stopped the server
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


async def test_the_readme_lists_every_metric_the_engine_exports(tiny_engine):
    readme = (REPO_ROOT / "README.md").read_text()
    table = readme[readme.index("## Metrics (Prometheus)") :]
    families = list(EngineCollector(tiny_engine).collect())
    assert len(families) > 10
    for family in families:
        name = family.name + ("_total" if family.type == "counter" else "")
        assert f"| `{name}` |" in table, f"{name} is not in the README's metrics table"


async def test_no_metrics_port_serves_nothing(tiny_engine):
    assert tiny_engine.config.metrics_port == 0 and tiny_engine.metrics_server is None


def test_the_console_serves_metrics_while_it_runs(tiny_models, tmp_path):
    port = free_port()
    env = console_env(tiny_models, tmp_path, METRICS_PORT=str(port))
    console = subprocess.Popen(
        [sys.executable, "-m", "bot", "console", "--json"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=REPO_ROOT,
        text=True,
    )
    try:
        console.stdin.write("/tokens text: Hello world model: sentiment\n")
        console.stdin.flush()
        answer = console.stdout.readline()  # the console waits for its next line: it is still serving
        assert '"ok": true' in answer, answer + console.stderr.read()
        samples = scrape(port)
        assert value(samples, "hfbot_requests_total", task="tokenize", outcome="served") == 1
        assert value(samples, "hfbot_queue_wait_seconds_count", task="tokenize") == 1
        assert value(samples, "hfbot_worker_up") == 1
        out, err = console.communicate("", timeout=TIMEOUT)
    finally:
        if console.poll() is None:
            console.kill()
            console.wait()
    assert console.returncode == 0, err[-3000:]


def test_a_metrics_port_in_use_stops_the_console_with_one_line(tiny_models, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "bot", "console", "--json"],
            input="/tokens text: hi\n",
            capture_output=True,
            env=console_env(tiny_models, tmp_path, METRICS_PORT=str(port)),
            cwd=REPO_ROOT,
            text=True,
            timeout=TIMEOUT,
        )
    assert done.returncode == 1 and done.stdout == ""
    assert f"Can't start the console: Can't serve metrics on 127.0.0.1:{port}" in done.stderr
    assert "METRICS_PORT" in done.stderr and "Traceback" not in done.stderr
