"""Prometheus metrics for operators (METRICS_PORT): served by prometheus_client's own HTTP server,
in the bot process (the engine's front end), for the Discord bot and the console alike.

Nothing is counted twice: at each scrape the collector reads the engine's own numbers — the
scheduler's lanes, `Metrics` (counters, and the histograms it observes as events happen), the
executor's restarts, stalls and models in memory (the same facts /status shows).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .metrics import SHED_REASONS
from .scheduler import Priority

if TYPE_CHECKING:
    from .engine import Engine

MEBIBYTE = 2**20  # ModelInfo.megabytes are the registry's footprint / 2**20


class MetricsUnavailable(RuntimeError):
    """The metrics port could not be opened; the message names the settings to change."""


class EngineCollector(Collector):
    """The engine's numbers as Prometheus metrics, read at scrape time (from the server's thread)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterable[Metric]:
        engine, metrics = self.engine, self.engine.metrics
        # Copies first: the event loop keeps changing these while the server's thread reads them.
        served, failed, shed = dict(metrics.served), dict(metrics.failed), dict(metrics.shed)
        tokens, info = dict(metrics.generated_tokens), engine.executor.info

        depth = GaugeMetricFamily("hfbot_queue_depth", "Requests waiting in the queue, per lane.", labels=["lane"])
        for priority in Priority:
            depth.add_metric([priority.name.lower()], engine.scheduler.queue_depth(priority))
        yield depth
        yield GaugeMetricFamily(
            "hfbot_requests_running", "Requests at the worker now.", value=len(engine.scheduler.running)
        )

        requests = CounterMetricFamily(
            "hfbot_requests", "Requests answered, per task and outcome (served or failed).", labels=["task", "outcome"]
        )
        for task in sorted(set(served) | set(failed)):
            requests.add_metric([task, "served"], served.get(task, 0))
            requests.add_metric([task, "failed"], failed.get(task, 0))
        yield requests
        refused = CounterMetricFamily(
            "hfbot_requests_shed",
            "Requests refused at once (queue_full, user_cap, background_full) or dropped (deadline).",
            labels=["reason"],
        )
        for reason in sorted(set(SHED_REASONS) | set(shed)):
            refused.add_metric([reason], shed.get(reason, 0))
        yield refused
        written = CounterMetricFamily(
            "hfbot_generated_tokens",
            "Tokens written by answered generations; rate() of it is tokens per second.",
            labels=["task"],
        )
        for task, count in sorted(tokens.items()):
            written.add_metric([task], count)
        yield written
        given_up = CounterMetricFamily(
            "hfbot_passes_preempted",
            "Classification passes given up mid-pass so a newcomer did not wait for someone's flood.",
            labels=["task"],
        )
        for task, count in sorted(dict(metrics.preempted).items()):
            given_up.add_metric([task], count)
        yield given_up
        for histogram in (metrics.wait_histogram, metrics.compute_histogram, metrics.rows_histogram):
            yield from histogram.collect()

        yield GaugeMetricFamily("hfbot_worker_up", "1 while the worker is running, else 0.", value=int(info.alive))
        yield CounterMetricFamily(
            "hfbot_worker_restarts", "Times the worker (or a Ray replica) was restarted.", value=info.restarts
        )
        yield CounterMetricFamily(
            "hfbot_worker_stalls", "Restarts because the worker stopped making progress.", value=info.stalls
        )
        models = GaugeMetricFamily(
            "hfbot_model_memory_bytes",
            "Size in memory of each model the worker (or each Ray replica) holds.",
            labels=["model", "dtype", "replica"],
        )
        for model in info.models:
            models.add_metric([model.model_id, model.dtype, model.replica], model.megabytes * MEBIBYTE)
        yield models
        yield GaugeMetricFamily(
            "hfbot_model_memory_budget_bytes",
            "MODEL_MEMORY_BUDGET_MB in bytes (0: no limit).",
            value=engine.config.memory_budget_mb * MEBIBYTE,
        )


class MetricsServer:
    """prometheus_client's HTTP server for one engine's registry (plus this process's own metrics)."""

    def __init__(self, engine: Engine) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(EngineCollector(engine))
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=self.registry)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self, host: str, port: int) -> None:
        try:
            self._server, self._thread = start_http_server(port, host, registry=self.registry)
        except OSError as error:  # in use, not an address of this machine, a name that does not resolve
            raise MetricsUnavailable(
                f"Can't serve metrics on {host}:{port} ({error.strerror or error}). "
                "Pick a free METRICS_PORT (and METRICS_HOST), or leave METRICS_PORT empty to serve none."
            ) from None

    def close(self) -> None:
        """Stop serving and free the port (blocks up to the server's half-second poll)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = self._thread = None
