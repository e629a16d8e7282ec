"""In-engine metrics: queue waits, compute times, batch sizes and outcomes per task."""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from dataclasses import dataclass
from statistics import quantiles

WINDOW = 1000  # recent samples kept per series


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
        self._per_request: dict[str, float] = {}

    def record_wait(self, task: str, seconds: float) -> None:
        self.waits[task].append(seconds)

    def record_unit(self, task: str, size: int) -> None:
        """A unit of `size` requests went to the worker."""
        self.batch_sizes[task].append(size)

    def record_compute(self, task: str, seconds: float, sharing: int) -> None:
        """A unit ran for `seconds`, its device time shared by `sharing` requests."""
        self.computes[task].append(seconds)
        # Moving average of amortised seconds per request: what the ETA is built from.
        sample = seconds / max(sharing, 1)
        previous = self._per_request.get(task)
        self._per_request[task] = sample if previous is None else 0.8 * previous + 0.2 * sample

    def record_outcome(self, task: str, ok: bool) -> None:
        (self.served if ok else self.failed)[task] += 1

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
