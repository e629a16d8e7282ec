"""In-engine metrics: queue waits, compute times, batch sizes, outcomes and generated tokens per task.

One owner of the numbers: /status reads the recent windows (p50/p95), and the Prometheus
exporter (prometheus.py) reads the cumulative counts and histograms, observed here as the
scheduler records each event.
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from dataclasses import dataclass
from statistics import quantiles

from prometheus_client import Histogram

WINDOW = 1000  # recent samples kept per series
# Waits and computes range from a tiny model's milliseconds to a long generation's minutes.
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)
ROWS_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
SHED_REASONS = ("queue_full", "user_cap", "background_full", "deadline")  # what record_shed is told


def percentile(samples: deque[float] | list[float], q: int) -> float | None:
    """q-th percentile (1..99) of the samples, None when there are none."""
    if not samples:
        return None
    if len(samples) == 1:
        return samples[0]
    return quantiles(samples, n=100, method="inclusive")[q - 1]


@dataclass(frozen=True)
class TaskStats:
    served: int
    failed: int
    wait_p50: float | None
    wait_p95: float | None
    compute_p50: float | None
    compute_p95: float | None
    mean_batch_size: float | None


class Metrics:
    def __init__(self) -> None:
        self.waits: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=WINDOW))
        self.computes: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=WINDOW))
        self.batch_sizes: dict[str, deque[int]] = defaultdict(lambda: deque(maxlen=WINDOW))
        self.served: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.shed: Counter[str] = Counter()  # refused (Busy) or dropped (deadline), by reason
        self.generated_tokens: Counter[str] = Counter()  # tokens written by answered streaming requests
        self.preempted: Counter[str] = Counter()  # classification passes given up for a newcomer, by task
        self._per_request: dict[str, float] = {}
        # Cumulative, for the exporter (registry=None: the engine's exporter collects them, see prometheus.py).
        self.wait_histogram = Histogram(
            "hfbot_queue_wait_seconds",
            "Seconds a request waited in the queue before its unit went to the worker.",
            ["task"],
            registry=None,
            buckets=SECONDS_BUCKETS,
        )
        self.compute_histogram = Histogram(
            "hfbot_compute_seconds",
            "Seconds a unit ran at the worker: one classification forward pass, or one whole generation.",
            ["task"],
            registry=None,
            buckets=SECONDS_BUCKETS,
        )
        self.rows_histogram = Histogram(
            "hfbot_unit_rows",
            "Rows in each unit sent to the worker: a classification pass's rows, a generation's sequences.",
            ["task"],
            registry=None,
            buckets=ROWS_BUCKETS,
        )

    def record_wait(self, task: str, seconds: float) -> None:
        self.waits[task].append(seconds)
        self.wait_histogram.labels(task).observe(seconds)

    def record_unit(self, task: str, size: int, rows: int) -> None:
        """A unit of `size` requests, `rows` rows in all, went to the worker."""
        self.batch_sizes[task].append(size)
        self.rows_histogram.labels(task).observe(rows)

    def record_compute(self, task: str, seconds: float, sharing: int) -> None:
        """A unit ran for `seconds`, its device time shared by `sharing` requests."""
        self.computes[task].append(seconds)
        self.compute_histogram.labels(task).observe(seconds)
        # Moving average of amortised seconds per request: what the ETA is built from.
        sample = seconds / max(sharing, 1)
        previous = self._per_request.get(task)
        self._per_request[task] = sample if previous is None else 0.8 * previous + 0.2 * sample

    def record_outcome(self, task: str, ok: bool, generated_tokens: int = 0) -> None:
        (self.served if ok else self.failed)[task] += 1
        if generated_tokens:
            self.generated_tokens[task] += generated_tokens

    def record_preempted(self, task: str) -> None:
        self.preempted[task] += 1

    def record_shed(self, reason: str) -> None:
        self.shed[reason] += 1

    def seconds_per_request(self, task: str, default: float = 1.0) -> float:
        return self._per_request.get(task, default)

    def tasks(self) -> dict[str, TaskStats]:
        names = sorted(set(self.served) | set(self.failed) | set(self.computes))
        return {
            name: TaskStats(
                served=self.served[name],
                failed=self.failed[name],
                wait_p50=percentile(self.waits[name], 50),
                wait_p95=percentile(self.waits[name], 95),
                compute_p50=percentile(self.computes[name], 50),
                compute_p95=percentile(self.computes[name], 95),
                mean_batch_size=(sum(self.batch_sizes[name]) / len(self.batch_sizes[name]))
                if self.batch_sizes[name]
                else None,
            )
            for name in names
        }
